//! A check as the prober runs it: the service's `[check]` merged with a real server's override
//! and every default filled in, so nothing downstream looks at `Option`s or strings again.
//!
//! Defaults, and whose they are:
//! - `interval` 10 s, `timeout` 5 s: ldirectord's checkinterval and checktimeout (keepalived's
//!   delay_loop is 60 s and connect_timeout 5 s; ldirectord's are what operators of a director
//!   expect).
//! - `rise` 1, `fall` 1: ldirectord's failurecount 1 and keepalived's retry 1.
//! - `retry_delay` 1 s: keepalived's delay_before_retry; never longer than the interval.
//! - `initial` up: keepalived's default (no `alpha`): a director restarting does not empty
//!   the pool while the first round of checks runs.
//! - `max_bytes` 4096: enough for any greeting or status line plus a small body.
//! - http: method GET, path "/", status 200-299 (keepalived's status_code default set);
//!   Host header the real server's address unless `host` says otherwise.
//! - https: `tls_verify` true (a certificate that does not verify is a failed check unless
//!   the operator says otherwise), SNI the `host`, else none for an address.
//! - dns: record type A, expected rcode NOERROR with at least one answer of that type.
//! - sip: status 200 (ldirectord accepts only 200 to OPTIONS).
//! - no `[check]` anywhere: `on`, the server stays in the pool (keepalived without a
//!   checker).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use lvs_config::{
    Check, CheckHost, CheckType, CheckUrl, InitialState, Protocol, RealServer, VirtualServer,
};
use regex::bytes::Regex;

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(1);
pub const DEFAULT_MAX_BYTES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes that bring a down server up.
    pub rise: u32,
    /// Consecutive failures that take an up server down.
    pub fall: u32,
    /// Wait before the next attempt after a failure that has not yet reached `fall`.
    pub retry_delay: Duration,
    pub initial_up: bool,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            rise: 1,
            fall: 1,
            retry_delay: DEFAULT_RETRY_DELAY,
            initial_up: true,
        }
    }
}

/// Everything one probe of one server needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    pub timing: Timing,
    /// Port probed instead of the real server's (keepalived connect_port).
    pub port: Option<u16>,
    /// Address probed instead of the real server's (keepalived connect_ip).
    pub address: Option<IpAddr>,
    /// The source of the probe's connection (keepalived bindto and bind_port).
    pub bind: Bind,
    /// Most bytes read from the server in one probe.
    pub max_bytes: usize,
    pub kind: Kind,
}

/// A regular expression over bytes, equal to another when their source texts are, which is
/// what "did this check change" means on reload.
#[derive(Debug, Clone)]
pub struct Pattern(pub Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Pattern {}

impl std::ops::Deref for Pattern {
    type Target = Regex;
    fn deref(&self) -> &Regex {
        &self.0
    }
}

impl From<Regex> for Pattern {
    fn from(regex: Regex) -> Self {
        Pattern(regex)
    }
}

/// A connection's source: either part absent is the kernel's choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Bind {
    pub address: Option<IpAddr>,
    pub port: Option<u16>,
}

impl Bind {
    /// The address to bind before connecting to `to`, if anything is chosen: a port alone
    /// binds the unspecified address of `to`'s family.
    pub fn source_for(&self, to: SocketAddr) -> Option<SocketAddr> {
        if self.address.is_none() && self.port.is_none() {
            return None;
        }
        let any: IpAddr = if to.is_ipv4() {
            std::net::Ipv4Addr::UNSPECIFIED.into()
        } else {
            std::net::Ipv6Addr::UNSPECIFIED.into()
        };
        Some(SocketAddr::new(
            self.address.unwrap_or(any),
            self.port.unwrap_or(0),
        ))
    }
}

/// Where one connection of a probe goes and comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    pub to: SocketAddr,
    pub from: Option<SocketAddr>,
}

