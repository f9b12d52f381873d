//! keepalived checkers (HTTP_GET, SSL_GET, TCP_CHECK, SMTP_CHECK, DNS_CHECK, MISC_CHECK,
//! UDP_CHECK, PING_CHECK, FILE_CHECK, BFD_CHECK) to a director.toml check.
//!
//! keepalived counts failures as "retry": after a failed attempt it tries `retry` more times,
//! `delay_before_retry` apart, before the server goes down; one success brings it back. That
//! is `fall = retry + 1`, `retry_delay = delay_before_retry`, `rise = 1` here.

use std::net::{IpAddr, SocketAddr};

use lvs_config::{Check, CheckHost, CheckType, CheckUrl, Duration, InitialState};

use super::parse::Node;
use super::{Context, ImportError, flag, number, timer};

/// Options a virtual server or real server sets as defaults for its checkers.
#[derive(Debug, Clone, Default)]
pub(super) struct Timing {
    delay_loop: Option<Duration>,
    connect_timeout: Option<Duration>,
    retry: Option<u32>,
    delay_before_retry: Option<Duration>,
    pub alpha: Option<bool>,
}

impl Timing {
    pub fn read(&mut self, node: &Node, ctx: &mut Context) -> Result<(), ImportError> {
        match node.key() {
            "delay_loop" => self.delay_loop = Some(timer(node, 1)?),
            "connect_timeout" => self.connect_timeout = Some(timer(node, 1)?),
            "retry" | "nb_get_retry" => self.retry = Some(number(node, 1)?),
            "delay_before_retry" => self.delay_before_retry = Some(timer(node, 1)?),
            "alpha" => self.alpha = Some(flag(node)?),
            "warmup" => ctx.skip(node, "checks start at once, not after a random delay"),
            _ => unreachable!("timing_key() admits only the keys above"),
        }
        Ok(())
    }
}

pub(super) fn timing_key(key: &str) -> bool {
    matches!(
        key,
        "delay_loop"
            | "connect_timeout"
            | "retry"
            | "nb_get_retry"
            | "delay_before_retry"
            | "alpha"
            | "warmup"
    )
}

pub(super) fn is_checker(key: &str) -> bool {
    matches!(
        key,
        "HTTP_GET"
            | "SSL_GET"
            | "TCP_CHECK"
            | "SMTP_CHECK"
            | "DNS_CHECK"
            | "MISC_CHECK"
            | "UDP_CHECK"
            | "PING_CHECK"
            | "FILE_CHECK"
            | "BFD_CHECK"
    )
}

/// keepalived's delay_loop when nothing sets it.
const DEFAULT_DELAY_LOOP: Duration = Duration::from_secs(60);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn convert(
    ctx: &mut Context,
    node: &Node,
    inherited: &Timing,
    virtualhost: Option<&str>,
    real: SocketAddr,
) -> Result<Option<Check>, ImportError> {
    let kind = match node.key() {
        "HTTP_GET" => CheckType::Http,
        "SSL_GET" => CheckType::Https,
        "TCP_CHECK" => CheckType::Connect,
        "SMTP_CHECK" => CheckType::Smtp,
        "DNS_CHECK" => CheckType::Dns,
        "MISC_CHECK" => CheckType::External,
        "UDP_CHECK" => CheckType::Udp,
        "PING_CHECK" => CheckType::Ping,
        _ => {
            ctx.skip(
                node,
                "no such check here; the real server is not checked by it (always up unless another check says otherwise)",
            );
            return Ok(None);
        }
    };
    let mut timing = inherited.clone();
    let mut check = Check {
        kind: Some(kind),
        ..Check::default()
    };
    let mut host = virtualhost.map(str::to_owned);
    let mut sni = false;
    let mut misc_timeout = None;
    let mut urls = Vec::new();
    let mut hosts = Vec::new();
    // keepalived 2.2.7 (check_smtp.c) checks the real server itself besides the host blocks
    // when the SMTP_CHECK block sets any connection option of its own, connect_timeout and
    // bind_if included.
    let mut own_connection = false;
    let mut host_timeout = Vec::new();
    for child in node.children() {
        own_connection |= matches!(child.key(), "connect_timeout" | "bind_if" | "fwmark");
        match child.key() {
            key if timing_key(key) => timing.read(child, ctx)?,
            "bindto" | "bind_port" if matches!(kind, CheckType::Ping | CheckType::External) => {
                ctx.skip(
                    child,
                    "a ping or a command goes from the routing table's source",
                );
            }
            key if route_key(key) => {
                let mut route = Route::of_check(&check);
                route.read(ctx, child, real)?;
                route.set_on_check(&mut check);
            }
            "log_all_failures" => ctx.skip(child, "ignored: state changes are logged"),
            "url" if matches!(kind, CheckType::Http | CheckType::Https) => {
                urls.push(url(ctx, child)?);
            }
            "virtualhost" if matches!(kind, CheckType::Http | CheckType::Https) => {
                host = Some(super::required_arg(child, 1, "a host name")?.to_owned());
            }
            "http_protocol" | "fast_recovery" => {
                ctx.skip(child, "requests are HTTP/1.1 with Connection: close");
            }
            "enable_sni" => sni = flag(child)?,
            "helo_name" if kind == CheckType::Smtp => {
                check.helo_name = Some(super::required_arg(child, 1, "a name")?.to_owned());
            }
            "host" if kind == CheckType::Smtp => {
                let (host, timeout) = smtp_host(ctx, child, real)?;
                hosts.push(host);
                host_timeout.extend(timeout);
            }
            "type" if kind == CheckType::Dns => {
                check.record_type =
                    Some(super::required_arg(child, 1, "a record type")?.to_ascii_uppercase());
            }
            "name" if kind == CheckType::Dns => {
                check.query = Some(super::required_arg(child, 1, "a name")?.to_owned());
            }
            "misc_path" => {
                check.command = Some(super::required_arg(child, 1, "a command")?.to_owned());
            }
            "misc_timeout" => misc_timeout = Some(timer(child, 1)?),
            "misc_dynamic" => check.dynamic_weight = Some(true),
            "user" => ctx.skip(child, "the command runs as directord's user"),
            "payload" | "require_reply" | "min_reply_length" | "max_reply_length" => ctx.skip(
                child,
                "the UDP check sends an empty datagram and fails only on an ICMP error",
            ),
            _ => ctx.skip(child, "ignored"),
        }
    }
    if own_connection && !hosts.is_empty() && !hosts.contains(&CheckHost::default()) {
        hosts.insert(0, CheckHost::default());
    }
    if !hosts.is_empty() {
        check.hosts = Some(hosts);
    }
    pages(&mut check, urls, &mut host);
    if kind == CheckType::External && check.command.is_none() {
        ctx.skip(
            node,
            "MISC_CHECK without misc_path; the real server is not checked",
        );
        return Ok(None);
    }
    defaults(&mut check, kind, &timing, misc_timeout, host, sni);
    host_timeouts(ctx, node, &mut check, &host_timeout);
    Ok(Some(check))
}

