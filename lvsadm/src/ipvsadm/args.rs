//! ipvsadm's command line: one command option plus modifiers, short options bundled
//! (`-Ln`), long options with `=` or a separate value, `-p` with an optional timeout.
//! The same parser reads `-R` input lines, so a restore file means what ipvsadm says.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use lvs_ipvs::{
    AddressFamily, Daemon, DaemonState, Destination, ForwardMethod, Protocol, Request, Service,
    ServiceFlags, ServiceKey, Timeouts, TunnelFlags, TunnelType,
};

/// ipvsadm's default scheduler.
pub const DEFAULT_SCHEDULER: &str = "wlc";
/// ipvsadm's default persistence timeout, seconds.
pub const DEFAULT_PERSISTENCE: u32 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmd {
    AddService,
    EditService,
    DelService,
    Flush,
    List,
    AddDest,
    EditDest,
    DelDest,
    SetTimeouts,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
    Help,
    Version,
}

impl Cmd {
    /// The names ipvsadm's messages use.
    pub fn name(self) -> &'static str {
        match self {
            Cmd::AddService => "add-service",
            Cmd::EditService => "edit-service",
            Cmd::DelService => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddDest => "add-server",
            Cmd::EditDest => "edit-server",
            Cmd::DelDest => "delete-server",
            Cmd::SetTimeouts => "set",
            Cmd::StartDaemon => "start-daemon",
            Cmd::StopDaemon => "stop-daemon",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
            Cmd::Help => "help",
            Cmd::Version => "version",
        }
    }
}

/// Modifier options, named as ipvsadm names them in "Illegal ... option" messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Service,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    McastInterface,
    SyncId,
    Numeric,
    Connection,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    SyncMaxlen,
    McastGroup,
    McastPort,
    McastTtl,
    TunType,
    TunPort,
    TunCsum,
    TunInfo,
}

impl Opt {
    fn name(self) -> &'static str {
        match self {
            Opt::Service => "service-address",
            Opt::Scheduler => "scheduler",
            Opt::Persistent => "persistent",
            Opt::Netmask => "netmask",
            Opt::RealServer => "real-server",
            Opt::Forward => "forwarding-method",
            Opt::Weight => "weight",
            Opt::UThreshold => "u-threshold",
            Opt::LThreshold => "l-threshold",
            Opt::McastInterface => "mcast-interface",
            Opt::SyncId => "syncid",
            Opt::Numeric => "numeric",
            Opt::Connection => "connection",
            Opt::Timeout => "timeout",
            Opt::Daemon => "daemon",
            Opt::Stats => "stats",
            Opt::Rate => "rate",
            Opt::Thresholds => "thresholds",
            Opt::PersistentConn => "persistent-conn",
            Opt::NoSort => "nosort",
            Opt::Sort => "sort",
            Opt::Exact => "exact",
            Opt::Ipv6 => "ipv6",
            Opt::Ops => "ops",
            Opt::Pe => "pe",
            Opt::SchedFlags => "sched-flags",
            Opt::SyncMaxlen => "sync-maxlen",
            Opt::McastGroup => "mcast-group",
            Opt::McastPort => "mcast-port",
            Opt::McastTtl => "mcast-ttl",
            Opt::TunType => "tun-type",
            Opt::TunPort => "tun-port",
            Opt::TunCsum => "tun-csum-flags",
            Opt::TunInfo => "tun-info",
        }
    }

    /// Which commands accept this modifier (ipvsadm's commands_v_options, simplified to
    /// allowed/not allowed).
    fn allowed_with(self, cmd: Cmd) -> bool {
        use Cmd as C;
        let service_cmds = matches!(cmd, C::AddService | C::EditService);
        let dest_cmds = matches!(cmd, C::AddDest | C::EditDest);
        match self {
            Opt::Service => matches!(
                cmd,
                C::AddService
                    | C::EditService
                    | C::DelService
                    | C::AddDest
                    | C::EditDest
                    | C::DelDest
                    | C::List
                    | C::Zero
            ),
            Opt::Scheduler
            | Opt::Persistent
            | Opt::Netmask
            | Opt::Ops
            | Opt::Pe
            | Opt::SchedFlags => service_cmds,
            Opt::RealServer => dest_cmds || cmd == C::DelDest,
            Opt::Forward => dest_cmds,
            Opt::Weight
            | Opt::UThreshold
            | Opt::LThreshold
            | Opt::TunType
            | Opt::TunPort
            | Opt::TunCsum => dest_cmds,
            Opt::McastInterface
            | Opt::SyncId
            | Opt::SyncMaxlen
            | Opt::McastGroup
            | Opt::McastPort
            | Opt::McastTtl => cmd == C::StartDaemon,
            Opt::Numeric => matches!(cmd, C::List | C::Save),
            Opt::Ipv6 => !matches!(cmd, C::Flush | C::SetTimeouts),
            Opt::Connection
            | Opt::Timeout
            | Opt::Daemon
            | Opt::Stats
            | Opt::Rate
            | Opt::Thresholds
            | Opt::PersistentConn
            | Opt::NoSort
            | Opt::Sort
            | Opt::Exact
            | Opt::TunInfo => cmd == C::List,
        }
    }
}