impl Route {
    pub fn to(to: SocketAddr) -> Route {
        Route { to, from: None }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Always up.
    On,
    /// Always down.
    Off,
    /// TCP connect succeeds.
    Connect,
    /// ICMP / ICMPv6 echo answered.
    Ping,
    Http(Http),
    Tcp(Exchange),
    /// A datagram exchange; without `expect`, silence is up and ICMP port unreachable down.
    Udp(Exchange),
    Dns(Dns),
    Smtp(Smtp),
    Pop(Dialogue),
    Imap(Dialogue),
    Ftp(Dialogue),
    Ldap(Ldap),
    Mysql(Database),
    Pgsql(Database),
    Sip(Sip),
    Radius(Radius),
    External(External),
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::On => "on",
            Kind::Off => "off",
            Kind::Connect => "connect",
            Kind::Ping => "ping",
            Kind::Http(h) if h.tls.is_some() => "https",
            Kind::Http(_) => "http",
            Kind::Tcp(_) => "tcp",
            Kind::Udp(_) => "udp",
            Kind::Dns(_) => "dns",
            Kind::Smtp(_) => "smtp",
            Kind::Pop(_) => "pop",
            Kind::Imap(_) => "imap",
            Kind::Ftp(_) => "ftp",
            Kind::Ldap(_) => "ldap",
            Kind::Mysql(_) => "mysql",
            Kind::Pgsql(_) => "pgsql",
            Kind::Sip(_) => "sip",
            Kind::Radius(_) => "radius",
            Kind::External(_) => "external",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http {
    pub method: String,
    /// Host header and default SNI; the target address when absent.
    pub host: Option<String>,
    pub tls: Option<Tls>,
    /// Fetched in turn, each on its own connection; every one must pass (keepalived's url
    /// blocks). Never empty.
    pub urls: Vec<Url>,
}

/// One page of an http check and what its answer must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub path: String,
    /// This page's Host header, over the check's.
    pub host: Option<String>,
    /// Inclusive ranges of accepted status codes.
    pub statuses: Vec<(u16, u16)>,
    pub body: Option<Pattern>,
    /// MD5 of the (de-chunked) body, as keepalived's digest.
    pub digest: Option<[u8; 16]>,
}

impl Url {
    /// A page with the default answer: status 200-299, any body.
    pub fn new(path: &str) -> Url {
        Url {
            path: path.to_owned(),
            host: None,
            statuses: vec![(200, 299)],
            body: None,
            digest: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub verify: bool,
    /// Server name sent and verified; none sends no SNI and, with `verify`, checks the
    /// certificate against the target's IP address.
    pub sni: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub send: Option<Vec<u8>>,
    pub expect: Option<Pattern>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError = 0,
    FormErr = 1,
    ServFail = 2,
    NxDomain = 3,
    NotImp = 4,
    Refused = 5,
}

impl Rcode {
    pub fn from_name(name: &str) -> Option<Rcode> {
        Some(match name {
            "NOERROR" => Rcode::NoError,
            "FORMERR" => Rcode::FormErr,
            "SERVFAIL" => Rcode::ServFail,
            "NXDOMAIN" => Rcode::NxDomain,
            "NOTIMP" => Rcode::NotImp,
            "REFUSED" => Rcode::Refused,
            _ => return None,
        })
    }

    pub fn name(code: u8) -> &'static str {
        match code {
            0 => "NOERROR",
            1 => "FORMERR",
            2 => "SERVFAIL",
            3 => "NXDOMAIN",
            4 => "NOTIMP",
            5 => "REFUSED",
            _ => "rcode>5",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dns {
    pub query: String,
    pub record_type: u16,
    /// When set, the reply's rcode must be this and answers are not required; otherwise
    /// NOERROR with an answer of `record_type`.
    pub expect_rcode: Option<Rcode>,
}

/// A line protocol: greeting, optional login, optional regex on everything read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialogue {
    pub login: Option<Login>,
    pub expect: Option<Pattern>,
}

/// An SMTP check: the dialogue, the name it greets with, and the servers it talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smtp {
    pub dialogue: Dialogue,
    /// Sent with EHLO / HELO (keepalived helo_name); directord's own name when absent.
    pub helo: Option<String>,
    /// All checked at once, all must pass (keepalived's host blocks); empty: the check's own
    /// address, port and source.
    pub hosts: Vec<Endpoint>,
}

/// One server of a check with several: each part absent is the real server's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub address: Option<IpAddr>,
    pub port: Option<u16>,
    pub bind: Bind,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password length is enough to tell two configs apart in logs without leaking it.
        write!(
            f,
            "Login({:?}, {} byte password)",
            self.user,
            self.password.len()
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ldap {
    /// Simple bind with this DN and password; anonymous bind when absent.
    pub login: Option<Login>,
    /// Base-object search of this DN after the bind, which must succeed.
    pub search_base: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    pub user: Option<String>,
    pub password: Option<String>,
    pub database: Option<String>,
    /// Run after the login; up only when it returns at least one row (ldirectord's
    /// request for mysql and pgsql checks).
    pub query: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sip {
    pub host: Option<String>,
    pub statuses: Vec<(u16, u16)>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Radius {
    pub user: String,
    pub password: String,
    pub secret: Arc<[u8]>,
}

impl std::fmt::Debug for Radius {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Radius({:?}, {} byte password, {} byte secret)",
            self.user,
            self.password.len(),
            self.secret.len()
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct External {
    /// Run by `/bin/sh -c`.
    pub command: String,
    pub dynamic_weight: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("check has no type")]
    NoType,
    #[error("invalid status range {0:?}")]
    Status(String),
    #[error("invalid regular expression {0:?}")]
    Regex(String),
    #[error("unknown DNS record type {0:?}")]
    RecordType(String),
    #[error("unknown DNS rcode {0:?}")]
    Rcode(String),
    #[error("{0} check needs {1}")]
    Missing(&'static str, &'static str),
    #[error("invalid digest {0:?}: 32 hex digits")]
    Digest(String),
}

/// Where a probe goes, and what an external command is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    pub real: SocketAddr,
    pub virtual_addr: Option<SocketAddr>,
}

impl Target {
    pub fn new(real: SocketAddr) -> Self {
        Target {
            real,
            virtual_addr: None,
        }
    }

    /// The address probed: the real server's, or the check's address and port when it has
    /// them.
    pub fn probe_addr(&self, spec: &CheckSpec) -> SocketAddr {
        SocketAddr::new(
            spec.address.unwrap_or(self.real.ip()),
            spec.port.unwrap_or(self.real.port()),
        )
    }

    /// Where the probe's connection goes and comes from.
    pub fn route(&self, spec: &CheckSpec) -> Route {
        let to = self.probe_addr(spec);
        Route {
            to,
            from: spec.bind.source_for(to),
        }
    }

    /// Where a connection to one of a check's several servers goes and comes from.
    pub fn endpoint_route(&self, endpoint: &Endpoint) -> Route {
        let to = SocketAddr::new(
            endpoint.address.unwrap_or(self.real.ip()),
            endpoint.port.unwrap_or(self.real.port()),
        );
        Route {
            to,
            from: endpoint.bind.source_for(to),
        }
    }
}

impl CheckSpec {
    /// The check of `real` under `service`: the real server's own keys first, then the
    /// service's. Config validation has already refused what does not apply to the type.
    pub fn resolve(service: &VirtualServer, real: &RealServer) -> Result<CheckSpec, SpecError> {
        match (service.check.as_ref(), real.check.as_deref()) {
            (None, None) => Ok(CheckSpec::always(true)),
            (Some(c), None) | (None, Some(c)) => from_check(c, None, service.protocol),
            (Some(base), Some(own)) => from_check(own, Some(base), service.protocol),
        }
    }

    /// The target of `real` under `service`.
    pub fn target(service: &VirtualServer, real: &RealServer) -> Target {
        Target {
            real: real.address,
            virtual_addr: service.address,
        }
    }

    /// `on` (true) or `off` with default timing.
    pub fn always(up: bool) -> CheckSpec {
        CheckSpec {
            timing: Timing {
                initial_up: up,
                ..Timing::default()
            },
            port: None,
            address: None,
            bind: Bind::default(),
            max_bytes: DEFAULT_MAX_BYTES,
            kind: if up { Kind::On } else { Kind::Off },
        }
    }
}

/// "200" or "200-299" within 100..=599; the config crate keeps its parser private.
pub fn parse_status_range(text: &str) -> Option<(u16, u16)> {
    let (low, high) = match text.split_once('-') {
        Some((low, high)) => (low.trim(), high.trim()),
        None => (text.trim(), text.trim()),
    };
    let low: u16 = low.parse().ok()?;
    let high: u16 = high.parse().ok()?;
    ((100..=599).contains(&low) && (100..=599).contains(&high) && low <= high)
        .then_some((low, high))
}

pub fn record_type_code(name: &str) -> Option<u16> {
    Some(match name {
        "A" => 1,
        "NS" => 2,
        "CNAME" => 5,
        "SOA" => 6,
        "PTR" => 12,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        "SRV" => 33,
        _ => return None,
    })
}

fn statuses(
    ranges: Option<&Vec<String>>,
    default: (u16, u16),
) -> Result<Vec<(u16, u16)>, SpecError> {
    match ranges {
        None => Ok(vec![default]),
        Some(ranges) => ranges
            .iter()
            .map(|r| parse_status_range(r).ok_or_else(|| SpecError::Status(r.clone())))
            .collect(),
    }
}

fn regex(pattern: Option<&String>) -> Result<Option<Pattern>, SpecError> {
    pattern
        .map(|p| {
            Regex::new(p)
                .map(Pattern)
                .map_err(|_| SpecError::Regex(p.clone()))
        })
        .transpose()
}

/// A real server's check keys over its service's: timing keys are inherited whatever the
/// types, protocol keys only when both checks are of the same type (an http path makes no
/// sense to a dns check).
struct Keys<'a> {
    own: &'a Check,
    base: Option<&'a Check>,
    same_type: bool,
}

impl<'a> Keys<'a> {
    fn get<T: ?Sized>(&self, key: fn(&'a Check) -> Option<&'a T>) -> Option<&'a T> {
        key(self.own).or_else(|| {
            if self.same_type {
                self.base.and_then(key)
            } else {
                None
            }
        })
    }

    fn copied<T: Copy>(&self, key: fn(&'a Check) -> Option<T>) -> Option<T> {
        key(self.own).or_else(|| {
            if self.same_type {
                self.base.and_then(key)
            } else {
                None
            }
        })
    }

    fn string(&self, key: fn(&'a Check) -> Option<&'a String>) -> Option<String> {
        self.get(key).cloned()
    }

    fn inherited<T: Copy>(&self, key: fn(&'a Check) -> Option<T>) -> Option<T> {
        key(self.own).or_else(|| self.base.and_then(key))
    }
}

fn from_check(
    own: &Check,
    base: Option<&Check>,
    protocol: Protocol,
) -> Result<CheckSpec, SpecError> {
    let kind = own
        .kind
        .or(base.and_then(|b| b.kind))
        .ok_or(SpecError::NoType)?;
    let keys = Keys {
        own,
        base,
        same_type: base.is_some_and(|b| own.kind.is_none() || b.kind == own.kind),
    };
    Ok(CheckSpec {
        timing: timing(&keys, kind),
        port: keys.copied(|c| c.port),
        address: keys.copied(|c| c.address),
        bind: Bind {
            address: keys.copied(|c| c.bind_address),
            port: keys.copied(|c| c.bind_port),
        },
        max_bytes: keys
            .copied(|c| c.max_bytes)
            .map_or(DEFAULT_MAX_BYTES, |n| n as usize),
        kind: kind_of(&keys, kind, protocol)?,
    })
}

fn timing(keys: &Keys<'_>, kind: CheckType) -> Timing {
    let timed =
        |key: fn(&Check) -> Option<lvs_config::Duration>| keys.inherited(key).map(|d| d.get());
    let interval = timed(|c| c.interval).unwrap_or(DEFAULT_INTERVAL);
    Timing {
        interval,
        timeout: timed(|c| c.timeout).unwrap_or(DEFAULT_TIMEOUT),
        rise: keys.inherited(|c| c.rise).unwrap_or(1).max(1),
        fall: keys.inherited(|c| c.fall).unwrap_or(1).max(1),
        retry_delay: timed(|c| c.retry_delay)
            .unwrap_or(DEFAULT_RETRY_DELAY)
            .min(interval),
        initial_up: match (keys.inherited(|c| c.initial), kind) {
            (Some(state), _) => state == InitialState::Up,
            (None, CheckType::Off) => false,
            (None, _) => true,
        },
    }
}

fn kind_of(keys: &Keys<'_>, kind: CheckType, protocol: Protocol) -> Result<Kind, SpecError> {
    let login = || {
        keys.string(|c| c.user.as_ref()).map(|user| Login {
            user,
            password: keys.string(|c| c.password.as_ref()).unwrap_or_default(),
        })
    };
    let dialogue = || -> Result<Dialogue, SpecError> {
        Ok(Dialogue {
            login: login(),
            expect: regex(keys.get(|c| c.expect.as_ref()))?,
        })
    };
    let database = || Database {
        user: keys.string(|c| c.user.as_ref()),
        password: keys.string(|c| c.password.as_ref()),
        database: keys.string(|c| c.database.as_ref()),
        query: keys.string(|c| c.query.as_ref()),
    };
    Ok(match kind {
        CheckType::On => Kind::On,
        CheckType::Off => Kind::Off,
        CheckType::Connect if protocol == Protocol::Udp => Kind::Udp(Exchange {
            send: None,
            expect: None,
        }),
        CheckType::Connect => Kind::Connect,
        CheckType::Ping => Kind::Ping,
        CheckType::Http => Kind::Http(http(keys, None)?),
        CheckType::Https => Kind::Http(http(
            keys,
            Some(Tls {
                verify: keys.copied(|c| c.tls_verify).unwrap_or(true),
                sni: keys
                    .get(|c| c.sni.as_ref())
                    .or_else(|| keys.get(|c| c.host.as_ref()))
                    .cloned(),
            }),
        )?),
        CheckType::Tcp | CheckType::Udp => {
            let exchange = Exchange {
                send: keys.get(|c| c.send.as_ref()).map(|s| unescape(s)),
                expect: regex(keys.get(|c| c.expect.as_ref()))?,
            };
            if kind == CheckType::Tcp {
                Kind::Tcp(exchange)
            } else {
                Kind::Udp(exchange)
            }
        }
        CheckType::Dns => Kind::Dns(dns(keys)?),
        CheckType::Smtp => Kind::Smtp(Smtp {
            dialogue: dialogue()?,
            helo: keys.string(|c| c.helo_name.as_ref()),
            hosts: smtp_hosts(keys),
        }),
        CheckType::Pop => Kind::Pop(dialogue()?),
        CheckType::Imap => Kind::Imap(dialogue()?),
        CheckType::Ftp => Kind::Ftp(dialogue()?),
        CheckType::Ldap => Kind::Ldap(Ldap {
            login: login(),
            search_base: keys.string(|c| c.path.as_ref()),
        }),
        CheckType::Mysql => Kind::Mysql(database()),
        CheckType::Pgsql => Kind::Pgsql(database()),
        CheckType::Sip => Kind::Sip(Sip {
            host: keys.string(|c| c.host.as_ref()),
            statuses: statuses(keys.get(|c| c.expect_status.as_ref()), (200, 200))?,
        }),
        CheckType::Radius => Kind::Radius(Radius {
            user: keys.string(|c| c.user.as_ref()).unwrap_or_default(),
            password: keys.string(|c| c.password.as_ref()).unwrap_or_default(),
            secret: keys
                .get(|c| c.secret.as_ref())
                .ok_or(SpecError::Missing("radius", "secret"))?
                .as_bytes()
                .into(),
        }),
        CheckType::External => Kind::External(External {
            command: keys
                .string(|c| c.command.as_ref())
                .ok_or(SpecError::Missing("external", "command"))?,
            dynamic_weight: keys.copied(|c| c.dynamic_weight).unwrap_or(false),
        }),
    })
}

/// The check's pages: its `url` list, each page's keys over the check's own, or the one
/// page the check's own keys describe.
fn http(keys: &Keys<'_>, tls: Option<Tls>) -> Result<Http, SpecError> {
    let default = CheckUrl {
        path: keys.string(|c| c.path.as_ref()),
        host: None,
        expect_status: keys.get(|c| c.expect_status.as_ref()).cloned(),
        expect_body: keys.string(|c| c.expect_body.as_ref()),
        digest: keys.string(|c| c.digest.as_ref()),
    };
    let pages = match keys.get(|c| c.url.as_ref()) {
        Some(urls) if !urls.is_empty() => urls.clone(),
        _ => vec![CheckUrl::default()],
    };
    let urls = pages
        .iter()
        .map(|page| {
            Ok(Url {
                path: page
                    .path
                    .clone()
                    .or_else(|| default.path.clone())
                    .unwrap_or_else(|| "/".to_owned()),
                host: page.host.clone(),
                statuses: statuses(
                    page.expect_status
                        .as_ref()
                        .or(default.expect_status.as_ref()),
                    (200, 299),
                )?,
                body: regex(page.expect_body.as_ref().or(default.expect_body.as_ref()))?,
                digest: page
                    .digest
                    .as_ref()
                    .or(default.digest.as_ref())
                    .map(|d| {
                        lvs_config::parse_digest(d).ok_or_else(|| SpecError::Digest(d.clone()))
                    })
                    .transpose()?,
            })
        })
        .collect::<Result<Vec<_>, SpecError>>()?;
    Ok(Http {
        method: keys
            .string(|c| c.method.as_ref())
            .unwrap_or_else(|| "GET".to_owned()),
        host: keys.string(|c| c.host.as_ref()),
        tls,
        urls,
    })
}

/// keepalived probes the check's own address when any of its connection keys is set or it
/// has no host blocks, and each host block besides.
fn smtp_hosts(keys: &Keys<'_>) -> Vec<Endpoint> {
    let Some(hosts) = keys.get(|c| c.hosts.as_ref()).filter(|h| !h.is_empty()) else {
        return Vec::new();
    };
    let endpoint = |h: &CheckHost| Endpoint {
        address: h.address,
        port: h.port,
        bind: Bind {
            address: h.bind_address,
            port: h.bind_port,
        },
    };
    let own = CheckHost {
        address: keys.copied(|c| c.address),
        port: keys.copied(|c| c.port),
        bind_address: keys.copied(|c| c.bind_address),
        bind_port: keys.copied(|c| c.bind_port),
    };
    let mut endpoints = Vec::with_capacity(hosts.len() + 1);
    if own != CheckHost::default() {
        endpoints.push(endpoint(&own));
    }
    endpoints.extend(hosts.iter().map(endpoint));
    endpoints
}

fn dns(keys: &Keys<'_>) -> Result<Dns, SpecError> {
    let record = keys.get(|c| c.record_type.as_ref());
    let rcode = keys.get(|c| c.expect_rcode.as_ref());
    Ok(Dns {
        query: keys
            .string(|c| c.query.as_ref())
            .ok_or(SpecError::Missing("dns", "query"))?,
        record_type: match record {
            None => 1,
            Some(name) => {
                record_type_code(name).ok_or_else(|| SpecError::RecordType(name.clone()))?
            }
        },
        expect_rcode: rcode
            .map(|name| Rcode::from_name(name).ok_or_else(|| SpecError::Rcode(name.clone())))
            .transpose()?,
    })
}

/// `send` strings carry C escapes (`\r\n`, `\x00`) as ldirectord's request strings do, since
/// TOML basic strings cannot hold every byte a binary protocol needs.
pub fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes().peekable();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'0') => out.push(0),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex: Vec<u8> = (0..2).filter_map(|_| bytes.next()).collect();
                match std::str::from_utf8(&hex)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) if hex.len() == 2 => out.push(v),
                    _ => {
                        out.extend_from_slice(b"\\x");
                        out.extend_from_slice(&hex);
                    }
                }
            }
            Some(other) => out.extend_from_slice(&[b'\\', other]),
            None => out.push(b'\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(toml_text: &str) -> VirtualServer {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn no_check_is_on() {
        let vs = service("address = \"192.0.2.1:80\"\n[[real]]\naddress = \"198.51.100.1:80\"\n");
        let spec = CheckSpec::resolve(&vs, &vs.real[0]).unwrap();
        assert!(matches!(spec.kind, Kind::On));
        assert!(spec.timing.initial_up);
    }

    #[test]
    fn defaults_are_ldirectords() {
        let vs = service(
            "address = \"192.0.2.1:80\"\ncheck = { type = \"http\" }\n[[real]]\naddress = \"198.51.100.1:80\"\n",
        );
        let spec = CheckSpec::resolve(&vs, &vs.real[0]).unwrap();
        assert_eq!(spec.timing, Timing::default());
        assert_eq!(spec.timing.interval, Duration::from_secs(10));
        assert_eq!(spec.max_bytes, 4096);
        let Kind::Http(http) = spec.kind else {
            panic!()
        };
        assert_eq!(http.method, "GET");
        assert_eq!(http.urls, vec![Url::new("/")]);
        assert!(http.tls.is_none());
    }

    #[test]
    fn real_server_inherits_type_and_timing_and_overrides_keys() {
        let vs = service(
            r#"address = "192.0.2.1:443"
check = { type = "https", interval = "2s", fall = 3, path = "/health", expect_status = ["200", "301-302"], tls_verify = false }
[[real]]
address = "198.51.100.1:443"
check = { timeout = "1s", path = "/ready", sni = "www.example.com" }
[[real]]
address = "198.51.100.2:443"
check = { type = "connect", port = 8443 }
"#,
        );
        let a = CheckSpec::resolve(&vs, &vs.real[0]).unwrap();
        assert_eq!(a.timing.interval, Duration::from_secs(2));
        assert_eq!(a.timing.timeout, Duration::from_secs(1));
        assert_eq!(a.timing.fall, 3);
        let Kind::Http(http) = a.kind else { panic!() };
        assert_eq!(http.urls[0].path, "/ready");
        assert_eq!(http.urls[0].statuses, vec![(200, 200), (301, 302)]);
        assert_eq!(
            http.tls,
            Some(Tls {
                verify: false,
                sni: Some("www.example.com".into())
            })
        );
        let b = CheckSpec::resolve(&vs, &vs.real[1]).unwrap();
        assert!(matches!(b.kind, Kind::Connect));
        assert_eq!(b.timing.fall, 3, "timing is inherited across types");
        assert_eq!(b.port, Some(8443));
        assert_eq!(
            CheckSpec::target(&vs, &vs.real[1]).probe_addr(&b),
            "198.51.100.2:8443".parse().unwrap()
        );
    }

    #[test]
    fn connect_on_a_udp_service_is_a_datagram_probe() {
        let vs = service(
            "address = \"192.0.2.1:53\"\nprotocol = \"udp\"\ncheck = { type = \"connect\" }\n[[real]]\naddress = \"198.51.100.1:53\"\n",
        );
        let spec = CheckSpec::resolve(&vs, &vs.real[0]).unwrap();
        assert!(matches!(
            spec.kind,
            Kind::Udp(Exchange {
                send: None,
                expect: None
            })
        ));
    }

    #[test]
    fn retry_delay_never_exceeds_interval_and_off_starts_down() {
        let vs = service(
            "address = \"192.0.2.1:80\"\ncheck = { type = \"off\", interval = \"500ms\" }\n[[real]]\naddress = \"198.51.100.1:80\"\n",
        );
        let spec = CheckSpec::resolve(&vs, &vs.real[0]).unwrap();
        assert_eq!(spec.timing.retry_delay, Duration::from_millis(500));
        assert!(!spec.timing.initial_up);
    }

    #[test]
    fn dns_and_radius_settings() {
        let vs = service(
            r#"address = "192.0.2.1:53"
check = { type = "dns", query = "example.org", record_type = "AAAA", expect_rcode = "NXDOMAIN" }
[[real]]
address = "198.51.100.1:53"
"#,
        );
        let Kind::Dns(dns) = CheckSpec::resolve(&vs, &vs.real[0]).unwrap().kind else {
            panic!()
        };
        assert_eq!(dns.record_type, 28);
        assert_eq!(dns.expect_rcode, Some(Rcode::NxDomain));
        let vs = service(
            "address = \"192.0.2.1:1812\"\ncheck = { type = \"radius\" }\n[[real]]\naddress = \"198.51.100.1:1812\"\n",
        );
        assert_eq!(
            CheckSpec::resolve(&vs, &vs.real[0]).unwrap_err(),
            SpecError::Missing("radius", "secret")
        );
    }

    #[test]
    fn equality_is_what_a_reload_compares() {
        let spec = |extra: &str| {
            let vs = service(&format!(
                "address = \"192.0.2.1:110\"\ncheck = {{ type = \"pop\", user = \"u\", {extra} }}\n[[real]]\naddress = \"198.51.100.1:110\"\n"
            ));
            CheckSpec::resolve(&vs, &vs.real[0]).unwrap()
        };
        let a = spec("password = \"aaaa\", expect = \"^[+]OK\"");
        assert_eq!(a, spec("password = \"aaaa\", expect = \"^[+]OK\""));
        assert_ne!(a, spec("password = \"bbbb\", expect = \"^[+]OK\""));
        assert_ne!(a, spec("password = \"aaaa\", expect = \"^[+]OK \""));
    }

    // Each url block takes the check's own path, status codes, pattern and digest for the
    // keys it leaves out, as the single-page form reads them; a bad digest is refused.
    #[test]
    fn url_pages_take_the_checks_keys_as_defaults() {
        let vs = service(
            r#"address = "192.0.2.1:80"
check = { type = "http", expect_status = ["200"], digest = "9b3a0c85a887a256d6939da88aabd8cd", url = [{ path = "/a" }, { path = "/b", host = "b.example", expect_status = ["204"], expect_body = "ok", digest = "640205b7b0fc66c1ea91c463fac6334d" }] }
[[real]]
address = "198.51.100.1:80"
"#,
        );
        let Kind::Http(http) = CheckSpec::resolve(&vs, &vs.real[0]).unwrap().kind else {
            panic!()
        };
        let [a, b] = &http.urls[..] else {
            panic!("{:?}", http.urls)
        };
        assert_eq!((a.path.as_str(), &a.statuses), ("/a", &vec![(200, 200)]));
        assert_eq!(a.digest.map(|d| d[0]), Some(0x9b));
        assert_eq!(
            (b.host.as_deref(), &b.statuses),
            (Some("b.example"), &vec![(204, 204)])
        );
        assert_eq!(b.digest.map(|d| d[0]), Some(0x64));
        assert!(b.body.as_ref().is_some_and(|p| p.is_match(b"ok")));
        let bad = service(
            "address = \"192.0.2.1:80\"\ncheck = { type = \"http\", digest = \"xyz\" }\n[[real]]\naddress = \"198.51.100.1:80\"\n",
        );
        assert_eq!(
            CheckSpec::resolve(&bad, &bad.real[0]).unwrap_err(),
            SpecError::Digest("xyz".into())
        );
    }

    // keepalived checks the check's own address too when any connection key is set beside
    // host blocks; the route of each goes to the real server for what it leaves out.
    #[test]
    fn smtp_hosts_and_routes() {
        let vs = service(
            r#"address = "192.0.2.1:25"
check = { type = "smtp", bind_address = "192.0.2.5", hosts = [{ port = 587 }, { address = "198.51.100.9", bind_port = 4000 }] }
[[real]]
address = "198.51.100.1:25"
"#,
        );
        let Kind::Smtp(smtp) = CheckSpec::resolve(&vs, &vs.real[0]).unwrap().kind else {
            panic!()
        };
        let target = CheckSpec::target(&vs, &vs.real[0]);
        let routes: Vec<Route> = smtp
            .hosts
            .iter()
            .map(|h| target.endpoint_route(h))
            .collect();
        let route = |to: &str, from: Option<&str>| Route {
            to: to.parse().unwrap(),
            from: from.map(|f| f.parse().unwrap()),
        };
        assert_eq!(
            routes,
            [
                route("198.51.100.1:25", Some("192.0.2.5:0")),
                route("198.51.100.1:587", None),
                route("198.51.100.9:25", Some("0.0.0.0:4000")),
            ]
        );
    }

    #[test]
    fn unescapes_request_strings() {
        assert_eq!(unescape(r"PING\r\n"), b"PING\r\n");
        assert_eq!(unescape(r"\x00\x7f\\x"), b"\x00\x7f\\x");
        assert_eq!(unescape(r"\xZZ\q"), b"\\xZZ\\q");
    }

    #[test]
    fn status_ranges() {
        assert_eq!(parse_status_range("200-299"), Some((200, 299)));
        assert_eq!(parse_status_range("404"), Some((404, 404)));
        assert_eq!(parse_status_range("299-200"), None);
        assert_eq!(parse_status_range("99"), None);
    }
}
