//! ldirectord.cf to director.toml, following ldirectord 4.x's `read_config` and `ld_setup`:
//! `key = value` globals, `virtual=` lines opening a block of indented options, `real=` lines
//! with forwarding method and weight, and its defaults (checktype negotiate, scheduler wrr,
//! protocol tcp or udp for port 53, checkinterval 10 s, checktimeout 5 s, negotiatetimeout
//! 30 s, each a fallback for the other, failurecount 1, quiescent no).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use lvs_config::{
    Check, CheckType, Duration, Family, Forwarding, Netmask, OnFailure, Protocol, RealServer,
    Scheduler, ServiceFlag, VirtualServer,
};

use super::ipvsadm::settle_forwarding;
use super::{ErrorKind, ImportError, Origin, Output};

#[derive(Debug, Clone)]
struct Globals {
    checktimeout: Option<u64>,
    negotiatetimeout: Option<u64>,
    checkinterval: u64,
    failurecount: u32,
    quiescent: bool,
    fallback: Option<SocketAddr>,
    fallback6: Option<SocketAddr>,
}

impl Default for Globals {
    fn default() -> Self {
        Globals {
            checktimeout: None,
            negotiatetimeout: None,
            checkinterval: 10,
            failurecount: 1,
            quiescent: false,
            fallback: None,
            fallback6: None,
        }
    }
}

/// One `virtual=` block as read, before defaults are resolved.
struct Virtual {
    at: Origin,
    address: Option<SocketAddr>,
    fwmark: Option<u32>,
    v6: bool,
    options: Vec<(Origin, String, String)>,
    reals: Vec<(Origin, String)>,
}

pub(crate) fn convert(text: &str, file: &str) -> Result<Output, ImportError> {
    let mut out = Output::default();
    let mut globals = Globals::default();
    let mut virtuals: Vec<Virtual> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let at = Origin::new(file, n + 1);
        if raw.trim_start().starts_with('#') || raw.trim().is_empty() {
            continue;
        }
        let line = raw.split('#').next().unwrap_or("");
        let indented = line.starts_with([' ', '\t']);
        let Some((key, value)) = line.trim().split_once('=') else {
            return Err(ImportError::new(
                &at,
                ErrorKind::Syntax,
                format!("expected key = value, found {:?}", line.trim()),
            ));
        };
        let (key, value) = (key.trim(), value.trim());
        if indented {
            let Some(current) = virtuals.last_mut() else {
                return Err(ImportError::new(
                    &at,
                    ErrorKind::Syntax,
                    "an indented option outside any virtual= block",
                ));
            };
            if key == "real" || key == "real6" {
                current.reals.push((at, value.to_owned()));
            } else {
                current.options.push((at, key.to_owned(), value.to_owned()));
            }
            continue;
        }
        match key {
            "virtual" | "virtual6" => virtuals.push(virtual_line(&at, key == "virtual6", value)?),
            "checktimeout" => globals.checktimeout = Some(seconds(&at, key, value)?),
            "negotiatetimeout" => globals.negotiatetimeout = Some(seconds(&at, key, value)?),
            "checkinterval" => globals.checkinterval = seconds(&at, key, value)?,
            "failurecount" => globals.failurecount = seconds(&at, key, value)? as u32,
            "quiescent" => globals.quiescent = yes_no(&at, key, value)?,
            "fallback" => globals.fallback = Some(fallback(&at, value, None)?.0),
            "fallback6" => globals.fallback6 = Some(fallback(&at, value, None)?.0),
            "checkcount" => out.unsupported(
                &at,
                format!("{key}={value}"),
                "deprecated in ldirectord; use failurecount (fall)",
            ),
            "autoreload" => out.unsupported(
                &at,
                format!("{key}={value}"),
                "directord reloads on SIGHUP (systemctl reload), not by watching the file",
            ),
            "fork" => out.unsupported(
                &at,
                format!("{key}={value}"),
                "not needed: directord probes every real server concurrently in one process, which is what fork=yes buys ldirectord",
            ),
            "logfile" | "supervised" | "execute" | "callback" | "cleanstop"
            | "maintenancedir" | "readdquiescent" | "fallbackcommand" | "emailalert"
            | "emailalertfreq" | "emailalertstatus" | "emailalertfrom" | "smtp" => out.unsupported(
                &at,
                format!("{key}={value}"),
                "ignored; directord logs to the journal and exports metrics",
            ),
            _ => {
                return Err(ImportError::new(
                    &at,
                    ErrorKind::BadValue,
                    format!("unknown ldirectord directive {key:?}"),
                ));
            }
        }
    }
    for virtual_block in virtuals {
        let mark = out.mark();
        let (service, children, comments) = service(&virtual_block, &globals, &mut out)?;
        let mut block = out.block(virtual_block.at, service, mark);
        block.children = children;
        block.comments = comments;
        out.virtual_servers.push(block);
    }
    Ok(out)
}

