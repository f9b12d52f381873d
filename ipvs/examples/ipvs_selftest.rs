//! Live self-test of the IPVS client against the running kernel. Run as root where
//! ip_vs (and its scheduler modules) are loaded, e.g. inside UML:
//!
//!     ipvs_selftest            # in a private network namespace (default)
//!     ipvs_selftest --no-netns # in the current namespace (its table is flushed!)
//!
//! It creates services and destinations of every kind, reads them back, compares them
//! with what it set and with `ipvsadm -Sn`, edits, deletes, checks the typed errors,
//! runs sync daemons, timeouts, zero and flush, and batches. One line per check;
//! exit status 1 on any failure. The table is left empty.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::{Command, ExitCode};

use lvs_ipvs::{
    AddressFamily, Daemon, DaemonState, Destination, Error, ForwardMethod, IpvsClient, Protocol,
    Request, Service, ServiceFlags, ServiceKey, Timeouts, TunnelFlags, TunnelType,
};

const SCHEDULERS: [&str; 13] = [
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
];
const IFACE: &str = "ipvst0";

struct Checker {
    failures: usize,
    checks: usize,
}

impl Checker {
    fn check(&mut self, name: &str, ok: bool, detail: impl FnOnce() -> String) {
        self.checks += 1;
        if ok {
            println!("ok   {name}");
        } else {
            self.failures += 1;
            println!("FAIL {name}: {}", detail());
        }
    }

    fn ok<T>(&mut self, name: &str, r: Result<T, Error>) -> Option<T> {
        match r {
            Ok(v) => {
                self.check(name, true, String::new);
                Some(v)
            }
            Err(e) => {
                self.check(name, false, || e.to_string());
                None
            }
        }
    }

    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, name: &str, got: &T, want: &T) {
        self.check(name, got == want, || format!("got {got:?}, want {want:?}"));
    }

    /// Expects the kernel to refuse with `errno` and ipvsadm's `message`.
    fn refused<T: std::fmt::Debug>(
        &mut self,
        name: &str,
        r: Result<T, Error>,
        errno: i32,
        message: &str,
    ) {
        match r {
            Err(Error::Kernel(k)) if k.errno == errno && k.message == message => {
                self.check(name, true, String::new);
            }
            other => self.check(name, false, || {
                format!("got {other:?}, want errno {errno} \"{message}\"")
            }),
        }
    }
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn sh(cmd: &str) -> Result<String, String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn enter_private_netns() -> Result<(), String> {
    // SAFETY: unshare(2) with CLONE_NEWNET only changes this (single-threaded) process's
    // network namespace; no memory is involved.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Loopback up (IPVS refuses destinations otherwise) and a dummy interface so the test
/// addresses have routes: real servers in 198.51.100.0/24 and 2001:db8:1::/64, virtual
/// addresses in 192.0.2.0/24 routed out of it.
fn setup_network() -> Result<(), String> {
    sh("ip link set lo up")?;
    sh(&format!(
        "ip link add {IFACE} type dummy && ip link set {IFACE} up"
    ))?;
    sh(&format!("ip addr add 198.51.100.1/24 dev {IFACE}"))?;
    sh(&format!(
        "ip -6 addr add 2001:db8:1::1/64 dev {IFACE} nodad"
    ))?;
    sh(&format!("ip route add 192.0.2.0/24 dev {IFACE}"))?;
    Ok(())
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
        Protocol::Other(_) => "other",
    }
}

fn canon_key(k: &ServiceKey) -> String {
    match k {
        ServiceKey::Inet {
            protocol,
            addr,
            port,
            ..
        } => {
            format!(
                "{} {}",
                proto_name(*protocol),
                SocketAddr::new(*addr, *port)
            )
        }
        ServiceKey::Fwmark {
            af: AddressFamily::Inet,
            mark,
        } => format!("fwm {mark}"),
        ServiceKey::Fwmark {
            af: AddressFamily::Inet6,
            mark,
        } => format!("fwm {mark} v6"),
    }
}