/// The values keepalived gives what the check block leaves out (check_*.c and
/// keepalived.conf(5)).
fn defaults(
    check: &mut Check,
    kind: CheckType,
    timing: &Timing,
    misc_timeout: Option<Duration>,
    host: Option<String>,
    sni: bool,
) {
    let interval = timing.delay_loop.unwrap_or(DEFAULT_DELAY_LOOP);
    let (retry, retry_delay) = match kind {
        CheckType::Dns => (3, interval),
        CheckType::External => (0, Duration::from_secs(1)),
        CheckType::Http | CheckType::Https => (1, Duration::from_secs(3)),
        _ => (1, Duration::from_secs(1)),
    };
    let retry = timing.retry.unwrap_or(retry);
    check.interval = Some(interval);
    check.timeout = Some(if kind == CheckType::External {
        misc_timeout.unwrap_or(interval)
    } else {
        timing.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)
    });
    if check.timeout.is_some_and(Duration::is_zero) {
        check.timeout = Some(DEFAULT_CONNECT_TIMEOUT);
    }
    check.rise = Some(1);
    check.fall = Some(retry + 1);
    check.retry_delay = Some(timing.delay_before_retry.unwrap_or(retry_delay));
    check.initial = Some(if timing.alpha == Some(true) {
        InitialState::Down
    } else {
        InitialState::Up
    });
    match kind {
        CheckType::Http | CheckType::Https => {
            if check.path.is_none() && check.url.is_none() {
                check.path = Some("/".to_owned());
            }
            if check.expect_status.is_none() {
                check.expect_status = Some(vec!["200-299".to_owned()]);
            }
            check.host = host.clone();
            if kind == CheckType::Https {
                // keepalived does not verify the server's certificate.
                check.tls_verify = Some(false);
                if sni {
                    check.sni = host;
                }
            }
        }
        CheckType::Dns => {
            check.query.get_or_insert_with(|| ".".to_owned());
            check.record_type.get_or_insert_with(|| "SOA".to_owned());
        }
        _ => {}
    }
}

/// keepalived's connection options, valid in a checker and in an SMTP host block.
fn route_key(key: &str) -> bool {
    matches!(
        key,
        "connect_ip" | "connect_port" | "bindto" | "bind_port" | "bind_if" | "fwmark"
    )
}

/// Where a check connects to and from, as keepalived's conn_opts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Route {
    address: Option<IpAddr>,
    port: Option<u16>,
    bind_address: Option<IpAddr>,
    bind_port: Option<u16>,
}

impl Route {
    fn of_check(check: &Check) -> Route {
        Route {
            address: check.address,
            port: check.port,
            bind_address: check.bind_address,
            bind_port: check.bind_port,
        }
    }

    fn set_on_check(self, check: &mut Check) {
        check.address = self.address;
        check.port = self.port;
        check.bind_address = self.bind_address;
        check.bind_port = self.bind_port;
    }