fn bad(at: &Origin, message: impl Into<String>) -> ImportError {
    ImportError::new(at, ErrorKind::BadValue, message)
}

fn seconds(at: &Origin, key: &str, value: &str) -> Result<u64, ImportError> {
    value.parse::<u64>().ok().filter(|v| *v > 0).ok_or_else(|| {
        bad(
            at,
            format!("{key} needs a positive number of seconds, got {value:?}"),
        )
    })
}

fn yes_no(at: &Origin, key: &str, value: &str) -> Result<bool, ImportError> {
    match value {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(bad(at, format!("{key} must be 'yes' or 'no'"))),
    }
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// Port numbers or the service names ldirectord itself knows.
fn port_number(at: &Origin, text: &str) -> Result<u16, ImportError> {
    if let Ok(port) = text.parse() {
        return Ok(port);
    }
    service_port(text).ok_or_else(|| {
        ImportError::new(
            at,
            ErrorKind::BadAddress,
            format!("invalid port {text:?} (service names are not looked up)"),
        )
    })
}

fn service_port(service: &str) -> Option<u16> {
    Some(match service {
        "ftp" => 21,
        "smtp" => 25,
        "domain" | "dns" => 53,
        "http" | "www" => 80,
        "pop3" | "pop" => 110,
        "nntp" => 119,
        "imap" | "imap2" => 143,
        "ldap" => 389,
        "https" => 443,
        "submission" => 587,
        "ldaps" => 636,
        "imaps" => 993,
        "pop3s" | "pops" => 995,
        "radius" => 1812,
        "mysql" => 3306,
        "sip" => 5060,
        "postgresql" | "pgsql" => 5432,
        _ => return None,
    })
}

/// `host[:port]` or `[v6][:port]`; hosts must be literal addresses.
fn host_port(at: &Origin, text: &str, default_port: u16) -> Result<SocketAddr, ImportError> {
    let bad_address = || {
        ImportError::new(
            at,
            ErrorKind::BadAddress,
            format!("invalid address {text:?} (host names are not resolved)"),
        )
    };
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad_address)?;
        let ip: IpAddr = host.parse().map_err(|_| bad_address())?;
        let port = match after.strip_prefix(':') {
            Some(p) => port_number(at, p)?,
            None => default_port,
        };
        return Ok(SocketAddr::new(ip, port));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, p)) => (host, port_number(at, p)?),
        None => (text, default_port),
    };
    let ip: IpAddr = host.parse().map_err(|_| bad_address())?;
    Ok(SocketAddr::new(ip, port))
}

fn virtual_line(at: &Origin, v6: bool, value: &str) -> Result<Virtual, ImportError> {
    let mut block = Virtual {
        at: at.clone(),
        address: None,
        fwmark: None,
        v6,
        options: Vec::new(),
        reals: Vec::new(),
    };
    if value.bytes().all(|b| b.is_ascii_digit()) && !value.is_empty() {
        block.fwmark = Some(value.parse().map_err(|_| bad(at, "invalid fwmark"))?);
        return Ok(block);
    }
    let address = host_port(at, value, 0)?;
    if address.is_ipv6() != v6 {
        return Err(ImportError::new(
            at,
            ErrorKind::BadAddress,
            if v6 {
                "virtual6 needs an IPv6 address in brackets"
            } else {
                "an IPv6 address needs virtual6"
            },
        ));
    }
    block.address = Some(address);
    Ok(block)
}