/// A usage error: ipvsadm exits 2 for these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

/// How the service was named on the command line, resolved once the whole line is read
/// (`-6` may come after `-f`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum ServiceArg {
    Inet(Protocol, IpAddr, Option<u16>),
    Fwmark(u32),
}

/// What `-L` shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListFormat {
    pub numeric: bool,
    pub stats: bool,
    pub rate: bool,
    pub thresholds: bool,
    pub persistent_conn: bool,
    pub tun_info: bool,
    pub exact: bool,
    pub nosort: bool,
}

/// A fully parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub cmd: Cmd,
    pub key: Option<ServiceKey>,
    pub service: Option<Service>,
    pub dest: Option<Destination>,
    pub format: ListFormat,
    pub connections: bool,
    pub timeout: bool,
    pub daemon_list: bool,
    pub timeouts: Timeouts,
    pub daemon: Option<Daemon>,
    pub daemon_state: Option<DaemonState>,
}

#[derive(Default)]
struct Raw {
    cmd: Option<Cmd>,
    seen: Vec<Opt>,
    service: Option<ServiceArg>,
    ipv6: bool,
    scheduler: Option<String>,
    persistent: Option<u32>,
    netmask: Option<String>,
    real: Option<(IpAddr, Option<u16>)>,
    fwd: Option<ForwardMethod>,
    weight: Option<u32>,
    u_threshold: Option<u32>,
    l_threshold: Option<u32>,
    ops: bool,
    pe: Option<String>,
    sched_flags: ServiceFlags,
    tun_type: Option<TunnelType>,
    tun_port: Option<u16>,
    tun_flags: Option<TunnelFlags>,
    format: ListFormat,
    connections: bool,
    timeout: bool,
    daemon_list: bool,
    set: Option<[u32; 3]>,
    daemon_state: Option<DaemonState>,
    mcast_ifn: Option<String>,
    syncid: Option<u32>,
    sync_maxlen: Option<u16>,
    mcast_group: Option<IpAddr>,
    mcast_port: Option<u16>,
    mcast_ttl: Option<u8>,
}

impl Raw {
    fn set_cmd(&mut self, cmd: Cmd) -> Result<(), UsageError> {
        if let Some(old) = self.cmd {
            return Err(usage(format!(
                "Multiple commands specified: '{}' and '{}'",
                old.name(),
                cmd.name()
            )));
        }
        self.cmd = Some(cmd);
        Ok(())
    }

    fn see(&mut self, opt: Opt) -> Result<(), UsageError> {
        if self.seen.contains(&opt) {
            return Err(usage(format!(
                "Multiple '{}' options specified",
                opt.name()
            )));
        }
        self.seen.push(opt);
        Ok(())
    }
}

fn number<T: std::str::FromStr>(what: &str, v: &str) -> Result<T, UsageError> {
    v.parse()
        .map_err(|_| usage(format!("illegal {what} specified")))
}

/// `addr`, `addr:port`, `[v6]`, `[v6]:port`: ipvsadm's forms, numeric only.
pub fn parse_addr_port(s: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (addr, tail) = rest.split_once(']')?;
        let addr: IpAddr = addr.parse().ok()?;
        if !addr.is_ipv6() {
            return None;
        }
        // ipvsadm wants the port whenever the address is bracketed.
        return Some((addr, Some(tail.strip_prefix(':')?.parse().ok()?)));
    }
    match s.split_once(':') {
        Some((a, p)) => {
            let addr: Ipv4Addr = a.parse().ok()?;
            Some((IpAddr::V4(addr), Some(p.parse().ok()?)))
        }
        None => Some((IpAddr::V4(s.parse().ok()?), None)),
    }
}