/// A service in a canonical text form both our values and `ipvsadm -Sn` lines map to.
fn canon_service(s: &Service) -> String {
    let mut out = format!("svc {} sched={}", canon_key(&s.key), s.scheduler);
    if s.flags.contains(ServiceFlags::PERSISTENT) {
        out += &format!(" persist={}", s.timeout);
        let full = Service::default_netmask(s.key.af());
        if s.netmask != full {
            out += &format!(" mask={}", s.netmask);
        }
    }
    if let Some(pe) = &s.pe_name {
        out += &format!(" pe={pe}");
    }
    for (bit, name) in [
        (ServiceFlags::SCHED1, "s1"),
        (ServiceFlags::SCHED2, "s2"),
        (ServiceFlags::SCHED3, "s3"),
    ] {
        if s.flags.contains(bit) {
            out += &format!(" {name}");
        }
    }
    if s.flags.contains(ServiceFlags::ONEPACKET) {
        out += " ops";
    }
    out
}

fn canon_dest(key: &ServiceKey, d: &Destination) -> String {
    let fwd = match d.fwd {
        ForwardMethod::Masq => "m",
        ForwardMethod::Route => "g",
        ForwardMethod::Tunnel => "i",
        ForwardMethod::Local => "l",
    };
    let mut out = format!(
        "dst {} {} fwd={fwd} w={}",
        canon_key(key),
        d.socket_addr(),
        d.weight
    );
    if d.fwd == ForwardMethod::Tunnel {
        out += &format!(" tun={}", d.tun_type.as_str());
        if d.tun_type == TunnelType::Gue {
            out += &format!(" tunport={}", d.tun_port);
        }
        if d.tun_type != TunnelType::Ipip {
            let csum = if d.tun_flags.contains(TunnelFlags::REMCSUM) {
                "remcsum"
            } else if d.tun_flags.contains(TunnelFlags::CSUM) {
                "csum"
            } else {
                "nocsum"
            };
            out += &format!(" {csum}");
        }
    }
    out
}

/// Parses `ipvsadm -Sn` into the canonical forms.
fn ipvsadm_save() -> Result<BTreeSet<String>, String> {
    let text = sh("ipvsadm -S -n")?;
    let mut set = BTreeSet::new();
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.is_empty() {
            continue;
        }
        let mut key = String::new();
        let (mut sched, mut persist, mut mask, mut pe) = (None, None, None, None);
        let (mut flags, mut ops) = (Vec::new(), false);
        let (mut real, mut fwd, mut weight) = (None, None, None);
        let (mut tun, mut tunport, mut csum) = (None, None, None);
        let mut v6 = false;
        let mut i = 1;
        while i < t.len() {
            let next = t.get(i + 1).copied().unwrap_or("");
            match t[i] {
                "-t" => key = format!("tcp {next}"),
                "-u" => key = format!("udp {next}"),
                "--sctp-service" => key = format!("sctp {next}"),
                "-f" => key = format!("fwm {next}"),
                "-6" => {
                    v6 = true;
                    i += 1;
                    continue;
                }
                "-s" => sched = Some(next.to_string()),
                "-p" => persist = Some(next.to_string()),
                "-M" => mask = Some(next.to_string()),
                "--pe" => pe = Some(next.to_string()),
                "-b" => flags = next.split(',').map(str::to_string).collect(),
                "-o" => {
                    ops = true;
                    i += 1;
                    continue;
                }
                "-r" => real = Some(next.to_string()),
                "-w" => weight = Some(next.to_string()),
                "-m" | "-g" | "-i" => {
                    fwd = Some(&t[i][1..]);
                    i += 1;
                    continue;
                }
                "--tun-type" => tun = Some(next.to_string()),
                "--tun-port" => tunport = Some(next.to_string()),
                "--tun-nocsum" | "--tun-csum" | "--tun-remcsum" => {
                    csum = Some(&t[i][6..]);
                    i += 1;
                    continue;
                }
                "-x" | "-y" => {}
                other => return Err(format!("unexpected token {other} in {line}")),
            }
            i += 2;
        }
        if v6 {
            key += " v6";
        }
        if t[0] == "-A" {
            let mut out = format!("svc {key} sched={}", sched.unwrap_or_default());
            if let Some(p) = persist {
                out += &format!(" persist={p}");
                // ipvsadm prints the mask dotted for IPv4; ours is a host-order u32.
                if let Some(m) = mask {
                    let m = match m.parse::<std::net::Ipv4Addr>() {
                        Ok(a) => u32::from(a).to_string(),
                        Err(_) => m,
                    };
                    if m != "4294967295" && m != "128" {
                        out += &format!(" mask={m}");
                    }
                }
            }
            if let Some(pe) = pe {
                out += &format!(" pe={pe}");
            }
            let mut bits = BTreeSet::new();
            for f in &flags {
                bits.insert(match f.as_str() {
                    "sh-fallback" | "mh-fallback" | "flag-1" => "s1",
                    "sh-port" | "mh-port" | "flag-2" => "s2",
                    "flag-3" => "s3",
                    other => return Err(format!("unknown flag {other}")),
                });
            }
            for b in bits {
                out += &format!(" {b}");
            }
            if ops {
                out += " ops";
            }
            set.insert(out);
        } else if t[0] == "-a" {
            let mut out = format!(
                "dst {key} {} fwd={} w={}",
                real.unwrap_or_default(),
                fwd.unwrap_or("?"),
                weight.unwrap_or_default()
            );
            if let Some(tt) = tun.filter(|_| fwd == Some("i")) {
                out += &format!(" tun={tt}");
                if tt == "gue" {
                    out += &format!(" tunport={}", tunport.unwrap_or_default());
                }
                if tt != "ipip" {
                    out += &format!(" {}", csum.unwrap_or("nocsum"));
                }
            }
            set.insert(out);
        }
    }
    Ok(set)
}