/// ldirectord runs `checkcommand` with four arguments: the virtual server (its fwmark for a
/// fwmark service), the virtual port, the real server and the real port. directord gives them
/// to the command in the environment, so the imported command passes them on in that order and
/// scripts written for ldirectord run unchanged.
fn external_command(command: &str, fwmark: Option<u32>) -> String {
    let virtual_server = match fwmark {
        Some(mark) => format!("{mark} \"\""),
        None => "\"$LVS_VIRTUAL_IP\" \"$LVS_VIRTUAL_PORT\"".to_owned(),
    };
    format!("{command} {virtual_server} \"$LVS_REAL_IP\" \"$LVS_REAL_PORT\"")
}

/// `fallback=host[:port] [gate|masq|ipip]`; the port defaults to the virtual service's.
fn fallback(
    at: &Origin,
    value: &str,
    default_port: Option<u16>,
) -> Result<(SocketAddr, Option<Forwarding>), ImportError> {
    let mut words = value.split_whitespace();
    let address = words
        .next()
        .ok_or_else(|| bad(at, "fallback needs an address"))?;
    let address = host_port(at, address, default_port.unwrap_or(0))?;
    let method = words.next().map(|m| forwarding(at, m)).transpose()?;
    Ok((address, method))
}

fn forwarding(at: &Origin, word: &str) -> Result<Forwarding, ImportError> {
    match word {
        "gate" => Ok(Forwarding::Dr),
        "masq" => Ok(Forwarding::Nat),
        "ipip" => Ok(Forwarding::Tun),
        _ => Err(bad(at, "forward method must be gate, masq or ipip")),
    }
}

#[derive(Default)]
struct Options {
    checktype: Option<String>,
    service: Option<String>,
    request: Option<String>,
    receive: Option<String>,
    httpmethod: Option<String>,
    virtualhost: Option<String>,
    checkport: Option<u16>,
    login: Option<String>,
    passwd: Option<String>,
    database: Option<String>,
    secret: Option<String>,
    checkcommand: Option<String>,
    checktimeout: Option<u64>,
    negotiatetimeout: Option<u64>,
    checkinterval: Option<u64>,
    failurecount: Option<u32>,
    scheduler: Option<Scheduler>,
    persistent: Option<u64>,
    netmask: Option<Netmask>,
    protocol: Option<String>,
    flags: Vec<ServiceFlag>,
    quiescent: Option<bool>,
    fallback: Option<(SocketAddr, Option<Forwarding>)>,
    name: Option<String>,
    comment: Option<String>,
    /// The virtual service's port, the default of its fallback's.
    vport: Option<u16>,
}

type Setter = fn(&mut Options, &Origin, &str, &str) -> Result<(), ImportError>;
type Field = fn(&mut Options) -> &mut Option<String>;

/// The options kept as text, as written.
const TEXT: &[(&str, Field)] = &[
    ("checktype", |o| &mut o.checktype),
    ("service", |o| &mut o.service),
    ("protocol", |o| &mut o.protocol),
    ("servicename", |o| &mut o.name),
    ("comment", |o| &mut o.comment),
];

/// The options kept as text, without the quotes ldirectord allows around them.
const QUOTED: &[(&str, Field)] = &[
    ("request", |o| &mut o.request),
    ("receive", |o| &mut o.receive),
    ("virtualhost", |o| &mut o.virtualhost),
    ("login", |o| &mut o.login),
    ("passwd", |o| &mut o.passwd),
    ("database", |o| &mut o.database),
    ("secret", |o| &mut o.secret),
    ("checkcommand", |o| &mut o.checkcommand),
];