fn parse_sched_flags(v: &str) -> Result<ServiceFlags, UsageError> {
    let mut flags = ServiceFlags::NONE;
    for f in v.split(',') {
        flags |= match f {
            "sh-fallback" | "mh-fallback" | "flag-1" => ServiceFlags::SCHED1,
            "sh-port" | "mh-port" | "flag-2" => ServiceFlags::SCHED2,
            "flag-3" => ServiceFlags::SCHED3,
            _ => return Err(usage(format!("invalid scheduler flag '{f}'"))),
        };
    }
    Ok(flags)
}

fn parse_netmask(af: AddressFamily, v: &str) -> Result<u32, UsageError> {
    match af {
        AddressFamily::Inet => v
            .parse::<Ipv4Addr>()
            .map(u32::from)
            .map_err(|_| usage("Illegal netmask specified")),
        AddressFamily::Inet6 => match v.parse::<u32>() {
            Ok(n) if (1..=128).contains(&n) => Ok(n),
            _ => Err(usage("Illegal netmask specified")),
        },
    }
}

/// Long options: (name, takes a value, handler tag).
const LONG: &[(&str, bool, char)] = &[
    ("add-service", false, 'A'),
    ("edit-service", false, 'E'),
    ("delete-service", false, 'D'),
    ("clear", false, 'C'),
    ("list", false, 'L'),
    ("add-server", false, 'a'),
    ("edit-server", false, 'e'),
    ("delete-server", false, 'd'),
    ("zero", false, 'Z'),
    ("restore", false, 'R'),
    ("save", false, 'S'),
    ("help", false, 'h'),
    ("version", false, 'v'),
    ("tcp-service", true, 't'),
    ("udp-service", true, 'u'),
    ("sctp-service", true, 'q'),
    ("fwmark-service", true, 'f'),
    ("scheduler", true, 's'),
    ("persistent", false, 'p'),
    ("netmask", true, 'M'),
    ("real-server", true, 'r'),
    ("gatewaying", false, 'g'),
    ("ipip", false, 'i'),
    ("masquerading", false, 'm'),
    ("weight", true, 'w'),
    ("u-threshold", true, 'x'),
    ("l-threshold", true, 'y'),
    ("numeric", false, 'n'),
    ("connection", false, 'c'),
    ("ipv6", false, '6'),
    ("ops", false, 'o'),
    ("sched-flags", true, 'b'),
    ("pe", true, '1'),
    ("set", false, '2'),
    ("start-daemon", true, '3'),
    ("stop-daemon", true, '4'),
    ("mcast-interface", true, '5'),
    ("syncid", true, '7'),
    ("sync-maxlen", true, '8'),
    ("mcast-group", true, '9'),
    ("mcast-port", true, '0'),
    ("mcast-ttl", true, 'T'),
    ("timeout", false, 'O'),
    ("daemon", false, 'Y'),
    ("stats", false, 'X'),
    ("rate", false, 'K'),
    ("thresholds", false, 'H'),
    ("persistent-conn", false, 'P'),
    ("nosort", false, 'N'),
    ("sort", false, 'Q'),
    ("exact", false, 'U'),
    ("tun-type", true, 'W'),
    ("tun-port", true, 'I'),
    ("tun-nocsum", false, 'j'),
    ("tun-csum", false, 'k'),
    ("tun-remcsum", false, 'l'),
    ("tun-info", false, 'J'),
];

/// Short options that take a value (`-p` takes an optional one, handled apart).
const SHORT_WITH_VALUE: &str = "tufsMrwxyb";
const SHORT: &str = "AEDCLlaedZRShvtufsMrgimwxyncop6b";

