//! Advertisements captured from keepalived 2.2.7 (see tests/fixtures/README.md):
//! parse must give the expected Repr, emit must give back the same bytes
//! (checksum included), and receive validation must accept them.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use common::{Captured, fixture_path, read_pcap};
use vrrpd::instance::{Action, GarpConfig, Instance, InstanceConfig, State};
use vrrpd::rx::validate;
use vrrpd::wire::{
    Addresses, Auth, Body, IpPair, Packet, Repr, VRRP_GROUP_V4, VRRP_GROUP_V6, Version,
};

const KEEPALIVED_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

fn v4(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, last)
}

fn load(name: &str) -> Vec<Captured> {
    let packets = read_pcap(&fixture_path(name));
    assert!(packets.len() >= 3, "{name}: too few packets");
    packets
}

/// Every capture: steady adverts at `expected`'s priority, then the single
/// priority-0 advert keepalived sends on SIGTERM.
fn check_capture(name: &str, expected: &Repr, cfg: &InstanceConfig) {
    let packets = load(name);
    let (last, steady) = packets.split_last().unwrap();
    for c in steady {
        check_packet(c, expected, cfg);
    }
    let goodbye = Repr {
        priority: 0,
        ..expected.clone()
    };
    check_packet(last, &goodbye, cfg);
}

fn check_packet(c: &Captured, expected: &Repr, cfg: &InstanceConfig) {
    assert_eq!(c.ttl, 255);
    let packet = Packet::new_checked(&c.payload[..]).unwrap();
    assert!(packet.verify_checksum(&c.ip));
    let repr = Repr::parse(&packet, &c.ip).unwrap();
    assert_eq!(&repr, expected);
    assert_eq!(
        repr.to_bytes(&c.ip),
        c.payload,
        "emit must recreate the captured bytes"
    );
    let valid = validate(&c.payload, &c.ip, c.ttl, cfg).unwrap();
    assert!(!valid.address_mismatch);
    assert_eq!(valid.src, c.ip.src());
}

fn backup_cfg(
    version: Version,
    vrid: u8,
    primary: IpAddr,
    vips: Vec<IpAddr>,
    interval: Duration,
) -> InstanceConfig {
    InstanceConfig {
        vrid,
        version,
        priority: 100,
        advert_interval: interval,
        preempt: true,
        preempt_delay: Duration::ZERO,
        primary_addr: primary,
        vips,
        auth: Auth::None,
        garp: GarpConfig::default(),
    }
}

fn v2_noauth_repr() -> Repr {
    Repr {
        vrid: 51,
        priority: 150,
        body: Body::V2 {
            advert_int: 1,
            auth: Auth::None,
            addrs: vec![v4(100), v4(101)],
        },
    }
}

fn v2_noauth_cfg() -> InstanceConfig {
    backup_cfg(
        Version::V2,
        51,
        v4(2).into(),
        vec![v4(100).into(), v4(101).into()],
        Duration::from_secs(1),
    )
}

#[test]
fn keepalived_v2_no_auth() {
    let packets = load("v2_noauth.pcap");
    assert_eq!(
        packets[0].ip,
        IpPair::V4 {
            src: KEEPALIVED_V4,
            dst: VRRP_GROUP_V4
        }
    );
    check_capture("v2_noauth.pcap", &v2_noauth_repr(), &v2_noauth_cfg());
}

#[test]
fn keepalived_v2_simple_text_auth() {
    let expected = Repr {
        vrid: 52,
        priority: 100,
        body: Body::V2 {
            advert_int: 1,
            auth: Auth::simple("s3cret").unwrap(),
            addrs: vec![v4(110)],
        },
    };
    let mut cfg = backup_cfg(
        Version::V2,
        52,
        v4(2).into(),
        vec![v4(110).into()],
        Duration::from_secs(1),
    );
    cfg.auth = Auth::simple("s3cret").unwrap();
    check_capture("v2_pass.pcap", &expected, &cfg);

    // The same bytes against a different password: a distinct reject reason.
    cfg.auth = Auth::simple("wrong").unwrap();
    let c = &load("v2_pass.pcap")[0];
    assert_eq!(
        validate(&c.payload, &c.ip, c.ttl, &cfg)
            .unwrap_err()
            .as_str(),
        "auth_failure"
    );
}