/// The other virtual service options ldirectord reads, each with where it goes.
const OPTIONS: &[(&str, Setter)] = &[
    ("httpmethod", |o, _, _, v| {
        o.httpmethod = Some(v.to_ascii_uppercase());
        Ok(())
    }),
    ("checkport", |o, at, _, v| {
        o.checkport = Some(port_number(at, v)?);
        Ok(())
    }),
    ("checktimeout", |o, at, k, v| {
        o.checktimeout = Some(seconds(at, k, v)?);
        Ok(())
    }),
    ("negotiatetimeout", |o, at, k, v| {
        o.negotiatetimeout = Some(seconds(at, k, v)?);
        Ok(())
    }),
    ("checkinterval", |o, at, k, v| {
        o.checkinterval = Some(seconds(at, k, v)?);
        Ok(())
    }),
    ("failurecount", |o, at, k, v| {
        o.failurecount = Some(seconds(at, k, v)? as u32);
        Ok(())
    }),
    ("scheduler", |o, at, _, v| {
        o.scheduler = Some(
            v.parse()
                .map_err(|e: lvs_config::UnknownName| bad(at, e.to_string()))?,
        );
        Ok(())
    }),
    ("persistent", |o, at, _, v| {
        o.persistent = Some(
            v.parse()
                .map_err(|_| bad(at, "invalid persistent timeout"))?,
        );
        Ok(())
    }),
    ("netmask", |o, at, _, v| {
        o.netmask = Some(
            v.parse()
                .map_err(|e: String| ImportError::new(at, ErrorKind::BadAddress, e))?,
        );
        Ok(())
    }),
    ("ops", |o, at, k, v| {
        if yes_no(at, k, v)? {
            o.flags.push(ServiceFlag::OnePacket);
        }
        Ok(())
    }),
    ("schedflags", |o, at, _, v| {
        for flag in v.split(',') {
            o.flags.push(
                flag.parse()
                    .map_err(|e: lvs_config::UnknownName| bad(at, e.to_string()))?,
            );
        }
        Ok(())
    }),
    ("quiescent", |o, at, k, v| {
        o.quiescent = Some(yes_no(at, k, v)?);
        Ok(())
    }),
    ("fallback", set_fallback),
    ("fallback6", set_fallback),
];

/// Options ldirectord knows that have no equivalent here: reported, then ignored.
const IGNORED: &[&str] = &[
    "load",
    "monitorfile",
    "cleanstop",
    "emailalert",
    "emailalertfreq",
    "emailalertstatus",
    "smtp",
    "checkcount",
    "fallbackcommand",
];

fn set_fallback(o: &mut Options, at: &Origin, _: &str, value: &str) -> Result<(), ImportError> {
    o.fallback = Some(fallback(at, value, o.vport)?);
    Ok(())
}

impl Options {
    fn read(v: &Virtual, out: &mut Output) -> Result<Options, ImportError> {
        let mut o = Options {
            vport: v.address.map(|a| a.port()),
            ..Options::default()
        };
        for (at, key, value) in &v.options {
            let key = key.as_str();
            if let Some((_, field)) = TEXT.iter().find(|(k, _)| *k == key) {
                *field(&mut o) = Some(value.clone());
            } else if let Some((_, field)) = QUOTED.iter().find(|(k, _)| *k == key) {
                *field(&mut o) = Some(unquote(value).to_owned());
            } else if let Some((_, set)) = OPTIONS.iter().find(|(k, _)| *k == key) {
                set(&mut o, at, key, value)?;
            } else if IGNORED.contains(&key) {
                out.unsupported(at, format!("{key}={value}"), "ignored");
            } else {
                return Err(bad(at, format!("unknown virtual service option {key:?}")));
            }
        }
        Ok(o)
    }
}