/// Parses ipvsadm arguments (without argv[0]).
pub fn parse(args: &[String]) -> Result<Invocation, UsageError> {
    let mut raw = Raw::default();
    // Like ipvsadm, no arguments at all means -L.
    if args.is_empty() {
        raw.cmd = Some(Cmd::List);
    }
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            let Some(&(_, takes, tag)) = LONG.iter().find(|(n, _, _)| *n == name) else {
                return Err(usage(format!("unrecognized option '{arg}'")));
            };
            let value = if takes {
                match inline {
                    Some(v) => Some(v),
                    None => {
                        let v = args
                            .get(i)
                            .ok_or_else(|| usage(format!("option '{arg}' requires an argument")))?;
                        i += 1;
                        Some(v.clone())
                    }
                }
            } else if tag == 'p' {
                inline.or_else(|| optional_number(args, &mut i))
            } else {
                None
            };
            apply(&mut raw, tag, value, args, &mut i)?;
            continue;
        }
        let Some(cluster) = arg.strip_prefix('-').filter(|c| !c.is_empty()) else {
            return Err(usage(format!("unexpected argument '{arg}'")));
        };
        let chars: Vec<char> = cluster.chars().collect();
        let mut j = 0;
        while j < chars.len() {
            let c = chars[j];
            j += 1;
            if !SHORT.contains(c) {
                return Err(usage(format!("invalid option -- '{c}'")));
            }
            let rest: String = chars[j..].iter().collect();
            let value = if SHORT_WITH_VALUE.contains(c) {
                j = chars.len();
                if rest.is_empty() {
                    let v = args
                        .get(i)
                        .ok_or_else(|| usage(format!("option requires an argument -- '{c}'")))?;
                    i += 1;
                    Some(v.clone())
                } else {
                    Some(rest)
                }
            } else if c == 'p' {
                if rest.is_empty() {
                    optional_number(args, &mut i)
                } else {
                    j = chars.len();
                    Some(rest)
                }
            } else {
                None
            };
            let tag = if c == 'l' { 'L' } else { c };
            apply(&mut raw, tag, value, args, &mut i)?;
        }
    }
    finish(&raw)
}

/// `-p 600`: the timeout is optional, so only a following number is taken as it.
fn optional_number(args: &[String], i: &mut usize) -> Option<String> {
    let next = args.get(*i)?;
    if !next.is_empty() && next.bytes().all(|b| b.is_ascii_digit()) {
        *i += 1;
        Some(next.clone())
    } else {
        None
    }
}

/// The options that choose the command.
const COMMANDS: &[(char, Cmd)] = &[
    ('A', Cmd::AddService),
    ('E', Cmd::EditService),
    ('D', Cmd::DelService),
    ('C', Cmd::Flush),
    ('L', Cmd::List),
    ('a', Cmd::AddDest),
    ('e', Cmd::EditDest),
    ('d', Cmd::DelDest),
    ('Z', Cmd::Zero),
    ('R', Cmd::Restore),
    ('S', Cmd::Save),
    ('h', Cmd::Help),
    ('v', Cmd::Version),
];

type Switch = fn(&mut Raw);

/// The options without a value that only switch something on.
const SWITCHES: &[(char, Opt, Switch)] = &[
    ('n', Opt::Numeric, |r| r.format.numeric = true),
    ('c', Opt::Connection, |r| r.connections = true),
    ('6', Opt::Ipv6, |r| r.ipv6 = true),
    ('o', Opt::Ops, |r| r.ops = true),
    ('O', Opt::Timeout, |r| r.timeout = true),
    ('Y', Opt::Daemon, |r| r.daemon_list = true),
    ('X', Opt::Stats, |r| r.format.stats = true),
    ('K', Opt::Rate, |r| r.format.rate = true),
    ('H', Opt::Thresholds, |r| r.format.thresholds = true),
    ('P', Opt::PersistentConn, |r| {
        r.format.persistent_conn = true;
    }),
    ('N', Opt::NoSort, |r| r.format.nosort = true),
    ('Q', Opt::Sort, |_| {}),
    ('U', Opt::Exact, |r| r.format.exact = true),
    ('J', Opt::TunInfo, |r| r.format.tun_info = true),
];

type Setter = fn(&mut Raw, &str) -> Result<(), UsageError>;

