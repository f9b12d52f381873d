//! Typed value -> message -> bytes -> message -> typed value, for every command and
//! every reply shape, plus decode errors for malformed input.

use std::net::{IpAddr, SocketAddr};

use lvs_ipvs::codec::{self, ReplyKind};
use lvs_ipvs::{
    AddressFamily, Daemon, DaemonState, DecodeError, Destination, ForwardMethod, Info, IpvsCmd,
    IpvsMessage, IpvsNla, Request, Service, ServiceFlags, ServiceKey, Stats, Timeouts, TunnelFlags,
    TunnelType,
};

const FAMILY: u16 = 33;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn roundtrip(msg: &IpvsMessage, flags: u16) -> IpvsMessage {
    let bytes = codec::encode(msg, FAMILY, flags, 7, 99);
    let replies = codec::decode_datagram(&bytes, FAMILY).unwrap();
    assert_eq!(replies.len(), 1);
    assert_eq!(
        (replies[0].seq, replies[0].port, replies[0].flags),
        (7, 99, flags)
    );
    match &replies[0].kind {
        ReplyKind::Ipvs { msg: back, .. } => {
            assert_eq!(back, msg);
            assert_eq!(codec::encode(back, FAMILY, flags, 7, 99), bytes);
            back.clone()
        }
        other => panic!("{other:?}"),
    }
}

fn sample_stats() -> Stats {
    Stats {
        conns: 5_000_000_000,
        inpkts: 7,
        outpkts: 8,
        inbytes: 1 << 40,
        outbytes: 12,
        cps: 1,
        inpps: 2,
        outpps: 3,
        inbps: 4,
        outbps: 5,
    }
}

fn services() -> Vec<Service> {
    vec![
        Service::new(ServiceKey::tcp(sa("192.0.2.1:80")), "wrr"),
        Service::new(ServiceKey::udp(sa("[2001:db8::1]:53")), "sh")
            .with_flags(ServiceFlags::SH_PORT)
            .persistent(30)
            .with_netmask(48),
        Service::new(ServiceKey::sctp(sa("192.0.2.1:9")), "mh")
            .with_flags(ServiceFlags::ONEPACKET | ServiceFlags::MH_FALLBACK),
        Service::new(ServiceKey::fwmark(AddressFamily::Inet, 7), "rr")
            .persistent(300)
            .with_netmask(0xffff_ff00)
            .with_pe("sip"),
        Service::new(ServiceKey::fwmark(AddressFamily::Inet6, 8), "fo"),
    ]
}

fn destinations() -> Vec<Destination> {
    vec![
        Destination::new(sa("198.51.100.2:8080"), ForwardMethod::Masq, 3).with_thresholds(10, 5),
        Destination::new(sa("198.51.100.3:0"), ForwardMethod::Route, 0),
        Destination::new(sa("198.51.100.4:80"), ForwardMethod::Local, 1),
        Destination::new(sa("[2001:db8::2]:80"), ForwardMethod::Tunnel, 65535).with_tunnel(
            TunnelType::Gue,
            6080,
            TunnelFlags(TunnelFlags::CSUM.0 | TunnelFlags::REMCSUM.0),
        ),
        Destination::new(sa("198.51.100.5:80"), ForwardMethod::Tunnel, 2).with_tunnel(
            TunnelType::Gre,
            0,
            TunnelFlags::CSUM,
        ),
    ]
}