fn service(
    v: &Virtual,
    globals: &Globals,
    out: &mut Output,
) -> Result<(VirtualServer, Vec<Origin>, Vec<String>), ImportError> {
    let o = Options::read(v, out)?;
    let mut comments = Vec::new();
    if let Some(comment) = &o.comment {
        comments.push(format!("comment: {comment}"));
    }
    let protocol = protocol(v, &o)?;
    let service_name = o.service.clone().unwrap_or_else(|| {
        if v.fwmark.is_some() {
            "none".to_owned()
        } else {
            port_service(o.vport.unwrap_or(0))
        }
    });
    let check = check(v, &o, globals, &service_name, out)?;
    let (reals, children) = reals(v, o.vport.unwrap_or(0), check.as_ref(), out)?;
    let fallback = fallback_server(v, &o, globals, &reals, out);
    if let Some((addr, Some(method))) = o.fallback {
        comments.push(format!(
            "fallback {addr} forwarding {method}: the service's forwarding is used for it"
        ));
    }
    let family = (v.fwmark.is_some() && v.v6).then_some(Family::Inet6);
    let quiescent = o.quiescent.unwrap_or(globals.quiescent);
    let mut vs = VirtualServer {
        name: o.name.clone(),
        address: v.address,
        fwmark: v.fwmark,
        family,
        protocol,
        scheduler: o.scheduler.unwrap_or(Scheduler::Wrr),
        forwarding: Forwarding::Dr,
        persistence: o.persistent.filter(|p| *p > 0).map(Duration::from_secs),
        netmask: None,
        flags: o.flags.clone(),
        persistence_engine: None,
        on_failure: if quiescent {
            OnFailure::Quiescent
        } else {
            OnFailure::Remove
        },
        fallback,
        check,
        real: reals,
        ..VirtualServer::default()
    };
    if vs.persistence.is_some() {
        vs.netmask = o.netmask;
    }
    if vs.flags.contains(&ServiceFlag::OnePacket) && protocol != Protocol::Udp {
        vs.flags.retain(|f| *f != ServiceFlag::OnePacket);
        out.unsupported(
            &v.at,
            "ops=yes",
            "one-packet scheduling applies to UDP only (ldirectord does not pass it either)",
        );
    }
    settle_forwarding(&mut vs);
    if let Some((addr, Some(method))) = o.fallback
        && method != vs.forwarding
    {
        out.unsupported(
            &v.at,
            format!("fallback={addr} {method}"),
            format!(
                "the fallback server uses the service's {} forwarding",
                vs.forwarding
            ),
        );
    }
    Ok((vs, children, comments))
}

/// ldirectord's protocol: fwm for a fwmark service, else tcp or udp, udp by default on port 53.
fn protocol(v: &Virtual, o: &Options) -> Result<Protocol, ImportError> {
    Ok(match (o.protocol.as_deref(), v.fwmark) {
        (Some("fwm") | None, Some(_)) => Protocol::Tcp,
        (Some(other), Some(_)) => {
            return Err(bad(
                &v.at,
                format!("protocol must be fwm for a fwmark service, got {other:?}"),
            ));
        }
        (Some("tcp"), None) => Protocol::Tcp,
        (Some("udp"), None) => Protocol::Udp,
        (Some(other), None) => {
            return Err(bad(
                &v.at,
                format!("protocol must be tcp or udp, got {other:?}"),
            ));
        }
        (None, None) if o.vport == Some(53) => Protocol::Udp,
        (None, None) => Protocol::Tcp,
    })
}

/// The block's real servers, each once, with the origin of each line kept.
fn reals(
    v: &Virtual,
    vport: u16,
    check: Option<&Check>,
    out: &mut Output,
) -> Result<(Vec<RealServer>, Vec<Origin>), ImportError> {
    let mut reals: Vec<RealServer> = Vec::new();
    let mut children = Vec::new();
    for (at, text) in &v.reals {
        for mut real in real_line(at, text, vport, v.v6)? {
            if let Some(per_real) = real.check.take() {
                // request/receive on the real= line: the service's check with that URL.
                let mut own = check.cloned().unwrap_or_default();
                own.path = per_real.path.or(own.path);
                own.expect_body = per_real.expect_body;
                if matches!(own.kind, Some(CheckType::Http | CheckType::Https)) {
                    real.check = Some(Box::new(own));
                } else {
                    out.unsupported(at, text.clone(), "a per-server request/receive applies to http checks only; the service's check is used");
                }
            }
            if reals.iter().any(|r| r.address == real.address) {
                out.unsupported(
                    at,
                    text.clone(),
                    "the real server is listed twice; added once",
                );
                continue;
            }
            children.push(at.clone());
            reals.push(real);
        }
    }
    Ok((reals, children))
}

/// The service's fallback, else the global one of its family, on the service's port when it
/// names none; left out when it is of the other family or also a real server.
fn fallback_server(
    v: &Virtual,
    o: &Options,
    globals: &Globals,
    reals: &[RealServer],
    out: &mut Output,
) -> Option<SocketAddr> {
    let global = if v.v6 {
        globals.fallback6
    } else {
        globals.fallback
    };
    let mut addr = o.fallback.map(|(addr, _)| addr).or(global)?;
    if addr.port() == 0
        && let Some(p) = o.vport
    {
        addr.set_port(p);
    }
    if addr.is_ipv6() != v.v6 || reals.iter().any(|r| r.address == addr) {
        out.unsupported(
            &v.at,
            format!("fallback={addr}"),
            "the fallback is another family or also a real server; left out",
        );
        return None;
    }
    Some(addr)
}

