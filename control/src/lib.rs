//! The control socket every daemon serves at `<socket_dir>/<daemon>.sock` (mode 0600).
//!
//! Wire: one JSON value per line. A client writes a request line and reads one reply line,
//! `{"ok": <response>}` or `{"error": "<why>"}`, and may send further requests on the same
//! connection. The line `"subscribe"` turns the connection into an event stream: the daemon
//! then writes one JSON event per line until either side closes.
//!
//! The server hands each request to the daemon's own loop over a channel with a oneshot for the
//! reply, so daemon state is never shared across tasks.

pub mod daemon;
pub mod directord;
pub mod feedbackd;
pub mod limits;
pub mod metrics;
pub mod syncd;
pub mod vrrpd;

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Longest request line accepted; control requests are small.
const MAX_LINE: usize = 64 * 1024;
const SUBSCRIBE: &str = "\"subscribe\"";

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
}

/// A request from a client, to be answered with [`Incoming::reply`].
#[derive(Debug)]
pub struct Incoming<Req, Resp> {
    pub request: Req,
    reply: oneshot::Sender<Result<Resp, String>>,
}

impl<Req, Resp> Incoming<Req, Resp> {
    pub fn reply(self, response: Result<Resp, String>) {
        // The client may have gone; nothing to do then.
        let _ = self.reply.send(response);
    }
}

/// Binds the socket (replacing a stale one), owner-only.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves clients until `shutdown`: requests go to `requests`, subscribers get `events`.
pub async fn serve<Req, Resp, Ev>(
    listener: UnixListener,
    requests: mpsc::Sender<Incoming<Req, Resp>>,
    events: broadcast::Sender<Ev>,
    shutdown: CancellationToken,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + Sync + 'static,
    Ev: Serialize + Clone + Send + Sync + 'static,
{
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warn!("control socket accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let requests = requests.clone();
        let events = events.subscribe();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = session(stream, requests, events, shutdown).await {
                debug!("control client: {e}");
            }
        });
    }
}

async fn session<Req, Resp, Ev>(
    stream: UnixStream,
    requests: mpsc::Sender<Incoming<Req, Resp>>,
    mut events: broadcast::Receiver<Ev>,
    shutdown: CancellationToken,
) -> io::Result<()>
where
    Req: DeserializeOwned,
    Resp: Serialize,
    Ev: Serialize + Clone,
{
    let (read, mut write) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(read).lines();
    loop {
        let line = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            line = lines.next_line() => match line? {
                Some(line) => line,
                None => return Ok(()),
            },
        };
        if line.len() > MAX_LINE {
            write_line(
                &mut write,
                &Reply::<Resp>::Error("request too long".to_owned()),
            )
            .await?;
            return Ok(());
        }
        if line.trim() == SUBSCRIBE {
            return stream_events(&mut write, &mut events, &shutdown).await;
        }
        let reply = match serde_json::from_str::<Req>(&line) {
            Err(e) => Reply::Error(format!("bad request: {e}")),
            Ok(request) => {
                let (tx, rx) = oneshot::channel();
                if requests
                    .send(Incoming { request, reply: tx })
                    .await
                    .is_err()
                {
                    return Ok(());
                }
                match rx.await {
                    Ok(Ok(response)) => Reply::Ok(response),
                    Ok(Err(why)) => Reply::Error(why),
                    Err(_) => Reply::Error("the daemon is shutting down".to_owned()),
                }
            }
        };
        write_line(&mut write, &reply).await?;
    }
}

async fn stream_events<Ev: Serialize + Clone>(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    events: &mut broadcast::Receiver<Ev>,
    shutdown: &CancellationToken,
) -> io::Result<()> {
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            event = events.recv() => event,
        };
        match event {
            Ok(event) => write_line(write, &event).await?,
            // A slow subscriber misses events rather than stalling the daemon; it is told so.
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                write_line(write, &serde_json::json!({ "lagged": missed })).await?;
            }
            Err(broadcast::error::RecvError::Closed) => return Ok(()),
        }
    }
}

#[derive(Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Reply<T> {
    Ok(T),
    Error(String),
}

async fn write_line<T: Serialize>(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    value: &T,
) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await
}

/// One request and its reply, blocking: for lvsadm and scripts.
pub fn call<Req: Serialize, Resp: DeserializeOwned>(
    path: &Path,
    request: &Req,
    timeout: Duration,
) -> Result<Resp, ControlError> {
    let io_error = |source| ControlError::Io {
        path: path.to_owned(),
        source,
    };
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(io_error)?;
    stream.set_read_timeout(Some(timeout)).map_err(io_error)?;
    stream.set_write_timeout(Some(timeout)).map_err(io_error)?;
    let mut line = serde_json::to_vec(request).map_err(|e| io_error(io::Error::other(e)))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(io_error)?;
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .map_err(io_error)?;
    decode_reply(path, &reply)
}