fn our_table(c: &mut IpvsClient) -> Result<BTreeSet<String>, Error> {
    let mut set = BTreeSet::new();
    for s in c.services()? {
        set.insert(canon_service(&s));
        for d in c.destinations(&s.key)? {
            set.insert(canon_dest(&s.key, &d));
        }
    }
    Ok(set)
}

/// Compares what was configured with what the kernel reports (ignoring HASHED and the
/// reply-only fields).
fn same_service(got: &Service, want: &Service) -> bool {
    got.key == want.key
        && got.scheduler == want.scheduler
        && got.pe_name == want.pe_name
        && got.flags.without(ServiceFlags::HASHED) == want.flags
        && got.timeout == want.timeout
        && (!want.flags.contains(ServiceFlags::PERSISTENT) || got.netmask == want.netmask)
}

fn same_dest(got: &Destination, want: &Destination) -> bool {
    let mut g = got.clone();
    g.active_conns = 0;
    g.inactive_conns = 0;
    g.persist_conns = 0;
    g.stats = None;
    g == *want
}

fn main() -> ExitCode {
    let private = !std::env::args().any(|a| a == "--no-netns");
    let mut ck = Checker {
        failures: 0,
        checks: 0,
    };
    if private && let Err(e) = enter_private_netns() {
        println!("FAIL netns: {e}");
        return ExitCode::FAILURE;
    }
    if let Err(e) = setup_network() {
        println!("FAIL network setup: {e}");
        return ExitCode::FAILURE;
    }
    let mut c = match IpvsClient::connect() {
        Ok(c) => c,
        Err(e) => {
            println!("FAIL connect: {e}");
            return ExitCode::FAILURE;
        }
    };
    ck.check("resolve IPVS family", c.family_id() >= 16, || {
        format!("id {}", c.family_id())
    });
    run(&mut c, &mut ck);
    // Leave nothing behind, whatever happened above.
    let _ = c.stop_daemon(DaemonState::Master);
    let _ = c.stop_daemon(DaemonState::Backup);
    ck.ok("final flush", c.flush());
    let left = c.services().map(|s| s.len());
    ck.check("table empty at exit", matches!(left, Ok(0)), || {
        format!("{left:?}")
    });
    if !private {
        let _ = sh(&format!("ip link del {IFACE}"));
    }
    println!("{} checks, {} failed", ck.checks, ck.failures);
    if ck.failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run(c: &mut IpvsClient, ck: &mut Checker) {
    if let Some(info) = ck.ok("get info", c.info()) {
        ck.check(
            "info version and table size",
            info.version >= 0x010200 && info.conn_tab_size > 0,
            || format!("{info:?}"),
        );
    }
    ck.ok("flush at start", c.flush());
    let n = c.services().map(|s| s.len());
    ck.check("empty table after flush", matches!(n, Ok(0)), || {
        format!("{n:?}")
    });

    // Timeouts: set, read back, restore.
    if let Some(orig) = ck.ok("get timeouts", c.timeouts()) {
        ck.ok(
            "set timeouts",
            c.set_timeouts(&Timeouts::new(901, 121, 301)),
        );
        let got = c.timeouts().ok();
        ck.eq(
            "timeouts read back",
            &got,
            &Some(Timeouts::new(901, 121, 301)),
        );
        ck.ok(
            "partial set leaves others",
            c.set_timeouts(&Timeouts {
                tcp: None,
                tcp_fin: None,
                udp: Some(302),
            }),
        );
        ck.eq(
            "timeouts after partial set",
            &c.timeouts().ok(),
            &Some(Timeouts::new(901, 121, 302)),
        );
        ck.ok("restore timeouts", c.set_timeouts(&orig));
    }

    // One TCP service per scheduler.
    let mut wanted: Vec<Service> = Vec::new();
    for (i, sched) in SCHEDULERS.iter().enumerate() {
        let key = ServiceKey::tcp(SocketAddr::new(IpAddr::from([192, 0, 2, 10 + i as u8]), 80));
        let svc = Service::new(key, *sched);
        match c.add_service(&svc) {
            Ok(()) => {
                ck.check(&format!("add service scheduler {sched}"), true, String::new);
                wanted.push(svc);
            }
            Err(e) => ck.check(&format!("add service scheduler {sched}"), false, || {
                e.to_string()
            }),
        }
    }
    // Every other kind of service.
    let kinds = vec![
        Service::new(ServiceKey::udp(sa("192.0.2.40:53")), "wrr"),
        Service::new(ServiceKey::sctp(sa("192.0.2.40:5000")), "lc"),
        Service::new(ServiceKey::fwmark(AddressFamily::Inet, 42), "sh")
            .with_flags(ServiceFlags::SH_FALLBACK | ServiceFlags::SH_PORT),
        Service::new(ServiceKey::fwmark(AddressFamily::Inet6, 43), "wlc"),
        Service::new(ServiceKey::tcp(sa("[2001:db8::10]:443")), "wlc")
            .persistent(300)
            .with_netmask(64),
        Service::new(ServiceKey::udp(sa("[2001:db8::10]:53")), "rr"),
        Service::new(ServiceKey::tcp(sa("192.0.2.41:80")), "rr")
            .persistent(600)
            .with_netmask(0xffff_ff00),
        Service::new(ServiceKey::udp(sa("192.0.2.41:5060")), "rr")
            .persistent(60)
            .with_pe("sip"),
        Service::new(ServiceKey::udp(sa("192.0.2.42:53")), "mh").with_flags(
            ServiceFlags::ONEPACKET | ServiceFlags::MH_FALLBACK | ServiceFlags::MH_PORT,
        ),
    ];
    for svc in kinds {
        let name = format!("add service {} {}", svc.key, svc.scheduler);
        if ck.ok(&name, c.add_service(&svc)).is_some() {
            wanted.push(svc);
        }
    }
    // Read each back, by GET_SERVICE and in the dump.
    let dump = c.services().unwrap_or_default();
    ck.eq("dump has every service", &dump.len(), &wanted.len());
    for want in &wanted {
        let got = c.service(&want.key);
        let ok = matches!(&got, Ok(g) if same_service(g, want));
        ck.check(&format!("get service {} matches", want.key), ok, || {
            format!("got {got:?}, want {want:?}")
        });
        let in_dump = dump.iter().any(|g| same_service(g, want));
        ck.check(&format!("dump has {}", want.key), in_dump, || {
            format!("want {want:?}")
        });
    }

    // Destinations of every forwarding method and tunnel type.
    let tcp = ServiceKey::tcp(sa("192.0.2.10:80"));
    let dests = vec![
        Destination::new(sa("198.51.100.2:8080"), ForwardMethod::Masq, 3).with_thresholds(100, 10),
        Destination::new(sa("198.51.100.3:80"), ForwardMethod::Route, 1),
        Destination::new(sa("198.51.100.4:80"), ForwardMethod::Tunnel, 2),
        Destination::new(sa("198.51.100.5:80"), ForwardMethod::Tunnel, 1).with_tunnel(
            TunnelType::Gue,
            6080,
            TunnelFlags::CSUM,
        ),
        Destination::new(sa("198.51.100.6:80"), ForwardMethod::Tunnel, 1).with_tunnel(
            TunnelType::Gre,
            0,
            TunnelFlags::NOCSUM,
        ),
        Destination::new(sa("198.51.100.7:80"), ForwardMethod::Tunnel, 4).with_tunnel(
            TunnelType::Gue,
            6081,
            TunnelFlags::REMCSUM,
        ),
        Destination::new(sa("198.51.100.8:80"), ForwardMethod::Route, 0),
    ];
    for d in &dests {
        ck.ok(
            &format!("add destination {} {}", d.socket_addr(), d.fwd.as_str()),
            c.add_destination(&tcp, d),
        );
    }
    let v6 = ServiceKey::tcp(sa("[2001:db8::10]:443"));
    let d6 = Destination::new(sa("[2001:db8:1::2]:8443"), ForwardMethod::Masq, 7);
    ck.ok("add IPv6 destination", c.add_destination(&v6, &d6));
    let fwm = ServiceKey::fwmark(AddressFamily::Inet, 42);
    let dfw = Destination::new(sa("198.51.100.9:0"), ForwardMethod::Route, 5);
    ck.ok("add fwmark destination", c.add_destination(&fwm, &dfw));
    let udp = ServiceKey::udp(sa("192.0.2.40:53"));
    let dudp = Destination::new(sa("198.51.100.2:5353"), ForwardMethod::Masq, 1);
    ck.ok("add UDP destination", c.add_destination(&udp, &dudp));

    let got = c.destinations(&tcp).unwrap_or_default();
    ck.eq("destination count", &got.len(), &dests.len());
    for want in &dests {
        let ok = got.iter().any(|g| same_dest(g, want));
        ck.check(
            &format!("destination {} reads back", want.socket_addr()),
            ok,
            || format!("got {got:?}"),
        );
    }
    let got6 = c.destinations(&v6).unwrap_or_default();
    ck.check(
        "IPv6 destination reads back",
        got6.len() == 1 && same_dest(&got6[0], &d6),
        || format!("{got6:?}"),
    );
    let gotfw = c.destinations(&fwm).unwrap_or_default();
    ck.check(
        "fwmark destination reads back",
        gotfw.len() == 1 && same_dest(&gotfw[0], &dfw),
        || format!("{gotfw:?}"),
    );

    // Compare the whole table with ipvsadm's view.
    compare_with_ipvsadm(c, ck, "after adds");

    // Edits.
    let edited = Service::new(tcp, "wrr")
        .persistent(120)
        .with_netmask(0xffff_0000);
    ck.ok("edit service", c.edit_service(&edited));
    let got = c.service(&tcp);
    ck.check(
        "edited service reads back",
        matches!(&got, Ok(g) if same_service(g, &edited)),
        || format!("{got:?}"),
    );
    let mut d0 = dests[0].clone();
    d0.weight = 9;
    d0.u_threshold = 200;
    d0.l_threshold = 20;
    ck.ok("edit destination", c.edit_destination(&tcp, &d0));
    let got = c.destinations(&tcp).unwrap_or_default();
    ck.check(
        "edited destination reads back",
        got.iter().any(|g| same_dest(g, &d0)),
        || format!("{got:?}"),
    );
    compare_with_ipvsadm(c, ck, "after edits");

    // Typed errors.
    ck.refused(
        "duplicate service",
        c.add_service(&Service::new(tcp, "rr")),
        libc::EEXIST,
        "Service already exists",
    );
    ck.refused(
        "unknown scheduler",
        c.add_service(&Service::new(
            ServiceKey::tcp(sa("192.0.2.60:80")),
            "nosuch",
        )),
        libc::ENOENT,
        "Scheduler not found: ip_vs_nosuch.ko",
    );
    ck.refused(
        "missing destination",
        c.del_destination(&tcp, sa("198.51.100.99:80")),
        libc::ENOENT,
        "No such destination",
    );
    ck.refused(
        "edit missing destination",
        c.edit_destination(
            &tcp,
            &Destination::new(sa("198.51.100.99:80"), ForwardMethod::Route, 1),
        ),
        libc::ENOENT,
        "No such destination",
    );
    ck.refused(
        "duplicate destination",
        c.add_destination(&tcp, &dests[1]),
        libc::EEXIST,
        "Destination already exists",
    );
    let missing = ServiceKey::tcp(sa("192.0.2.99:80"));
    ck.refused(
        "destination of missing service",
        c.add_destination(&missing, &dests[1]),
        libc::ESRCH,
        "Service not defined",
    );
    ck.refused(
        "delete missing service",
        c.del_service(&missing),
        libc::ESRCH,
        "No such service",
    );
    ck.refused(
        "get missing service",
        c.service(&missing),
        libc::ESRCH,
        "No such service",
    );
    ck.refused(
        "zero missing service",
        c.zero(Some(&missing)),
        libc::ESRCH,
        "No such service",
    );

    // Counters and zero: three datagrams to the UDP service are scheduled to its NAT
    // destination (and dropped on the dummy interface), then zeroed.
    if let Ok(sock) = UdpSocket::bind("198.51.100.1:0") {
        for _ in 0..3 {
            let _ = sock.send_to(b"ping", "192.0.2.40:53");
        }
    }
    // The kernel folds its per-CPU counters into what it reports from the estimator
    // timer (every 2 s), so wait for them to show up.
    let mut conns = None;
    for _ in 0..50 {
        conns = c
            .service(&udp)
            .ok()
            .and_then(|s| s.stats)
            .map(|s| (s.conns, s.inpkts));
        if matches!(conns, Some((c, p)) if c >= 1 && p >= 3) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    ck.check(
        "counters count traffic",
        matches!(conns, Some((c, p)) if c >= 1 && p >= 3),
        || format!("{conns:?}"),
    );
    let dconns = c
        .destinations(&udp)
        .ok()
        .and_then(|d| d.first().and_then(|d| d.stats.as_deref().copied()))
        .map(|s| s.inpkts);
    ck.check(
        "destination counters count traffic",
        matches!(dconns, Some(p) if p >= 3),
        || format!("{dconns:?}"),
    );
    ck.ok("zero one service", c.zero(Some(&udp)));
    let after = c.service(&udp).ok().and_then(|s| s.stats).map(|s| s.conns);
    ck.eq("service counters zeroed", &after, &Some(0));
    ck.ok("zero all", c.zero(None));

    // Batch: 100 NEW_DEST in as few sendmsg calls as fit, then a batch with one bad
    // request in the middle.
    let bkey = ServiceKey::tcp(sa("192.0.2.50:80"));
    ck.ok(
        "add batch service",
        c.add_service(&Service::new(bkey, "wlc")),
    );
    let reqs: Vec<Request> = (0..100u32)
        .map(|i| {
            let addr = SocketAddr::new(IpAddr::from([198, 51, 100, 10 + i as u8]), 8080);
            Request::AddDestination(bkey, Destination::new(addr, ForwardMethod::Masq, 1 + i))
        })
        .collect();
    if let Some(rep) = ck.ok("batch of 100 NEW_DEST", c.execute_batch(&reqs)) {
        ck.check(
            "batch all acked",
            rep.is_ok() && rep.results.len() == 100,
            || format!("{:?}", rep.first_error()),
        );
        ck.eq("batch used one sendmsg", &rep.sendmsg_calls, &1);
    }
    let n = c.destinations(&bkey).map(|d| d.len());
    ck.check("batch destinations present", matches!(n, Ok(100)), || {
        format!("{n:?}")
    });
    let mixed = vec![
        Request::EditDestination(
            bkey,
            Destination::new(sa("198.51.100.10:8080"), ForwardMethod::Masq, 50),
        ),
        Request::AddDestination(
            bkey,
            Destination::new(sa("198.51.100.11:8080"), ForwardMethod::Masq, 1),
        ),
        Request::DelDestination(bkey, sa("198.51.100.12:8080")),
    ];
    if let Some(rep) = ck.ok("batch with a failure", c.execute_batch(&mixed)) {
        let first = rep
            .first_error()
            .map(|(i, e)| (i, e.errno, e.message.clone()));
        ck.eq(
            "batch reports the failed request",
            &first,
            &Some((1, libc::EEXIST, "Destination already exists".to_string())),
        );
        ck.check(
            "batch continues after failure",
            rep.results[0].is_ok() && rep.results[2].is_ok(),
            || format!("{:?}", rep.results),
        );
    }
    let n = c.destinations(&bkey).map(|d| d.len());
    ck.check("batch delete applied", matches!(n, Ok(99)), || {
        format!("{n:?}")
    });
    compare_with_ipvsadm(c, ck, "after batch");

    // Deletes.
    ck.ok(
        "delete destination",
        c.del_destination(&tcp, dests[6].socket_addr()),
    );
    let n = c.destinations(&tcp).map(|d| d.len());
    ck.check("destination gone", matches!(n, Ok(6)), || format!("{n:?}"));
    ck.ok("delete service", c.del_service(&udp));
    ck.refused(
        "deleted service is gone",
        c.service(&udp),
        libc::ESRCH,
        "No such service",
    );
    ck.ok(
        "delete IPv6 destination",
        c.del_destination(&v6, d6.socket_addr()),
    );

    // Sync daemons need a table without mixed-family destinations; ours has none.
    let master = Daemon::new(DaemonState::Master, "lo", 5);
    let mut backup = Daemon::new(DaemonState::Backup, "lo", 7);
    backup.sync_maxlen = Some(1400);
    backup.mcast_group = Some("224.0.0.82".parse().unwrap());
    backup.mcast_port = Some(8850);
    backup.mcast_ttl = Some(2);
    ck.ok("start master daemon", c.start_daemon(&master));
    ck.ok("start backup daemon", c.start_daemon(&backup));
    ck.refused(
        "master already running",
        c.start_daemon(&master),
        libc::EEXIST,
        "Daemon has already run",
    );
    let got = c.daemons().unwrap_or_default();
    let m = got.iter().find(|d| d.state == DaemonState::Master);
    ck.check("master daemon reads back", matches!(m, Some(d) if d.mcast_ifn == "lo" && d.syncid == 5 && d.mcast_port == Some(8848) && d.mcast_group == Some("224.0.0.81".parse().unwrap())), || format!("{got:?}"));
    let b = got.iter().find(|d| d.state == DaemonState::Backup);
    ck.eq("backup daemon reads back", &b, &Some(&backup));
    let text = sh("ipvsadm -L --daemon").unwrap_or_default();
    ck.check("ipvsadm sees both daemons", text.contains("master sync daemon (mcast=lo, syncid=5") && text.contains("backup sync daemon (mcast=lo, syncid=7, maxlen=1400, group=224.0.0.82, port=8850, ttl=2)"), || text.clone());
    ck.ok("stop master daemon", c.stop_daemon(DaemonState::Master));
    ck.ok("stop backup daemon", c.stop_daemon(DaemonState::Backup));
    ck.refused(
        "no daemon running",
        c.stop_daemon(DaemonState::Master),
        libc::ESRCH,
        "No daemon is running",
    );
    let n = c.daemons().map(|d| d.len());
    ck.check("no daemons listed", matches!(n, Ok(0)), || format!("{n:?}"));

    // IPv6 real server behind an IPv4 service (tunnel only).
    let v4svc = ServiceKey::tcp(sa("192.0.2.41:80"));
    let mixed = Destination::new(sa("[2001:db8:1::3]:80"), ForwardMethod::Tunnel, 1);
    ck.ok(
        "add IPv6 destination to IPv4 service",
        c.add_destination(&v4svc, &mixed),
    );
    let got = c.destinations(&v4svc).unwrap_or_default();
    ck.check(
        "mixed-family destination reads back",
        got.len() == 1 && same_dest(&got[0], &mixed),
        || format!("{got:?}"),
    );
    compare_with_ipvsadm(c, ck, "before flush");

    ck.ok("flush", c.flush());
    let n = c.services().map(|s| s.len());
    ck.check("flush empties the table", matches!(n, Ok(0)), || {
        format!("{n:?}")
    });
}

fn compare_with_ipvsadm(c: &mut IpvsClient, ck: &mut Checker, when: &str) {
    let ours = our_table(c);
    let theirs = ipvsadm_save();
    match (ours, theirs) {
        (Ok(ours), Ok(theirs)) => {
            let only_ours: Vec<_> = ours.difference(&theirs).collect();
            let only_theirs: Vec<_> = theirs.difference(&ours).collect();
            ck.check(
                &format!("ipvsadm -Sn agrees {when} ({} lines)", ours.len()),
                only_ours.is_empty() && only_theirs.is_empty(),
                || format!("only ours: {only_ours:?}; only ipvsadm: {only_theirs:?}"),
            );
        }
        (a, b) => ck.check(&format!("ipvsadm -Sn agrees {when}"), false, || {
            format!("{:?} / {:?}", a.err(), b.err())
        }),
    }
}