fn port_service(port: u16) -> String {
    match port {
        21 => "ftp",
        25 => "smtp",
        53 => "dns",
        80 => "http",
        110 => "pop",
        119 => "nntp",
        143 => "imap",
        389 => "ldap",
        443 => "https",
        587 => "submission",
        636 => "ldaps",
        993 => "imaps",
        995 => "pops",
        1521 => "oracle",
        1812 => "radius",
        3128 => "http_proxy",
        3306 => "mysql",
        5060 => "sip",
        5432 => "pgsql",
        _ => "none",
    }
    .to_owned()
}

/// The check a negotiate checktype runs for each ldirectord service; None is no check at all.
const NEGOTIATE: &[(&str, Option<CheckType>)] = &[
    ("http", Some(CheckType::Http)),
    ("http_proxy", Some(CheckType::Http)),
    ("https", Some(CheckType::Https)),
    ("ftp", Some(CheckType::Ftp)),
    ("smtp", Some(CheckType::Smtp)),
    ("submission", Some(CheckType::Smtp)),
    ("pop", Some(CheckType::Pop)),
    ("pops", Some(CheckType::Pop)),
    ("imap", Some(CheckType::Imap)),
    ("imaps", Some(CheckType::Imap)),
    ("ldap", Some(CheckType::Ldap)),
    ("ldaps", Some(CheckType::Ldap)),
    ("dns", Some(CheckType::Dns)),
    ("mysql", Some(CheckType::Mysql)),
    ("pgsql", Some(CheckType::Pgsql)),
    ("radius", Some(CheckType::Radius)),
    ("sip", Some(CheckType::Sip)),
    ("simpletcp", Some(CheckType::Tcp)),
    ("none", None),
];

fn always_up() -> Check {
    Check {
        kind: Some(CheckType::On),
        ..Check::default()
    }
}

fn check(
    v: &Virtual,
    o: &Options,
    g: &Globals,
    service: &str,
    out: &mut Output,
) -> Result<Option<Check>, ImportError> {
    let checktype = o.checktype.as_deref().unwrap_or("negotiate");
    // ld_setup: checktimeout and negotiatetimeout default to each other, then 5 s and 30 s.
    let checktimeout = o
        .checktimeout
        .or(o.negotiatetimeout)
        .or(g.checktimeout)
        .or(g.negotiatetimeout)
        .unwrap_or(5);
    let negotiatetimeout = o
        .negotiatetimeout
        .or(o.checktimeout)
        .or(g.negotiatetimeout)
        .or(g.checktimeout)
        .unwrap_or(30);
    let mut c = Check {
        interval: Some(Duration::from_secs(
            o.checkinterval.unwrap_or(g.checkinterval),
        )),
        rise: Some(1),
        fall: Some(o.failurecount.unwrap_or(g.failurecount)),
        timeout: Some(Duration::from_secs(checktimeout)),
        ..Check::default()
    };
    match checktype {
        "negotiate" => {}
        n if n.bytes().all(|b| b.is_ascii_digit()) => out.unsupported(
            &v.at,
            format!("checktype={n}"),
            "combined connect/negotiate checks are not supported; every check negotiates",
        ),
        "connect" => {
            c.kind = Some(CheckType::Connect);
            c.port = o.checkport;
            return Ok(Some(c));
        }
        "ping" => {
            c.kind = Some(CheckType::Ping);
            return Ok(Some(c));
        }
        "on" => return Ok(Some(always_up())),
        "off" => {
            return Ok(Some(Check {
                kind: Some(CheckType::Off),
                ..Check::default()
            }));
        }
        "external" | "external-perl" => {
            if checktype == "external-perl" {
                out.unsupported(
                    &v.at,
                    "checktype=external-perl",
                    "the command is run as an external program, not inside a Perl interpreter",
                );
            }
            c.kind = Some(CheckType::External);
            c.command = Some(external_command(
                o.checkcommand.as_deref().unwrap_or("/bin/true"),
                v.fwmark,
            ));
            return Ok(Some(c));
        }
        other => return Err(bad(&v.at, format!("unknown checktype {other:?}"))),
    }
    c.timeout = Some(Duration::from_secs(negotiatetimeout));
    let kind = match NEGOTIATE.iter().find(|(name, _)| *name == service) {
        Some((_, Some(kind))) => *kind,
        Some((_, None)) => return Ok(Some(always_up())),
        None => {
            out.unsupported(
                &v.at,
                format!("service={service}"),
                "no negotiate check for this protocol; a connect check is used",
            );
            CheckType::Connect
        }
    };
    if matches!(service, "pops" | "imaps" | "ldaps" | "http_proxy") {
        out.unsupported(
            &v.at,
            format!("service={service}"),
            "checked as its plain-text form",
        );
    }
    c.kind = Some(kind);
    c.port = o.checkport;
    negotiate(&mut c, kind, v, o, out);
    Ok(Some(c))
}