/// The options that take a value (an empty one for `-p` without its timeout), each with
/// where it goes.
const VALUES: &[(char, Opt, Setter)] = &[
    ('t', Opt::Service, |r, v| {
        virtual_service(r, Protocol::Tcp, v)
    }),
    ('u', Opt::Service, |r, v| {
        virtual_service(r, Protocol::Udp, v)
    }),
    ('q', Opt::Service, |r, v| {
        virtual_service(r, Protocol::Sctp, v)
    }),
    ('f', Opt::Service, |r, v| {
        let mark: u32 = number("virtual server fwmark", v)?;
        if mark == 0 {
            return Err(usage("illegal virtual server fwmark specified"));
        }
        r.service = Some(ServiceArg::Fwmark(mark));
        Ok(())
    }),
    ('s', Opt::Scheduler, |r, v| {
        r.scheduler = Some(v.to_owned());
        Ok(())
    }),
    ('p', Opt::Persistent, |r, v| {
        r.persistent = Some(if v.is_empty() {
            DEFAULT_PERSISTENCE
        } else {
            match v.parse::<u32>() {
                Ok(t) if t > 0 => t,
                _ => return Err(usage("illegal timeout for persistent service specified")),
            }
        });
        Ok(())
    }),
    ('M', Opt::Netmask, |r, v| {
        r.netmask = Some(v.to_owned());
        Ok(())
    }),
    ('r', Opt::RealServer, |r, v| {
        r.real = Some(
            parse_addr_port(v)
                .ok_or_else(|| usage("illegal real server address[:port] specified"))?,
        );
        Ok(())
    }),
    ('g', Opt::Forward, |r, _| forward(r, ForwardMethod::Route)),
    ('i', Opt::Forward, |r, _| forward(r, ForwardMethod::Tunnel)),
    ('m', Opt::Forward, |r, _| forward(r, ForwardMethod::Masq)),
    ('w', Opt::Weight, |r, v| match v.parse::<i64>() {
        Ok(w) if (0..=65535).contains(&w) => {
            r.weight = Some(w as u32);
            Ok(())
        }
        _ => Err(usage("illegal weight specified")),
    }),
    ('x', Opt::UThreshold, |r, v| {
        r.u_threshold = Some(number("u_threshold", v)?);
        Ok(())
    }),
    ('y', Opt::LThreshold, |r, v| {
        r.l_threshold = Some(number("l_threshold", v)?);
        Ok(())
    }),
    ('b', Opt::SchedFlags, |r, v| {
        r.sched_flags = parse_sched_flags(v)?;
        Ok(())
    }),
    ('1', Opt::Pe, |r, v| {
        r.pe = Some(v.to_owned());
        Ok(())
    }),
    ('5', Opt::McastInterface, |r, v| {
        r.mcast_ifn = Some(v.to_owned());
        Ok(())
    }),
    ('7', Opt::SyncId, |r, v| {
        r.syncid = Some(number("syncid", v)?);
        Ok(())
    }),
    ('8', Opt::SyncMaxlen, |r, v| {
        r.sync_maxlen = Some(number("sync-maxlen", v)?);
        Ok(())
    }),
    ('9', Opt::McastGroup, |r, v| {
        r.mcast_group = Some(number("mcast-group", v)?);
        Ok(())
    }),
    ('0', Opt::McastPort, |r, v| {
        r.mcast_port = Some(number("mcast-port", v)?);
        Ok(())
    }),
    ('T', Opt::McastTtl, |r, v| {
        r.mcast_ttl = Some(number("mcast-ttl", v)?);
        Ok(())
    }),
    ('W', Opt::TunType, |r, v| {
        r.tun_type = Some(match v {
            "ipip" => TunnelType::Ipip,
            "gue" => TunnelType::Gue,
            "gre" => TunnelType::Gre,
            _ => return Err(usage("illegal tunnel type specified")),
        });
        Ok(())
    }),
    ('I', Opt::TunPort, |r, v| match v.parse::<u16>() {
        Ok(p) if p > 0 => {
            r.tun_port = Some(p);
            Ok(())
        }
        _ => Err(usage("illegal tunnel port specified")),
    }),
    ('j', Opt::TunCsum, |r, _| {
        tunnel_checksum(r, TunnelFlags::NOCSUM)
    }),
    ('k', Opt::TunCsum, |r, _| {
        tunnel_checksum(r, TunnelFlags::CSUM)
    }),
    ('l', Opt::TunCsum, |r, _| {
        tunnel_checksum(r, TunnelFlags::REMCSUM)
    }),
];

fn virtual_service(raw: &mut Raw, proto: Protocol, v: &str) -> Result<(), UsageError> {
    let (addr, port) = parse_addr_port(v)
        .ok_or_else(|| usage("illegal virtual server address[:port] specified"))?;
    raw.service = Some(ServiceArg::Inet(proto, addr, port));
    Ok(())
}

fn forward(raw: &mut Raw, method: ForwardMethod) -> Result<(), UsageError> {
    raw.fwd = Some(method);
    Ok(())
}

fn tunnel_checksum(raw: &mut Raw, flags: TunnelFlags) -> Result<(), UsageError> {
    raw.tun_flags = Some(flags);
    Ok(())
}