#[test]
fn every_request_roundtrips() {
    let key = ServiceKey::tcp(sa("192.0.2.1:80"));
    let mut backup = Daemon::new(DaemonState::Backup, "eth0", 9);
    backup.mcast_group = Some("ff02::81".parse().unwrap());
    backup.mcast_port = Some(8848);
    backup.mcast_ttl = Some(3);
    backup.sync_maxlen = Some(1200);
    let mut reqs = vec![
        Request::GetInfo,
        Request::GetServices,
        Request::GetService(key),
        Request::DelService(key),
        Request::GetDestinations(key),
        Request::DelDestination(key, sa("[2001:db8::9]:443")),
        Request::GetDaemons,
        Request::StartDaemon(Daemon::new(DaemonState::Master, "lo", 1)),
        Request::StartDaemon(backup),
        Request::StopDaemon(DaemonState::Backup),
        Request::GetTimeouts,
        Request::SetTimeouts(Timeouts::new(1, 2, 3)),
        Request::SetTimeouts(Timeouts {
            tcp: None,
            tcp_fin: Some(5),
            udp: None,
        }),
        Request::ZeroService(key),
        Request::ZeroAll,
        Request::Flush,
    ];
    for s in services() {
        reqs.push(Request::AddService(s.clone()));
        reqs.push(Request::EditService(s));
    }
    for d in destinations() {
        reqs.push(Request::AddDestination(key, d.clone()));
        reqs.push(Request::EditDestination(key, d));
    }
    for req in &reqs {
        let msg = req.message();
        let back = roundtrip(&msg, codec::request_flags(req));
        // The typed payload survives.
        match req {
            Request::AddService(s) | Request::EditService(s) => {
                assert_eq!(&back.service().unwrap(), s);
            }
            Request::AddDestination(k, d) | Request::EditDestination(k, d) => {
                assert_eq!(&back.destination(k.af()).unwrap(), d);
                assert_eq!(
                    ServiceKey::from_nlas(back.service_nlas().unwrap()).unwrap(),
                    *k
                );
            }
            Request::StartDaemon(d) => assert_eq!(&back.daemon().unwrap(), d),
            Request::SetTimeouts(t) => assert_eq!(&back.timeouts(), t),
            Request::GetService(k)
            | Request::DelService(k)
            | Request::ZeroService(k)
            | Request::GetDestinations(k) => {
                assert_eq!(
                    ServiceKey::from_nlas(back.service_nlas().unwrap()).unwrap(),
                    *k
                );
            }
            _ => {}
        }
    }
}

#[test]
fn every_reply_roundtrips() {
    for mut s in services() {
        s.flags |= ServiceFlags::HASHED;
        s.stats = Some(sample_stats());
        let msg = IpvsMessage::kernel(
            IpvsCmd::NewService,
            vec![IpvsNla::Service(s.to_reply_nlas())],
        );
        assert_eq!(roundtrip(&msg, 2).service().unwrap(), s);
    }
    for mut d in destinations() {
        d.active_conns = 4;
        d.inactive_conns = 5;
        d.persist_conns = 6;
        d.stats = Some(Box::new(sample_stats()));
        let msg = IpvsMessage::kernel(IpvsCmd::NewDest, vec![IpvsNla::Dest(d.to_reply_nlas())]);
        // The reply's ADDR_FAMILY wins over the service family passed in.
        assert_eq!(
            roundtrip(&msg, 2)
                .destination(AddressFamily::Inet6)
                .unwrap(),
            d
        );
    }
    let d = Daemon::new(DaemonState::Master, "eth1", 3);
    let msg = IpvsMessage::kernel(IpvsCmd::NewDaemon, vec![IpvsNla::Daemon(d.to_nlas())]);
    assert_eq!(roundtrip(&msg, 2).daemon().unwrap(), d);
    let msg = IpvsMessage::kernel(
        IpvsCmd::SetConfig,
        vec![
            IpvsNla::TimeoutTcp(900),
            IpvsNla::TimeoutTcpFin(120),
            IpvsNla::TimeoutUdp(300),
        ],
    );
    assert_eq!(roundtrip(&msg, 0).timeouts(), Timeouts::new(900, 120, 300));
    let msg = IpvsMessage::kernel(
        IpvsCmd::SetInfo,
        vec![
            IpvsNla::InfoVersion(0x010201),
            IpvsNla::InfoConnTabSize(4096),
        ],
    );
    assert_eq!(
        roundtrip(&msg, 0).info().unwrap(),
        Info {
            version: 0x010201,
            conn_tab_size: 4096
        }
    );
}

#[test]
fn stats32_truncates_like_the_kernel() {
    let s = sample_stats();
    let svc = Service {
        stats: Some(s),
        ..Service::new(ServiceKey::tcp(sa("192.0.2.1:80")), "rr")
    };
    let mut nlas = svc.to_reply_nlas();
    // Drop STATS64: only the 32-bit set remains, where conns wraps.
    nlas.pop();
    let msg = IpvsMessage::kernel(IpvsCmd::NewService, vec![IpvsNla::Service(nlas)]);
    let back = roundtrip(&msg, 2).service().unwrap().stats.unwrap();
    assert_eq!(back.conns, 5_000_000_000u64 as u32 as u64);
    assert_eq!(back.inbytes, 1 << 40);
}