/// What a negotiate check of `kind` sends and expects, from the service's options.
fn negotiate(c: &mut Check, kind: CheckType, v: &Virtual, o: &Options, out: &mut Output) {
    let request = o.request.clone();
    let mut unsupported = |directive: &str, instead: &str| {
        out.unsupported(&v.at, directive, instead);
    };
    match kind {
        CheckType::Http | CheckType::Https => {
            let path = request.as_deref().map_or_else(
                || "/".to_owned(),
                |r| {
                    if r.starts_with('/') {
                        r.to_owned()
                    } else {
                        format!("/{r}")
                    }
                },
            );
            c.path = Some(path);
            c.method = o.httpmethod.clone();
            c.host = o.virtualhost.clone();
            c.expect_body = o.receive.clone();
            if kind == CheckType::Https {
                c.tls_verify = Some(false);
            }
        }
        CheckType::Ftp | CheckType::Pop | CheckType::Imap | CheckType::Smtp => {
            c.user = o.login.clone().filter(|_| kind != CheckType::Smtp);
            c.password = o.passwd.clone().filter(|_| kind != CheckType::Smtp);
            c.expect = o.receive.clone().filter(|_| kind != CheckType::Smtp);
            if request.is_some() && kind == CheckType::Ftp {
                unsupported(
                    "request (ftp file)",
                    "the file is not fetched; login is checked",
                );
            }
        }
        CheckType::Ldap => {
            c.user = o.login.clone();
            c.password = o.passwd.clone();
            if request.is_some() || o.receive.is_some() {
                unsupported(
                    "request/receive (ldap)",
                    "an LDAP bind is checked, not a search",
                );
            }
        }
        CheckType::Dns => {
            c.query = Some(
                request
                    .map(|r| r.trim_start_matches('/').to_owned())
                    .unwrap_or_else(|| ".".to_owned()),
            );
            c.record_type = Some("A".to_owned());
            if o.receive.is_some() {
                unsupported(
                    "receive (dns)",
                    "the answer's address is not compared; an answer is enough",
                );
            }
        }
        CheckType::Mysql | CheckType::Pgsql => {
            c.user = o.login.clone();
            c.password = o.passwd.clone();
            c.database = o.database.clone();
            // ldirectord runs the request after logging in, and wants both.
            match (request, &c.user) {
                (Some(sql), Some(_)) => c.query = Some(sql.trim_start_matches('/').to_owned()),
                (Some(_), None) => unsupported(
                    "request (SQL query) without login",
                    "ldirectord marks such a server down; the server's greeting is checked instead",
                ),
                (None, _) => {}
            }
        }
        CheckType::Radius => {
            c.user = o.login.clone();
            c.password = o.passwd.clone();
            c.secret = Some(o.secret.clone().unwrap_or_default());
        }
        CheckType::Tcp => {
            c.send = request.map(|r| r.trim_start_matches('/').to_owned());
            c.expect = o.receive.clone();
        }
        _ => {}
    }
}