/// One request and its reply, from async code (a daemon talking to another).
pub async fn call_async<Req: Serialize, Resp: DeserializeOwned>(
    path: &Path,
    request: &Req,
) -> Result<Resp, ControlError> {
    let io_error = |source| ControlError::Io {
        path: path.to_owned(),
        source,
    };
    let stream = UnixStream::connect(path).await.map_err(io_error)?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(request).map_err(|e| io_error(io::Error::other(e)))?;
    line.push(b'\n');
    write.write_all(&line).await.map_err(io_error)?;
    let mut reply = String::new();
    tokio::io::BufReader::new(read)
        .read_line(&mut reply)
        .await
        .map_err(io_error)?;
    decode_reply(path, &reply)
}

fn decode_reply<Resp: DeserializeOwned>(path: &Path, reply: &str) -> Result<Resp, ControlError> {
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

/// Subscribes to a daemon's events; each item is one event, or the reason the stream ended.
pub async fn subscribe<Ev: DeserializeOwned + Send + 'static>(
    path: &Path,
) -> Result<mpsc::Receiver<Result<Ev, ControlError>>, ControlError> {
    let io_error = |source| ControlError::Io {
        path: path.to_owned(),
        source,
    };
    let stream = UnixStream::connect(path).await.map_err(io_error)?;
    let (read, mut write) = stream.into_split();
    write
        .write_all(format!("{SUBSCRIBE}\n").as_bytes())
        .await
        .map_err(io_error)?;
    let (tx, rx) = mpsc::channel(64);
    let path = path.to_owned();
    tokio::spawn(async move {
        let _keep_open = write;
        let mut lines = tokio::io::BufReader::new(read).lines();
        loop {
            let item = match lines.next_line().await {
                Ok(Some(line)) => {
                    serde_json::from_str::<Ev>(&line).map_err(|e| ControlError::Protocol {
                        path: path.clone(),
                        reason: e.to_string(),
                    })
                }
                Ok(None) => Err(ControlError::Protocol {
                    path: path.clone(),
                    reason: "event stream closed".to_owned(),
                }),
                Err(source) => Err(ControlError::Io {
                    path: path.clone(),
                    source,
                }),
            };
            let last = item.is_err();
            if tx.send(item).await.is_err() || last {
                return;
            }
        }
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(tag = "cmd", rename_all = "snake_case")]
    enum Req {
        Echo { text: String },
        Fail,
    }

    #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
    struct Ev {
        n: u32,
    }

    #[tokio::test]
    async fn requests_replies_errors_and_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = socket_path(dir.path(), "testd");
        let listener = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (tx, mut rx) = mpsc::channel::<Incoming<Req, String>>(8);
        let (events, _) = broadcast::channel::<Ev>(8);
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(listener, tx, events.clone(), shutdown.clone()));
        tokio::spawn(async move {
            while let Some(incoming) = rx.recv().await {
                let answer = match &incoming.request {
                    Req::Echo { text } => Ok(text.to_uppercase()),
                    Req::Fail => Err("refused on purpose".to_owned()),
                };
                incoming.reply(answer);
            }
        });

        let reply: String = call_async(&path, &Req::Echo { text: "hi".into() })
            .await
            .unwrap();
        assert_eq!(reply, "HI");
        let refused = call_async::<_, String>(&path, &Req::Fail)
            .await
            .unwrap_err();
        assert_eq!(refused.to_string(), "refused on purpose");

        let mut stream = subscribe::<Ev>(&path).await.unwrap();
        // The subscription is registered once the server has read the line; retry until seen.
        let mut n = 0;
        let got = loop {
            n += 1;
            let _ = events.send(Ev { n });
            if let Ok(Some(item)) =
                tokio::time::timeout(Duration::from_millis(50), stream.recv()).await
            {
                break item.unwrap();
            }
        };
        assert!(got.n >= 1);

        let blocking_path = path.clone();
        let echoed = tokio::task::spawn_blocking(move || {
            call::<_, String>(
                &blocking_path,
                &Req::Echo {
                    text: "sync".into(),
                },
                Duration::from_secs(2),
            )
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(echoed, "SYNC");
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_malformed_request_gets_an_error_not_a_hangup() {
        let dir = tempfile::tempdir().unwrap();
        let path = socket_path(dir.path(), "testd");
        let listener = bind(&path).unwrap();
        let (tx, _rx) = mpsc::channel::<Incoming<Req, String>>(8);
        let (events, _) = broadcast::channel::<Ev>(8);
        tokio::spawn(serve(listener, tx, events, CancellationToken::new()));
        let refused = call_async::<_, String>(&path, &serde_json::json!({"cmd": "nope"}))
            .await
            .unwrap_err();
        assert!(refused.to_string().starts_with("bad request"), "{refused}");
    }
}
