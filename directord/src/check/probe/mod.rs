//! The probes: one async function per check kind, each bounded by the check's timeout and
//! reading at most `max_bytes` from the server, each ending in an [`Outcome`] with a short
//! reason.

mod datagram;
mod external;
mod reactor;
mod stream;
pub mod tls;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use lvs_checks::reason::io_reason;
pub(crate) use lvs_checks::reason::{excerpt, human};
use lvs_checks::wire::http::ResponseError;

use super::health::{DownCause, Exhausted, Outcome};
use super::spec::{CheckSpec, Exchange, Kind, Route, Target};

/// What probes share: TLS client settings, built once since loading the system roots reads
/// hundreds of files.
#[derive(Clone)]
pub struct ProbeContext {
    pub(crate) tls: Arc<tls::Clients>,
    reactor: Arc<reactor::Reactor>,
}

impl ProbeContext {
    /// Verifies certificates against the system's roots (SSL_CERT_FILE / SSL_CERT_DIR honoured).
    pub fn system() -> Self {
        ProbeContext {
            tls: Arc::new(tls::Clients::new(tls::system_roots())),
            reactor: Arc::default(),
        }
    }

    /// Verifies certificates against `roots` only.
    pub fn with_roots(roots: tokio_rustls::rustls::RootCertStore) -> Self {
        ProbeContext {
            tls: Arc::new(tls::Clients::new(roots)),
            reactor: Arc::default(),
        }
    }
}

impl std::fmt::Debug for ProbeContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProbeContext")
    }
}

/// Runs one probe of `target`; never takes longer than the timeout (an external command is
/// killed then).
pub async fn run(spec: &CheckSpec, target: &Target, ctx: &ProbeContext) -> Outcome {
    run_until(spec, target, ctx, Instant::now() + spec.timing.timeout).await
}

/// [`run`] with the deadline given: the scheduler reads the start once, for the deadline and
/// for the probe's latency.
pub async fn run_until(
    spec: &CheckSpec,
    target: &Target,
    ctx: &ProbeContext,
    deadline: Instant,
) -> Outcome {
    let timeout = spec.timing.timeout;
    let addr = target.probe_addr(spec);
    let route = target.route(spec);
    let max = spec.max_bytes;
    let result = match &spec.kind {
        Kind::On => return Outcome::up("check is on"),
        Kind::Off => return Outcome::down(DownCause::Off, "check is off"),
        Kind::External(external) => {
            return Box::pin(external::run(external, target, timeout)).await;
        }
        // Silence is the healthy answer here, so the probe owns its deadline.
        Kind::Udp(Exchange { expect: None, send }) => {
            return Box::pin(datagram::udp_silence(route, send.as_deref(), deadline)).await;
        }
        kind => {
            let smtp_routes: Vec<Route>;
            // Each protocol's state machine boxed on its own: a probe in flight holds only
            // its own (a connect check's is tens of bytes, a TLS one's kilobytes), and with a
            // thousand probes waiting on slow servers that is most of directord's memory.
            let probe: Pin<Box<dyn Future<Output = ProbeResult> + Send + '_>> = match kind {
                Kind::Connect => Box::pin(stream::connect(route, ctx)),
                Kind::Ping => Box::pin(datagram::ping(addr.ip())),
                Kind::Http(http) => Box::pin(stream::http(http, route, max, ctx)),
                Kind::Tcp(exchange) => Box::pin(stream::tcp(exchange, route, max, ctx)),
                Kind::Udp(exchange) => Box::pin(datagram::udp_expect(exchange, route, max)),
                Kind::Dns(dns) => Box::pin(datagram::dns(dns, route)),
                Kind::Smtp(smtp) => {
                    smtp_routes = if smtp.hosts.is_empty() {
                        vec![route]
                    } else {
                        smtp.hosts
                            .iter()
                            .map(|h| target.endpoint_route(h))
                            .collect()
                    };
                    Box::pin(stream::smtp(smtp, &smtp_routes, max, ctx))
                }
                Kind::Pop(d) => Box::pin(stream::pop(d, route, max, ctx)),
                Kind::Imap(d) => Box::pin(stream::imap(d, route, max, ctx)),
                Kind::Ftp(d) => Box::pin(stream::ftp(d, route, max, ctx)),
                Kind::Ldap(ldap) => Box::pin(stream::ldap(ldap, route, max, ctx)),
                Kind::Mysql(db) => Box::pin(stream::mysql(db, route, max, ctx)),
                Kind::Pgsql(db) => Box::pin(stream::pgsql(db, route, max, ctx)),
                Kind::Sip(sip) => Box::pin(datagram::sip(sip, route, max)),
                Kind::Radius(radius) => Box::pin(datagram::radius(radius, route)),
                Kind::On | Kind::Off | Kind::External(_) => unreachable!("handled above"),
            };
            match tokio::time::timeout_at(deadline, probe).await {
                Ok(result) => result,
                Err(_) => Err(ProbeError::Down {
                    cause: DownCause::Timeout,
                    detail: format!("timeout after {}", human(timeout)),
                }),
            }
        }
    };
    outcome(result)
}

fn outcome(result: ProbeResult) -> Outcome {
    match result {
        Ok(detail) => Outcome::up(detail),
        Err(ProbeError::Down { cause, detail }) => Outcome::down(cause, detail),
        Err(limit @ ProbeError::ReadLimit(_)) => {
            Outcome::down(DownCause::ReadLimit, limit.to_string())
        }
        Err(ProbeError::Unknown { cause, detail }) => Outcome::unknown(cause, detail),
    }
}