/// `host[->host][:port] gate|masq|ipip [weight] ["request", "receive"] [l:N] [u:N]`.
fn real_line(
    at: &Origin,
    text: &str,
    vport: u16,
    v6: bool,
) -> Result<Vec<RealServer>, ImportError> {
    let mut words = text.split_whitespace();
    let target = words
        .next()
        .ok_or_else(|| bad(at, "real needs an address"))?;
    let method = forwarding(
        at,
        words
            .next()
            .ok_or_else(|| bad(at, "forward method must be gate, masq or ipip"))?,
    )?;
    let rest: Vec<&str> = words.collect();
    let mut weight = 1;
    let mut lower = 0;
    let mut upper = 0;
    let mut check = None;
    let mut i = 0;
    if let Some(w) = rest.first().and_then(|w| w.parse::<u32>().ok()) {
        weight = w;
        i = 1;
    }
    let tail = rest[i..].join(" ");
    let mut tail = tail.trim();
    if tail.starts_with('"') {
        let parts: Vec<&str> = tail.splitn(5, '"').collect();
        if parts.len() < 5 {
            return Err(bad(at, "request and receive must both be quoted"));
        }
        check = Some(Check {
            path: Some(if parts[1].starts_with('/') {
                parts[1].to_owned()
            } else {
                format!("/{}", parts[1])
            }),
            expect_body: Some(parts[3].to_owned()),
            ..Check::default()
        });
        tail = parts[4].trim();
    }
    for word in tail.split_whitespace() {
        if let Some(n) = word.strip_prefix("l:") {
            lower = n.parse().map_err(|_| bad(at, "invalid l: threshold"))?;
        } else if let Some(n) = word.strip_prefix("u:") {
            upper = n.parse().map_err(|_| bad(at, "invalid u: threshold"))?;
        } else {
            return Err(bad(
                at,
                format!("invalid real server line, around {word:?}"),
            ));
        }
    }
    let (first, last, port) = match target.split_once("->") {
        Some((first, rest)) => {
            let end = host_port(at, rest, vport)?;
            (
                host_port(at, first, end.port())?,
                Some(end.ip()),
                end.port(),
            )
        }
        None => {
            let addr = host_port(at, target, vport)?;
            (addr, None, addr.port())
        }
    };
    if first.is_ipv6() != v6 {
        return Err(ImportError::new(
            at,
            ErrorKind::BadAddress,
            "real server address family differs from the virtual service's",
        ));
    }
    let addresses: Vec<IpAddr> = match (first.ip(), last) {
        (IpAddr::V4(a), Some(IpAddr::V4(b))) => {
            let (a, b) = (u32::from(a), u32::from(b));
            if b < a || b - a > 4096 {
                return Err(ImportError::new(
                    at,
                    ErrorKind::BadAddress,
                    "invalid real server range",
                ));
            }
            (a..=b).map(|n| IpAddr::V4(Ipv4Addr::from(n))).collect()
        }
        (_, Some(_)) => {
            return Err(ImportError::new(
                at,
                ErrorKind::BadAddress,
                "address ranges are IPv4 only (as in ldirectord)",
            ));
        }
        (ip, None) => vec![ip],
    };
    Ok(addresses
        .into_iter()
        .map(|ip| RealServer {
            address: SocketAddr::new(ip, port),
            weight,
            forwarding: Some(method),
            upper_threshold: upper,
            lower_threshold: lower,
            check: check.clone().map(Box::new),
            on_failure: None,
            notify_up: None,
            notify_down: None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    /// What /bin/sh makes of the imported command line, with directord's variables set: the
    /// four arguments ldirectord passes, in its order.
    #[test]
    fn external_command_gives_the_script_ldirectords_arguments() {
        let run = |command: &str, vars: &[(&str, &str)]| {
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(command)
                .envs(vars.iter().copied())
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let real = [("LVS_REAL_IP", "198.51.100.11"), ("LVS_REAL_PORT", "8080")];
        let virtual_and_real = [
            ("LVS_VIRTUAL_IP", "192.0.2.100"),
            ("LVS_VIRTUAL_PORT", "80"),
            real[0],
            real[1],
        ];
        assert_eq!(
            run(
                &super::external_command("printf '%s|'", None),
                &virtual_and_real
            ),
            "192.0.2.100|80|198.51.100.11|8080|"
        );
        assert_eq!(
            run(&super::external_command("printf '%s|'", Some(7)), &real),
            "7||198.51.100.11|8080|"
        );
    }
}