#[test]
fn multipart_dump_and_acks_in_one_datagram() {
    let mut buf = Vec::new();
    for s in services() {
        let msg = IpvsMessage::kernel(
            IpvsCmd::NewService,
            vec![IpvsNla::Service(s.to_reply_nlas())],
        );
        buf.extend(codec::encode(&msg, FAMILY, 2, 5, 1));
    }
    // NLMSG_DONE with code 0, then an NLMSG_ERROR ack and a refusal (ESRCH).
    buf.extend([20, 0, 0, 0, 3, 0, 2, 0, 5, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    let mut ack = vec![36, 0, 0, 0, 2, 0, 0, 1, 6, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
    ack.extend([20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    buf.extend(&ack);
    let mut err = ack.clone();
    err[8] = 7;
    err[16..20].copy_from_slice(&(-libc::ESRCH).to_ne_bytes());
    buf.extend(&err);
    let replies = codec::decode_datagram(&buf, FAMILY).unwrap();
    assert_eq!(replies.len(), services().len() + 3);
    assert!(
        replies[..5]
            .iter()
            .all(|r| matches!(r.kind, ReplyKind::Ipvs { multi: true, .. }))
    );
    assert_eq!(replies[5].kind, ReplyKind::Done { errno: 0 });
    assert_eq!(replies[6].kind, ReplyKind::Ack);
    assert_eq!(
        replies[7].kind,
        ReplyKind::Error {
            errno: libc::ESRCH,
            extack: None
        }
    );
}

#[test]
fn malformed_input_is_a_typed_error() {
    let good = Request::AddService(services()[0].clone()).message();
    let bytes = codec::encode(&good, FAMILY, 5, 1, 1);
    // Unknown command.
    let mut b = bytes.clone();
    b[16] = 99;
    assert_eq!(
        codec::decode_datagram(&b, FAMILY).unwrap_err(),
        DecodeError::UnknownCommand(99)
    );
    // Service AF attribute shortened to one byte (its length field says 5).
    let mut b = bytes.clone();
    b[24] = 5;
    let e = codec::decode_datagram(&b, FAMILY).unwrap_err();
    assert_eq!(e.as_str(), "attr_length");
    // Truncated genl header.
    let b = [
        20u8,
        0,
        0,
        0,
        FAMILY as u8,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        1,
        1,
        0,
        0,
    ];
    assert!(codec::decode_datagram(&b[..18], FAMILY).is_err());
    // Unknown address family in a key.
    let msg = IpvsMessage::kernel(
        IpvsCmd::NewService,
        vec![IpvsNla::Service(vec![
            lvs_ipvs::ServiceNla::Af(7),
            lvs_ipvs::ServiceNla::Fwmark(1),
        ])],
    );
    assert_eq!(
        msg.service().unwrap_err(),
        DecodeError::UnknownAddressFamily(7)
    );
    // Missing key attributes.
    let msg = IpvsMessage::kernel(
        IpvsCmd::NewService,
        vec![IpvsNla::Service(vec![lvs_ipvs::ServiceNla::Af(2)])],
    );
    assert_eq!(
        msg.service().unwrap_err(),
        DecodeError::MissingAttr("IPVS_SVC_ATTR_PROTOCOL")
    );
    let _ = IpAddr::from([0u8; 4]);
}

#[test]
fn netmask_wire_order_depends_on_family() {
    // IPv4 masks go in network order, IPv6 prefix lengths in host order (what ipvsadm
    // sends and what the kernel echoes back; see the fixtures).
    let v4 = Service::new(ServiceKey::tcp(sa("192.0.2.1:80")), "rr").with_netmask(0xffff_ff00);
    let b = codec::encode(&Request::AddService(v4).message(), FAMILY, 5, 1, 1);
    assert!(b.windows(8).any(|w| w == [8, 0, 9, 0, 0xff, 0xff, 0xff, 0]));
    let v6 = Service::new(ServiceKey::tcp(sa("[2001:db8::1]:80")), "rr").with_netmask(64);
    let b = codec::encode(&Request::AddService(v6).message(), FAMILY, 5, 1, 1);
    assert!(b.windows(8).any(|w| w == [8, 0, 9, 0, 64, 0, 0, 0]));
}