/// `ProbeError::Down` of a [`DownCause`] and a `format!`ted detail: `down!(Status, "...")`.
macro_rules! down {
    ($cause:ident, $($arg:tt)*) => {
        $crate::check::probe::ProbeError::Down {
            cause: $crate::check::health::DownCause::$cause,
            detail: format!($($arg)*),
        }
    };
}
pub(crate) use down;

/// Why a probe did not find the server up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The server failed the check.
    #[error("{detail}")]
    Down { cause: DownCause, detail: String },
    /// The server sent `max_bytes` without the answer being complete: down, unless the
    /// probe says more of what it had read.
    #[error("read limit of {0} bytes reached")]
    ReadLimit(usize),
    /// The director could not make the probe (see [`Exhausted`]).
    #[error("{detail}")]
    Unknown { cause: Exhausted, detail: String },
}

/// An answer the probe could not make sense of (the `?` of a parse that says why).
impl From<String> for ProbeError {
    fn from(detail: String) -> Self {
        ProbeError::Down {
            cause: DownCause::Protocol,
            detail,
        }
    }
}

/// An HTTP answer the probe could not read: the connection closed early, or it was not HTTP.
impl From<ResponseError> for ProbeError {
    fn from(e: ResponseError) -> Self {
        let cause = match e {
            ResponseError::NoResponse | ResponseError::ClosedInHead => DownCause::Closed,
            ResponseError::NotHttp(_) | ResponseError::BodyUnreadable(_) => DownCause::Protocol,
        };
        ProbeError::Down {
            cause,
            detail: e.to_string(),
        }
    }
}

impl From<&str> for ProbeError {
    fn from(detail: &str) -> Self {
        detail.to_owned().into()
    }
}

/// Up with a reason, or why not.
pub(crate) type ProbeResult = Result<String, ProbeError>;

/// An I/O error as a probe result: the director's own shortage is [`ProbeError::Unknown`],
/// anything else the server's failure with a short reason.
pub(crate) fn io_failure(what: &str, e: &io::Error) -> ProbeError {
    match Exhausted::of(e) {
        Some(cause) => ProbeError::Unknown {
            cause,
            detail: format!("{what}: {e}"),
        },
        None => ProbeError::Down {
            cause: io_cause(e),
            detail: io_reason(what, e),
        },
    }
}

/// The label of an I/O error the server caused.
fn io_cause(e: &io::Error) -> DownCause {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => DownCause::Refused,
        io::ErrorKind::ConnectionReset => DownCause::Reset,
        io::ErrorKind::UnexpectedEof => DownCause::Closed,
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            DownCause::Unreachable
        }
        _ => DownCause::Io,
    }
}

/// A stream with a read budget: every probe reads through this so a server streaming
/// forever costs at most `max` bytes.
pub(crate) struct Bounded<S> {
    stream: S,
    pub buf: Vec<u8>,
    pub max: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Bounded<S> {
    pub fn new(stream: S, max: usize) -> Self {
        Bounded {
            stream,
            buf: Vec::new(),
            max,
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), ProbeError> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| io_failure("write", &e))?;
        self.stream
            .flush()
            .await
            .map_err(|e| io_failure("write", &e))
    }

    /// Reads what is available; false at end of stream.
    pub async fn fill(&mut self) -> Result<bool, ProbeError> {
        if self.buf.len() >= self.max {
            return Err(ProbeError::ReadLimit(self.max));
        }
        // Small while nothing has come: the buffer lives while the probe waits for the
        // server, and most answers (a status line, a greeting) fit.
        let size = if self.buf.is_empty() { 1024 } else { 4096 };
        let mut chunk = vec![0; (self.max - self.buf.len()).min(size)];
        let n = self
            .stream
            .read(&mut chunk)
            .await
            .map_err(|e| io_failure("read", &e))?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// The next CRLF- or LF-terminated line, consumed from the buffer, without its ending.
    pub async fn line(&mut self) -> Result<String, ProbeError> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line);
                return Ok(text.trim_end_matches(['\r', '\n']).to_owned());
            }
            if !self.fill().await? {
                return Err(down!(Closed, "connection closed mid-line"));
            }
        }
    }

    /// Exactly `n` bytes, consumed from the buffer.
    pub async fn take(&mut self, n: usize) -> Result<Vec<u8>, ProbeError> {
        while self.buf.len() < n {
            if !self.fill().await? {
                return Err(down!(Closed, "connection closed mid-message"));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The read budget is a cause of its own, not a text to recognise: a probe that wants to
    // say more of what it read (the HTTP body check) matches the variant.
    #[tokio::test]
    async fn the_read_budget_is_a_typed_cause() {
        let (client, mut server) = tokio::io::duplex(64);
        server.write_all(b"0123456789").await.unwrap();
        let mut conn = Bounded::new(client, 8);
        while conn.fill().await.unwrap() && conn.buf.len() < 8 {}
        let limit = conn.fill().await.unwrap_err();
        assert_eq!(limit, ProbeError::ReadLimit(8));
        let down = outcome(Err(limit));
        assert!(down.is_down());
        assert_eq!(down.detail, "read limit of 8 bytes reached");
    }
}
