//! What the daemons, their sans-IO cores and lvsadm share about the control sockets, with no
//! runtime: the messages of each daemon's socket (requests, responses, status, counters,
//! events), the reply's wire shape, and the blocking client lvsadm and scripts call with.
//! The async server and client, the daemon harness and metrics are in `lvs-control`.
//!
//! Wire: one JSON value per line. A client writes a request line and reads one reply line,
//! `{"ok": <response>}` or `{"error": "<why>"}`, and may send further requests on the same
//! connection. The line `"subscribe"` turns the connection into an event stream: the daemon
//! then writes one JSON event per line until either side closes.

pub mod directord;
pub mod feedbackd;
pub mod syncd;
pub mod vrrpd;

use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The request line that turns a connection into an event stream.
pub const SUBSCRIBE: &str = "\"subscribe\"";

/// Whether a request only reads: those are open to the socket's group, the rest to root.
pub trait Access {
    fn read_only(&self) -> bool;
}

/// The daemons with an event stream on their control socket: what `lvsadm watch` and
/// directord's status page follow.
pub const EVENT_DAEMONS: [&str; 4] = ["vrrpd", "directord", "syncd", "feedbackd"];

/// `<socket_dir>/<daemon>.sock`
pub fn socket_path(socket_dir: &Path, daemon: &str) -> PathBuf {
    socket_dir.join(format!("{daemon}.sock"))
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: malformed reply: {reason}")]
    Protocol { path: PathBuf, reason: String },
    #[error("{0}")]
    Refused(String),
    #[error("{path}: no answer within {after:?}")]
    Timeout { path: PathBuf, after: Duration },
}

impl ControlError {
    /// A metric label: timeout, io, protocol or refused.
    pub fn cause(&self) -> &'static str {
        match self {
            ControlError::Io { .. } => "io",
            ControlError::Protocol { .. } => "protocol",
            ControlError::Refused(_) => "refused",
            ControlError::Timeout { .. } => "timeout",
        }
    }
}

/// A reply line: `{"ok": <response>}` or `{"error": "<why>"}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reply<T> {
    Ok(T),
    Error(String),
}

/// One request and its reply, blocking: for lvsadm and scripts. The whole exchange is bounded
/// by `timeout`, however the daemon trickles its reply.
pub fn call<Req: Serialize, Resp: DeserializeOwned>(
    path: &Path,
    request: &Req,
    timeout: Duration,
) -> Result<Resp, ControlError> {
    let deadline = std::time::Instant::now() + timeout;
    let io_error = |source: io::Error| match source.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ControlError::Timeout {
            path: path.to_owned(),
            after: timeout,
        },
        _ => ControlError::Io {
            path: path.to_owned(),
            source,
        },
    };
    let left = || {
        deadline
            .checked_duration_since(std::time::Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))
    };
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(io_error)?;
    stream
        .set_write_timeout(Some(left().map_err(io_error)?))
        .map_err(io_error)?;
    let mut line = serde_json::to_vec(request).map_err(|e| io_error(io::Error::other(e)))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(io_error)?;
    let mut reader = BufReader::new(stream);
    let mut reply = Vec::new();
    loop {
        reader
            .get_ref()
            .set_read_timeout(Some(left().map_err(io_error)?))
            .map_err(io_error)?;
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error(e)),
        };
        if buf.is_empty() {
            break;
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(end) => {
                reply.extend_from_slice(&buf[..=end]);
                break;
            }
            None => {
                let n = buf.len();
                reply.extend_from_slice(buf);
                reader.consume(n);
            }
        }
    }
    decode_reply(path, &String::from_utf8_lossy(&reply))
}

/// A reply line's response, or why there is none.
pub fn decode_reply<Resp: DeserializeOwned>(
    path: &Path,
    reply: &str,
) -> Result<Resp, ControlError> {
    let protocol = |reason: String| ControlError::Protocol {
        path: path.to_owned(),
        reason,
    };
    if reply.is_empty() {
        return Err(protocol("the daemon closed the connection".to_owned()));
    }
    match serde_json::from_str::<Reply<Resp>>(reply) {
        Ok(Reply::Ok(response)) => Ok(response),
        Ok(Reply::Error(why)) => Err(ControlError::Refused(why)),
        Err(e) => Err(protocol(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A daemon that answers one request with `reply` (nothing at all when `None`), on a plain
    /// thread: the blocking client needs no runtime on either side.
    fn answering(dir: &Path, reply: Option<&'static str>) -> PathBuf {
        let path = socket_path(dir, "testd");
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut request = String::new();
            BufReader::new(&stream).read_line(&mut request).unwrap();
            assert_eq!(request, "{\"cmd\":\"status\"}\n");
            if let Some(reply) = reply {
                (&stream).write_all(reply.as_bytes()).unwrap();
            }
        });
        path
    }

    fn status(path: &Path) -> Result<String, ControlError> {
        let request = serde_json::json!({"cmd": "status"});
        call(path, &request, Duration::from_secs(2))
    }

    #[test]
    fn the_blocking_call_reads_replies_refusals_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let answered = answering(dir.path(), Some("{\"ok\":\"fine\"}\n"));
        assert_eq!(status(&answered).unwrap(), "fine");

        let dir = tempfile::tempdir().unwrap();
        let refused = status(&answering(dir.path(), Some("{\"error\":\"no\"}\n"))).unwrap_err();
        assert_eq!(
            (refused.cause(), refused.to_string()),
            ("refused", "no".into())
        );

        let dir = tempfile::tempdir().unwrap();
        let garbage = status(&answering(dir.path(), Some("{\"maybe\":1}\n"))).unwrap_err();
        assert_eq!(garbage.cause(), "protocol", "{garbage}");

        let dir = tempfile::tempdir().unwrap();
        let closed = status(&answering(dir.path(), None)).unwrap_err();
        assert!(
            closed.to_string().contains("closed the connection"),
            "{closed}"
        );

        let dir = tempfile::tempdir().unwrap();
        let absent = status(&socket_path(dir.path(), "nobody")).unwrap_err();
        assert_eq!(absent.cause(), "io", "{absent}");
    }
}