fn apply(
    raw: &mut Raw,
    tag: char,
    value: Option<String>,
    args: &[String],
    i: &mut usize,
) -> Result<(), UsageError> {
    if let Some((_, cmd)) = COMMANDS.iter().find(|(t, _)| *t == tag) {
        return raw.set_cmd(*cmd);
    }
    if let Some((_, opt, switch)) = SWITCHES.iter().find(|(t, _, _)| *t == tag) {
        raw.see(*opt)?;
        switch(raw);
        return Ok(());
    }
    let v = value.unwrap_or_default();
    if let Some((_, opt, set)) = VALUES.iter().find(|(t, _, _)| *t == tag) {
        raw.see(*opt)?;
        return set(raw, &v);
    }
    match tag {
        '2' => {
            raw.set_cmd(Cmd::SetTimeouts)?;
            let mut t = [0u32; 3];
            for slot in &mut t {
                let v = args
                    .get(*i)
                    .ok_or_else(|| usage("--set requires 3 timeout values (tcp tcpfin udp)"))?;
                *i += 1;
                *slot = number("timeout value", v)?;
            }
            raw.set = Some(t);
        }
        '3' | '4' => {
            raw.set_cmd(if tag == '3' {
                Cmd::StartDaemon
            } else {
                Cmd::StopDaemon
            })?;
            raw.daemon_state = Some(match v.as_str() {
                "master" => DaemonState::Master,
                "backup" => DaemonState::Backup,
                _ => {
                    return Err(usage(format!(
                        "illegal start-daemon parameter specified: {v}"
                    )));
                }
            });
        }
        other => unreachable!("option tag {other} has no handler"),
    }
    Ok(())
}

fn finish(raw: &Raw) -> Result<Invocation, UsageError> {
    let cmd = raw
        .cmd
        .ok_or_else(|| usage("no command specified (try 'lvsadm -h')"))?;
    check_options(raw, cmd)?;
    let key = service_key(raw, cmd)?;
    let service = match (cmd, key) {
        (Cmd::AddService | Cmd::EditService, Some(key)) => Some(service(raw, key)?),
        _ => None,
    };
    let dest = match (cmd, key, raw.real) {
        (Cmd::AddDest | Cmd::EditDest | Cmd::DelDest, Some(key), Some(real)) => {
            Some(destination(raw, cmd, key, real)?)
        }
        _ => None,
    };
    let daemon = match (cmd, raw.daemon_state) {
        (Cmd::StartDaemon, Some(state)) => {
            let mut d = Daemon::new(
                state,
                raw.mcast_ifn.clone().unwrap_or_default(),
                raw.syncid.unwrap_or(0),
            );
            d.sync_maxlen = raw.sync_maxlen;
            d.mcast_group = raw.mcast_group;
            d.mcast_port = raw.mcast_port;
            d.mcast_ttl = raw.mcast_ttl;
            Some(d)
        }
        _ => None,
    };
    let timeouts = raw.set.map_or_else(Timeouts::default, |[tcp, fin, udp]| {
        let nz = |v: u32| (v != 0).then_some(v);
        Timeouts {
            tcp: nz(tcp),
            tcp_fin: nz(fin),
            udp: nz(udp),
        }
    });
    Ok(Invocation {
        cmd,
        key,
        service,
        dest,
        format: raw.format,
        connections: raw.connections,
        timeout: raw.timeout,
        daemon_list: raw.daemon_list,
        timeouts,
        daemon,
        daemon_state: raw.daemon_state,
    })
}

/// ipvsadm's refusals: an option the command does not take, or one it needs and lacks.
fn check_options(raw: &Raw, cmd: Cmd) -> Result<(), UsageError> {
    for opt in &raw.seen {
        if !opt.allowed_with(cmd) {
            return Err(usage(format!(
                "Illegal '{}' option with the '{}' command",
                opt.name(),
                cmd.name()
            )));
        }
    }
    let needs_service = matches!(
        cmd,
        Cmd::AddService
            | Cmd::EditService
            | Cmd::DelService
            | Cmd::AddDest
            | Cmd::EditDest
            | Cmd::DelDest
    );
    if needs_service && raw.service.is_none() {
        return Err(usage(format!(
            "You need to supply the 'service-address' option for the '{}' command",
            cmd.name()
        )));
    }
    if matches!(cmd, Cmd::AddDest | Cmd::EditDest | Cmd::DelDest) && raw.real.is_none() {
        return Err(usage(format!(
            "You need to supply the 'real-server' option for the '{}' command",
            cmd.name()
        )));
    }
    if cmd == Cmd::StartDaemon && raw.mcast_ifn.is_none() {
        return Err(usage(
            "You need to supply the 'mcast-interface' option for the 'start-daemon' command",
        ));
    }
    Ok(())
}

