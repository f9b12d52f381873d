//! keepalived checkers (HTTP_GET, SSL_GET, TCP_CHECK, SMTP_CHECK, DNS_CHECK, MISC_CHECK,
//! UDP_CHECK, PING_CHECK, FILE_CHECK, BFD_CHECK) to a director.toml check.
//!
//! keepalived counts failures as "retry": after a failed attempt it tries `retry` more times,
//! `delay_before_retry` apart, before the server goes down; one success brings it back. That
//! is `fall = retry + 1`, `retry_delay = delay_before_retry`, `rise = 1` here.

use std::net::SocketAddr;

use lvs_config::{Check, CheckType, Duration, InitialState};

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
    let mut urls = 0;
    let mut hosts = 0;
    for child in node.children() {
        match child.key() {
            key if timing_key(key) => timing.read(child, ctx)?,
            "connect_port" => check.port = Some(number(child, 1)?),
            "connect_ip" => {
                if child.arg(1).and_then(|a| a.parse().ok()) != Some(real.ip()) {
                    ctx.skip(child, "the check goes to the real server's own address");
                }
            }
            "bindto" | "bind_port" | "bind_if" | "fwmark" => {
                ctx.skip(child, "the check's source is chosen by the routing table");
            }
            "log_all_failures" => ctx.skip(child, "ignored: state changes are logged"),
            "url" if matches!(kind, CheckType::Http | CheckType::Https) => {
                urls += 1;
                if urls > 1 {
                    ctx.skip(child, "only the first url is checked");
                    continue;
                }
                url(ctx, child, &mut check, &mut host)?;
            }
            "http_protocol" | "fast_recovery" => {
                ctx.skip(child, "requests are HTTP/1.1 with Connection: close");
            }
            "enable_sni" => sni = flag(child)?,
            "helo_name" => ctx.skip(child, "the SMTP check sends its own HELO name"),
            "host" if kind == CheckType::Smtp => {
                hosts += 1;
                if hosts > 1 {
                    ctx.skip(child, "only the first host is checked");
                    continue;
                }
                smtp_host(ctx, child, &mut check, real)?;
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
    if kind == CheckType::External && check.command.is_none() {
        ctx.skip(
            node,
            "MISC_CHECK without misc_path; the real server is not checked",
        );
        return Ok(None);
    }
    defaults(&mut check, kind, &timing, misc_timeout, host, sni);
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
            if check.path.is_none() {
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

/// An SMTP_CHECK host block: only the port carries over; the check goes to the real server.
fn smtp_host(
    ctx: &mut Context,
    node: &Node,
    check: &mut Check,
    real: SocketAddr,
) -> Result<(), ImportError> {
    for option in node.children() {
        match option.key() {
            "connect_port" => check.port = Some(number(option, 1)?),
            "connect_ip" if option.arg(1).and_then(|a| a.parse().ok()) == Some(real.ip()) => {}
            _ => ctx.skip(option, "the check goes to the real server itself"),
        }
    }
    Ok(())
}

fn url(
    ctx: &mut Context,
    node: &Node,
    check: &mut Check,
    host: &mut Option<String>,
) -> Result<(), ImportError> {
    for child in node.children() {
        match child.key() {
            "path" => {
                let path = super::required_arg(child, 1, "a path")?;
                check.path = Some(if path.starts_with('/') {
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
                check.expect_status = Some(codes);
            }
            "digest" => ctx.skip(
                child,
                "the body's MD5 digest is not compared; only the status code is checked",
            ),
            "virtualhost" => *host = Some(super::required_arg(child, 1, "a host name")?.to_owned()),
            "regex" => {
                let pattern = super::required_arg(child, 1, "a pattern")?;
                if regex::Regex::new(pattern).is_ok() {
                    check.expect_body = Some(pattern.to_owned());
                } else {
                    ctx.skip(child, "the pattern is not valid here (Rust regex syntax); the body is not checked");
                }
            }
            _ => ctx.skip(child, "ignored"),
        }
    }
    Ok(())
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