    /// One option; connect_ip naming the real server itself is left out, as it is the
    /// default.
    fn read(
        &mut self,
        ctx: &mut Context,
        node: &Node,
        real: SocketAddr,
    ) -> Result<(), ImportError> {
        let address = |node: &Node| -> Result<IpAddr, ImportError> {
            let text = super::required_arg(node, 1, "an address")?;
            text.parse().map_err(|_| {
                ImportError::new(
                    &node.at,
                    super::ErrorKind::BadValue,
                    format!("{} needs an IP address, got {text:?}", node.key()),
                )
            })
        };
        match node.key() {
            "connect_ip" => self.address = Some(address(node)?).filter(|ip| *ip != real.ip()),
            "connect_port" => self.port = Some(number(node, 1)?),
            "bindto" => self.bind_address = Some(address(node)?),
            "bind_port" => self.bind_port = Some(number(node, 1)?),
            _ => ctx.skip(
                node,
                "the check's packets are neither marked nor tied to an interface; bind_address picks the source",
            ),
        }
        Ok(())
    }
}

/// An SMTP_CHECK host block: one more server the check must find up, and its own
/// connect_timeout if it has one.
fn smtp_host(
    ctx: &mut Context,
    node: &Node,
    real: SocketAddr,
) -> Result<(CheckHost, Option<Duration>), ImportError> {
    let mut route = Route::default();
    let mut timeout = None;
    for option in node.children() {
        match option.key() {
            key if route_key(key) => route.read(ctx, option, real)?,
            "connect_timeout" => timeout = Some(timer(option, 1)?),
            _ => ctx.skip(option, "a host block takes connection options only here"),
        }
    }
    let host = CheckHost {
        address: route.address,
        port: route.port,
        bind_address: route.bind_address,
        bind_port: route.bind_port,
    };
    Ok((host, timeout))
}

/// The hosts are probed together under the check's one timeout: it becomes the longest a
/// host block gives (keepalived gives each host its own, and a host without one none at all:
/// 2.2.7 times its reads out at once).
fn host_timeouts(ctx: &mut Context, node: &Node, check: &mut Check, timeouts: &[Duration]) {
    let Some(longest) = timeouts.iter().copied().max() else {
        return;
    };
    if timeouts.iter().any(|t| *t != longest) {
        ctx.skip(
            node,
            "host blocks with different connect_timeout: every host gets the longest",
        );
    }
    check.timeout = Some(longest);
}

/// One url block as the check shows it: one page on the check itself, several as its
/// `url` list.
fn pages(check: &mut Check, mut urls: Vec<CheckUrl>, host: &mut Option<String>) {
    if urls.len() != 1 {
        check.url = (!urls.is_empty()).then_some(urls);
        return;
    }
    let only = urls.remove(0);
    check.path = only.path;
    check.expect_status = only.expect_status;
    check.expect_body = only.expect_body;
    check.digest = only.digest;
    if only.host.is_some() {
        *host = only.host;
    }
}

fn url(ctx: &mut Context, node: &Node) -> Result<CheckUrl, ImportError> {
    let mut page = CheckUrl::default();
    for child in node.children() {
        match child.key() {
            "path" => {
                let path = super::required_arg(child, 1, "a path")?;
                page.path = Some(if path.starts_with('/') {
                    path.to_owned()
                } else {
                    format!("/{path}")
                });
            }
            "status_code" => {
                let codes: Vec<String> = child.words[1..].to_vec();
                for code in &codes {
                    if lvs_config_status_ok(code).is_err() {
                        return Err(ImportError::new(
                            &child.at,
                            super::ErrorKind::BadValue,
                            format!("invalid status code or range {code:?}"),
                        ));
                    }
                }
                page.expect_status = Some(codes);
            }
            "digest" => {
                let digest = super::required_arg(child, 1, "an MD5 digest")?;
                if lvs_config::parse_digest(digest).is_none() {
                    return Err(ImportError::new(
                        &child.at,
                        super::ErrorKind::BadValue,
                        format!("digest {digest:?} is not 32 hex digits"),
                    ));
                }
                page.digest = Some(digest.to_ascii_lowercase());
            }
            "virtualhost" => {
                page.host = Some(super::required_arg(child, 1, "a host name")?.to_owned());
            }
            "regex" => {
                let pattern = super::required_arg(child, 1, "a pattern")?;
                if regex::Regex::new(pattern).is_ok() {
                    page.expect_body = Some(pattern.to_owned());
                } else {
                    ctx.skip(child, "the pattern is not valid here (Rust regex syntax); the body is not checked");
                }
            }
            _ => ctx.skip(child, "ignored"),
        }
    }
    Ok(page)
}

/// "200" or "200-299" within 100..=599, as lvs-config accepts them.
fn lvs_config_status_ok(text: &str) -> Result<(), ()> {
    let (low, high) = text.split_once('-').unwrap_or((text, text));
    let low: u16 = low.parse().map_err(|_| ())?;
    let high: u16 = high.parse().map_err(|_| ())?;
    if (100..=599).contains(&low) && (100..=599).contains(&high) && low <= high {
        Ok(())
    } else {
        Err(())
    }
}