fn service_key(raw: &Raw, cmd: Cmd) -> Result<Option<ServiceKey>, UsageError> {
    Ok(match &raw.service {
        None => None,
        Some(ServiceArg::Fwmark(mark)) => {
            let af = if raw.ipv6 {
                AddressFamily::Inet6
            } else {
                AddressFamily::Inet
            };
            Some(ServiceKey::fwmark(af, *mark))
        }
        Some(ServiceArg::Inet(proto, addr, port)) => {
            let port = port.unwrap_or(0);
            if port == 0 && raw.persistent.is_none() && cmd == Cmd::AddService {
                return Err(usage("Zero port specified for non-persistent service"));
            }
            Some(ServiceKey::inet(*proto, SocketAddr::new(*addr, port)))
        }
    })
}

/// The service an add or edit sets.
fn service(raw: &Raw, key: ServiceKey) -> Result<Service, UsageError> {
    let af = key.af();
    let mut svc = Service::new(
        key,
        raw.scheduler
            .clone()
            .unwrap_or_else(|| DEFAULT_SCHEDULER.to_owned()),
    );
    if let Some(timeout) = raw.persistent {
        svc = svc.persistent(timeout);
    }
    if let Some(mask) = &raw.netmask {
        svc = svc.with_netmask(parse_netmask(af, mask)?);
    }
    if raw.ops {
        svc = svc.with_flags(ServiceFlags::ONEPACKET);
    }
    svc = svc.with_flags(raw.sched_flags);
    if let Some(pe) = &raw.pe {
        svc = svc.with_pe(pe.clone());
    }
    Ok(svc)
}

/// The destination an add, edit or delete names.
fn destination(
    raw: &Raw,
    cmd: Cmd,
    key: ServiceKey,
    (addr, port): (IpAddr, Option<u16>),
) -> Result<Destination, UsageError> {
    let fwd = raw.fwd.unwrap_or(ForwardMethod::Route);
    let svc_port = match key {
        ServiceKey::Inet { port, .. } => port,
        ServiceKey::Fwmark { .. } => 0,
    };
    let mut port = port.unwrap_or(svc_port);
    // ipvsadm: direct routing and tunnelling cannot change the port, so the
    // destination takes the service's (fwmark services have none).
    // Deletion names the destination as it is, whatever its method.
    if matches!(key, ServiceKey::Inet { .. })
        && cmd != Cmd::DelDest
        && matches!(fwd, ForwardMethod::Route | ForwardMethod::Tunnel)
    {
        port = svc_port;
    }
    if (raw.tun_type.is_some() || raw.tun_port.is_some() || raw.tun_flags.is_some())
        && fwd != ForwardMethod::Tunnel
    {
        return Err(usage("tunnel options need the ipip forwarding method (-i)"));
    }
    let tun_type = raw.tun_type.unwrap_or_default();
    if tun_type == TunnelType::Gre && raw.tun_flags == Some(TunnelFlags::REMCSUM) {
        return Err(usage(
            "Illegal 'tun-remcsum' option with the 'gre' tunnel type",
        ));
    }
    if tun_type == TunnelType::Gue && raw.tun_port.is_none() {
        return Err(usage("missing tunnel port for gue tunnel type"));
    }
    Ok(
        Destination::new(SocketAddr::new(addr, port), fwd, raw.weight.unwrap_or(1))
            .with_thresholds(raw.u_threshold.unwrap_or(0), raw.l_threshold.unwrap_or(0))
            .with_tunnel(
                tun_type,
                raw.tun_port.unwrap_or(0),
                raw.tun_flags.unwrap_or(TunnelFlags::NOCSUM),
            ),
    )
}