#[test]
fn keepalived_v3_ipv4_centiseconds() {
    let expected = Repr {
        vrid: 53,
        priority: 200,
        body: Body::V3 {
            max_advert_int: 50,
            addrs: Addresses::V4(vec![v4(120), v4(121), v4(122)]),
        },
    };
    assert_eq!(expected.advert_interval(), Duration::from_millis(500));
    // Our own interval differs on purpose: v3 accepts it (the backup learns it).
    let cfg = backup_cfg(
        Version::V3,
        53,
        v4(2).into(),
        vec![v4(120).into(), v4(121).into(), v4(122).into()],
        Duration::from_secs(1),
    );
    check_capture("v3_ipv4.pcap", &expected, &cfg);
}

#[test]
fn keepalived_v3_ipv6_link_local_source() {
    let vips: Vec<Ipv6Addr> = vec!["2001:db8::54".parse().unwrap(), "fe80::54".parse().unwrap()];
    let expected = Repr {
        vrid: 54,
        priority: 120,
        body: Body::V3 {
            max_advert_int: 100,
            addrs: Addresses::V6(vips.clone()),
        },
    };
    let packets = load("v3_ipv6.pcap");
    let IpPair::V6 { src, dst } = packets[0].ip else {
        panic!("expected IPv6")
    };
    assert_eq!(dst, VRRP_GROUP_V6);
    assert_eq!(
        src.segments()[0] & 0xffc0,
        0xfe80,
        "VRRPv3 over IPv6 uses a link-local source"
    );
    let cfg = backup_cfg(
        Version::V3,
        54,
        "fe80::2".parse().unwrap(),
        vips.into_iter().map(IpAddr::V6).collect(),
        Duration::from_secs(1),
    );
    check_capture("v3_ipv6.pcap", &expected, &cfg);
}

#[test]
fn keepalived_adverts_are_one_interval_apart() {
    for (name, interval) in [
        ("v2_noauth.pcap", Duration::from_secs(1)),
        ("v3_ipv4.pcap", Duration::from_millis(500)),
    ] {
        let packets = load(name);
        let steady = &packets[..packets.len() - 1];
        for pair in steady.windows(2) {
            let gap = pair[1].ts - pair[0].ts;
            let err = gap.abs_diff(interval);
            assert!(err < Duration::from_millis(20), "{name}: gap {gap:?}");
        }
    }
}

/// Replays the real master's adverts, with their capture times, into a
/// priority-100 backup: it stays backup while they arrive, and the final
/// priority-0 advert makes it master after Skew_Time (0.609375 s), well before
/// Master_Down_Interval.
#[test]
fn backup_follows_captured_master_then_takes_over_on_priority_zero() {
    let packets = load("v2_noauth.pcap");
    let t0 = Instant::now();
    let at = |c: &Captured| t0 + (c.ts - packets[0].ts);
    let cfg = v2_noauth_cfg();
    let mut inst = Instance::new(cfg.clone()).unwrap();
    inst.startup(t0);
    while inst.poll_action().is_some() {}
    for c in &packets {
        let now = at(c);
        assert!(
            inst.poll_timeout().unwrap() > now,
            "master down must not fire while adverts arrive"
        );
        let valid = validate(&c.payload, &c.ip, c.ttl, &cfg).unwrap();
        inst.handle_advert(now, &valid.advert());
        assert_eq!(inst.state(), State::Backup);
    }
    let last = at(packets.last().unwrap());
    let deadline = inst.poll_timeout().unwrap();
    assert_eq!(deadline - last, Duration::from_nanos(609_375_000));
    inst.handle_timeout(deadline);
    assert_eq!(
        inst.poll_action(),
        Some(Action::StateChanged {
            old: State::Backup,
            new: State::Master
        })
    );
}
