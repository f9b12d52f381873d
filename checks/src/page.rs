//! One page fetched as an http check fetches it, blocking, for `lvsadm genhash`: the same
//! request, TLS settings and [`Response`] reader as directord's probe, so the digest it
//! prints is the one a check's `digest` compares.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use rustls::{ClientConnection, StreamOwned};

use crate::reason::{human, io_reason};
use crate::spec::{Http, Url};
use crate::tls::{Configs, InvalidSni, server_name, system_roots};
use crate::wire::http::{self, Answer, Response, ResponseError};

/// The request a check sends for `url`: the page's Host, else the check's, else the address.
pub fn request(check: &Http, url: &Url, addr: SocketAddr) -> Vec<u8> {
    let host = url
        .host
        .clone()
        .or_else(|| check.host.clone())
        .unwrap_or_else(|| http::host_header(addr, check.tls.is_some()));
    http::request(&check.method, &url.path, &host)
}

/// One page as an http check fetches it, read whole.
#[derive(Debug, Clone)]
pub struct Page {
    pub status: u16,
    pub head: String,
    /// The body's data (de-chunked), up to the `max` asked for.
    pub body: Vec<u8>,
    /// MD5 of the whole body's data, as a check's `digest` compares it.
    pub digest: [u8; 16],
}

/// Why [`fetch`] has no page; the `Display` is the reason a check of it would give.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("timeout after {0}")]
    Timeout(String),
    /// An I/O error, as [`io_reason`] states it.
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Sni(#[from] InvalidSni),
    #[error("TLS handshake failed: {0}")]
    Tls(rustls::Error),
    #[error("read limit of {0} bytes reached")]
    ReadLimit(usize),
    #[error(transparent)]
    Response(#[from] ResponseError),
}

/// Fetches the first page of `check` from `to` within `timeout`, keeping at most `max`
/// bytes of the body (the digest covers all of it).
pub fn fetch(
    check: &Http,
    to: SocketAddr,
    timeout: Duration,
    max: usize,
) -> Result<Page, PageError> {
    let deadline = Instant::now() + timeout;
    let failed = |what: &str, e: io::Error| failure(what, &e, timeout);
    let tcp = TcpStream::connect_timeout(&to, timeout).map_err(|e| failed("connect", e))?;
    let request = request(check, &check.urls[0], to);
    let mut conn = Deadline { tcp, deadline };
    let answer = match &check.tls {
        None => exchange(&mut conn, &request, max, timeout)?,
        Some(tls) => {
            // The handshake writes several records in a row; Nagle would hold the later ones
            // for the ACK of the first.
            let _ = conn.tcp.set_nodelay(true);
            let configs = Configs::new(system_roots());
            let client = ClientConnection::new(configs.for_check(tls), server_name(tls, to.ip())?)
                .map_err(PageError::Tls)?;
            let mut stream = StreamOwned::new(client, conn);
            while stream.conn.is_handshaking() {
                stream
                    .conn
                    .complete_io(&mut stream.sock)
                    .map_err(|e| handshake_failure(&e, timeout))?;
            }
            exchange(&mut stream, &request, max, timeout)?
        }
    };
    Ok(Page {
        status: answer.status,
        head: answer.head,
        body: answer.body.kept().to_vec(),
        digest: answer.body.digest(),
    })
}

/// Sends the request and reads the whole answer, at most `max` bytes of head at a time as
/// the probe's read budget allows.
fn exchange(
    stream: &mut (impl Read + Write),
    request: &[u8],
    max: usize,
    timeout: Duration,
) -> Result<Answer, PageError> {
    stream
        .write_all(request)
        .and_then(|()| stream.flush())
        .map_err(|e| failure("write", &e, timeout))?;
    let mut response = Response::new(request, max);
    let mut buf = Vec::new();
    while response.wants_more(true, |_| false) {
        if buf.len() >= max {
            return Err(PageError::ReadLimit(max));
        }
        let mut chunk = vec![0; (max - buf.len()).min(4096)];
        let n = stream
            .read(&mut chunk)
            .map_err(|e| failure("read", &e, timeout))?;
        buf.extend_from_slice(&chunk[..n]);
        response.take(&mut buf, n == 0)?;
    }
    Ok(response.finish()?)
}

/// A socket timeout is the fetch's deadline passing; anything else the server's failure.
fn failure(what: &str, e: &io::Error, timeout: Duration) -> PageError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => PageError::Timeout(human(timeout)),
        _ => PageError::Io(io_reason(what, e)),
    }
}

/// rustls's own refusal (a certificate, a protocol version) as the probe states it.
fn handshake_failure(e: &io::Error, timeout: Duration) -> PageError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => PageError::Tls(tls.clone()),
        None => failure("TLS handshake", e, timeout),
    }
}

/// A TCP stream whose every read and write ends by one deadline, as the probe's timeout
/// bounds the whole fetch.
struct Deadline {
    tcp: TcpStream,
    deadline: Instant,
}

impl Deadline {
    fn arm(&self) -> io::Result<()> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.tcp.set_read_timeout(Some(left))?;
        self.tcp.set_write_timeout(Some(left))
    }
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm()?;
        self.tcp.read(buf)
    }
}

impl Write for Deadline {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm()?;
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}