impl Invocation {
    /// The kernel request of a table-changing command; `None` for the others.
    pub fn request(&self) -> Option<Request> {
        Some(match self.cmd {
            Cmd::AddService => Request::AddService(self.service.clone()?),
            Cmd::EditService => Request::EditService(self.service.clone()?),
            Cmd::DelService => Request::DelService(self.key?),
            Cmd::Flush => Request::Flush,
            Cmd::AddDest => Request::AddDestination(self.key?, self.dest.clone()?),
            Cmd::EditDest => Request::EditDestination(self.key?, self.dest.clone()?),
            Cmd::DelDest => Request::DelDestination(self.key?, self.dest.as_ref()?.socket_addr()),
            Cmd::Zero => match self.key {
                Some(k) => Request::ZeroService(k),
                None => Request::ZeroAll,
            },
            Cmd::SetTimeouts => Request::SetTimeouts(self.timeouts),
            Cmd::StartDaemon => Request::StartDaemon(self.daemon.clone()?),
            Cmd::StopDaemon => Request::StopDaemon(self.daemon_state?),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<Invocation, UsageError> {
        let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        parse(&args)
    }

    #[test]
    fn add_service_defaults_follow_ipvsadm() {
        let inv = p("-A -t 192.0.2.100:80").unwrap();
        let svc = inv.service.unwrap();
        assert_eq!(svc.scheduler, "wlc");
        assert_eq!(svc.flags, ServiceFlags::NONE);
        let inv = p("-A -t 192.0.2.100:80 -s rr -p -M 255.255.255.0").unwrap();
        let svc = inv.service.unwrap();
        assert_eq!(svc.timeout, 300);
        assert_eq!(svc.netmask, 0xffff_ff00);
        let inv = p("-A -u [2001:db8::1]:53 -p 600 -M 64 -o -s sh -b sh-fallback,sh-port").unwrap();
        let svc = inv.service.unwrap();
        assert_eq!(svc.timeout, 600);
        assert_eq!(svc.netmask, 64);
        assert!(
            svc.flags
                .contains(ServiceFlags::ONEPACKET | ServiceFlags::SCHED1)
        );
        assert!(svc.flags.contains(ServiceFlags::SCHED2));
    }

    #[test]
    fn destination_defaults_and_port_rules() {
        let inv = p("-a -t 192.0.2.100:80 -r 198.51.100.2:8080").unwrap();
        let d = inv.dest.unwrap();
        assert_eq!(d.fwd, ForwardMethod::Route);
        assert_eq!(d.weight, 1);
        // Direct routing keeps the service port.
        assert_eq!(d.port, 80);
        let inv = p("-a -t 192.0.2.100:80 -r 198.51.100.2:8080 -m -w 0 -x 10 -y 5").unwrap();
        let d = inv.dest.unwrap();
        assert_eq!(
            (d.port, d.weight, d.u_threshold, d.l_threshold),
            (8080, 0, 10, 5)
        );
        let inv = p("-a -f 7 -6 -r [2001:db8::2]:0 -i --tun-type gue --tun-port 6080 --tun-csum")
            .unwrap();
        assert_eq!(inv.key, Some(ServiceKey::fwmark(AddressFamily::Inet6, 7)));
        let d = inv.dest.unwrap();
        assert_eq!((d.tun_type, d.tun_port), (TunnelType::Gue, 6080));
        assert_eq!(d.tun_flags, TunnelFlags::CSUM);
    }

    #[test]
    fn bundled_and_long_options() {
        let inv = p("-Ln --stats --exact").unwrap();
        assert_eq!(inv.cmd, Cmd::List);
        assert!(inv.format.numeric && inv.format.stats && inv.format.exact);
        let inv = p("--list --numeric --tcp-service=192.0.2.1:80").unwrap();
        assert!(inv.key.is_some());
        let inv = p("--set 900 120 300").unwrap();
        assert_eq!(inv.timeouts, Timeouts::new(900, 120, 300));
        let inv = p("--start-daemon master --mcast-interface eth0 --syncid 5").unwrap();
        assert_eq!(inv.daemon.unwrap().syncid, 5);
    }

    #[test]
    fn usage_errors_name_the_option() {
        assert_eq!(
            p("-A -t 192.0.2.1:80 -m").unwrap_err().0,
            "Illegal 'forwarding-method' option with the 'add-service' command"
        );
        assert!(p("-A -L").unwrap_err().0.contains("Multiple commands"));
        assert!(
            p("-a -t 192.0.2.1:80")
                .unwrap_err()
                .0
                .contains("real-server")
        );
        assert!(p("-A -t 192.0.2.1").is_err());
        assert!(p("-A -t 2001:db8::1:80").is_err());
        assert!(p("-a -t 192.0.2.1:80 -r 198.51.100.1 -w 70000").is_err());
        assert_eq!(p("").unwrap().cmd, Cmd::List);
        assert!(p("-n").is_err());
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_addr_port("[2001:db8::1]:80"),
            Some(("2001:db8::1".parse().unwrap(), Some(80)))
        );
        assert_eq!(parse_addr_port("[2001:db8::1]"), None);
        assert_eq!(
            parse_addr_port("192.0.2.1"),
            Some(("192.0.2.1".parse().unwrap(), None))
        );
        assert_eq!(parse_addr_port("[192.0.2.1]:80"), None);
        assert_eq!(parse_addr_port("192.0.2.1:x"), None);
    }
}
