//! The control socket every daemon serves at `<socket_dir>/<daemon>.sock`: mode 0600, or 0660
//! with `control.group`, whose members may read (status, events) but not change anything.
//!
//! Wire: see lvs-proto, which holds the messages and the blocking client; this crate is the
//! async side (server, client, subscriptions), the daemon harness and metrics.
//!
//! The server hands each request to the daemon's own loop over a channel with a oneshot for the
//! reply, so daemon state is never shared across tasks.

pub mod daemon;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod ratelimit;
pub mod state;

// The daemons' command lines live in lvs-config, for the manual pages without a runtime.
pub use lvs_config::cli;

// The messages and the blocking client live in lvs-proto, which the sans-IO cores and lvsadm
// link without a runtime; they stay reachable here for the daemons.
pub use lvs_proto::{
    Access, ControlError, EVENT_DAEMONS, Reply, SUBSCRIBE, call, directord, feedbackd, socket_path,
    syncd, vrrpd,
};

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::stat::{Mode, umask};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::limits::{AcceptBackoff, RateLimit};

/// Longest request line accepted; control requests are small.
const MAX_LINE: usize = 64 * 1024;

/// What one client may hold. A request line is bounded while it is read, not after; a client
/// that sends no request for `idle_timeout` is dropped, one that reads no reply or events for
/// `write_timeout` too; beyond `max_connections` a client is told so and closed.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub max_line: usize,
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 64,
            max_line: MAX_LINE,
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// A request from a client, to be answered with [`Incoming::reply`].
#[derive(Debug)]
pub struct Incoming<Req, Resp> {
    pub request: Req,
    reply: oneshot::Sender<Reply<Resp>>,
}

impl<Req, Resp> Incoming<Req, Resp> {
    /// The response, or why the request was refused (the error's text goes to the client).
    pub fn reply<E: std::fmt::Display>(self, response: Result<Resp, E>) {
        let reply = match response {
            Ok(response) => Reply::Ok(response),
            Err(why) => Reply::Error(why.to_string()),
        };
        // The client may have gone; nothing to do then.
        let _ = self.reply.send(reply);
    }

    /// [`Incoming::reply`] for a request that cannot be refused.
    pub fn reply_ok(self, response: Resp) {
        let _ = self.reply.send(Reply::Ok(response));
    }
}

/// Binds the socket (replacing a stale one), owner-only.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    bind_for(path, None)
}

/// Binds the socket (replacing a stale one): 0600, or 0660 owned by `group`. The file is
/// created 0600 (umask), so it is never open to more than its owner before its group is set.
pub fn bind_for(path: &Path, group: Option<u32>) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    // The process's file-creation mask, for the bind only.
    let previous = umask(Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    umask(previous);
    let listener = bound?;
    if let Some(gid) = group {
        std::os::unix::fs::chown(path, None, Some(gid))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    } else {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(listener)
}

/// Serves clients until `shutdown`: requests go to `requests`, subscribers get `events`.
pub async fn serve<Req, Resp, Ev>(
    listener: UnixListener,
    requests: mpsc::Sender<Incoming<Req, Resp>>,
    events: broadcast::Sender<Ev>,
    shutdown: CancellationToken,
) where
    Req: DeserializeOwned + Access + Send + 'static,
    Resp: Serialize + Send + Sync + 'static,
    Ev: Serialize + Clone + Send + Sync + 'static,
{
    serve_with(listener, requests, events, shutdown, Limits::default()).await;
}

/// [`serve`] with other limits.
pub async fn serve_with<Req, Resp, Ev>(
    listener: UnixListener,
    requests: mpsc::Sender<Incoming<Req, Resp>>,
    events: broadcast::Sender<Ev>,
    shutdown: CancellationToken,
    limits: Limits,
) where
    Req: DeserializeOwned + Access + Send + 'static,
    Resp: Serialize + Send + Sync + 'static,
    Ev: Serialize + Clone + Send + Sync + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut backoff = AcceptBackoff::default();
    let mut refusals = RateLimit::new(Duration::from_secs(10));
    let own_uid = nix::unistd::geteuid().as_raw();
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    backoff.succeeded();
                    stream
                }
                Err(e) => {
                    backoff.pause_after("control socket", &e).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // Told, not left hanging; a fresh socket's buffer takes the line at once, and a
            // client that does not read loses it.
            let mut line = serde_json::to_vec(&Reply::<()>::Error(format!(
                "too many control connections (at most {}); try again",
                limits.max_connections
            )))
            .unwrap_or_default();
            line.push(b'\n');
            let _ = stream.try_write(&line);
            if let Some(held) = refusals.allow(std::time::Instant::now()) {
                warn!(
                    "control socket: {} connections open, refusing more ({held} refused since the last report)",
                    limits.max_connections
                );
            }
            continue;
        };
        // Changes are for root (and the daemon's own user); the socket's group only reads.
        let may_write = stream
            .peer_cred()
            .is_ok_and(|cred| cred.uid() == 0 || cred.uid() == own_uid);
        let requests = requests.clone();
        let events = events.subscribe();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let client = Client {
                limits,
                may_write,
                shutdown,
            };
            if let Err(e) = client.session(stream, requests, events).await {
                debug!("control client: {e}");
            }
        });
    }
}

struct Client {
    limits: Limits,
    may_write: bool,
    shutdown: CancellationToken,
}

impl Client {
    async fn session<Req, Resp, Ev>(
        &self,
        stream: UnixStream,
        requests: mpsc::Sender<Incoming<Req, Resp>>,
        mut events: broadcast::Receiver<Ev>,
    ) -> io::Result<()>
    where
        Req: DeserializeOwned + Access,
        Resp: Serialize,
        Ev: Serialize + Clone,
    {
        let (read, mut write) = stream.into_split();
        let mut reader = tokio::io::BufReader::new(read);
        let mut line = Vec::new();
        loop {
            line.clear();
            // At most one byte past the limit is read: a longer line is refused with the
            // daemon holding no more than the limit, whatever the client sends.
            let mut limited = (&mut reader).take(self.limits.max_line as u64 + 1);
            let bounded = limited.read_until(b'\n', &mut line);
            let read = tokio::select! {
                () = self.shutdown.cancelled() => return Ok(()),
                read = tokio::time::timeout(self.limits.idle_timeout, bounded) => match read {
                    Err(_) => {
                        debug!("control client idle for {:?}, dropped", self.limits.idle_timeout);
                        return Ok(());
                    }
                    Ok(read) => read?,
                },
            };
            if read == 0 {
                return Ok(());
            }
            if line.last() != Some(&b'\n') && line.len() > self.limits.max_line {
                let too_long = format!(
                    "request too long (more than {} bytes)",
                    self.limits.max_line
                );
                self.write_line(&mut write, &Reply::<Resp>::Error(too_long))
                    .await?;
                return Ok(());
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);
            if text.trim() == SUBSCRIBE {
                return self.stream_events(&mut write, &mut events).await;
            }
            let reply = match serde_json::from_str::<Req>(text) {
                Err(e) => Reply::Error(format!("bad request: {e}")),
                Ok(request) if !self.may_write && !request.read_only() => Reply::Error(
                    "permission denied: this connection may read (status, events); changes are \
                     for root"
                        .to_owned(),
                ),
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
                        Ok(reply) => reply,
                        Err(_) => Reply::Error("the daemon is shutting down".to_owned()),
                    }
                }
            };
            self.write_line(&mut write, &reply).await?;
        }
    }

    async fn write_line<T: Serialize>(
        &self,
        write: &mut tokio::net::unix::OwnedWriteHalf,
        value: &T,
    ) -> io::Result<()> {
        tokio::time::timeout(self.limits.write_timeout, write_line(write, value))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client not reading"))?
    }

    async fn stream_events<Ev: Serialize + Clone>(
        &self,
        write: &mut tokio::net::unix::OwnedWriteHalf,
        events: &mut broadcast::Receiver<Ev>,
    ) -> io::Result<()> {
        loop {
            let event = tokio::select! {
                () = self.shutdown.cancelled() => return Ok(()),
                event = events.recv() => event,
            };
            match event {
                Ok(event) => self.write_line(write, &event).await?,
                // A slow subscriber misses events rather than stalling the daemon; it is told so.
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    self.write_line(write, &serde_json::json!({ "lagged": missed }))
                        .await?;
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            }
        }
    }
}

async fn write_line<T: Serialize>(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    value: &T,
) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await
}

/// How long [`call_async`] and [`subscribe`] wait for a daemon at most.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// One request and its reply, from async code (a daemon talking to another), bounded by
/// [`CALL_TIMEOUT`].
pub async fn call_async<Req: Serialize, Resp: DeserializeOwned>(
    path: &Path,
    request: &Req,
) -> Result<Resp, ControlError> {
    call_async_within(path, request, CALL_TIMEOUT).await
}

/// [`call_async`] bounded by `timeout`: a daemon that is stopped or wedged costs the caller
/// that long, not its whole loop.
pub async fn call_async_within<Req: Serialize, Resp: DeserializeOwned>(
    path: &Path,
    request: &Req,
    timeout: Duration,
) -> Result<Resp, ControlError> {
    let io_error = |source| ControlError::Io {
        path: path.to_owned(),
        source,
    };
    let exchange = async {
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
        lvs_proto::decode_reply(path, &reply)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ControlError::Timeout {
            path: path.to_owned(),
            after: timeout,
        })?
}

/// Subscribes to a daemon's events; each item is one event, or the reason the stream ended.
pub async fn subscribe<Ev: DeserializeOwned + Send + 'static>(
    path: &Path,
) -> Result<mpsc::Receiver<Result<Ev, ControlError>>, ControlError> {
    let io_error = |source| ControlError::Io {
        path: path.to_owned(),
        source,
    };
    let connecting = async {
        let stream = UnixStream::connect(path).await.map_err(io_error)?;
        let (read, mut write) = stream.into_split();
        write
            .write_all(format!("{SUBSCRIBE}\n").as_bytes())
            .await
            .map_err(io_error)?;
        Ok::<_, ControlError>((read, write))
    };
    let (read, write) = tokio::time::timeout(CALL_TIMEOUT, connecting)
        .await
        .map_err(|_| ControlError::Timeout {
            path: path.to_owned(),
            after: CALL_TIMEOUT,
        })??;
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

/// How soon [`follow`] tries a daemon again whose events it lost.
pub const FOLLOW_RETRY: Duration = Duration::from_secs(1);

/// What [`follow`] reports about one daemon's event stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Followed {
    /// Subscribed (again, after a loss).
    Following,
    /// One event, as the daemon sent it.
    Event(serde_json::Value),
    /// The stream ended or could not be had; said once until it is back.
    Lost(String),
}

/// Follows `daemon`'s events at `path` for as long as `out` is open: subscribes, passes each
/// event on, and when the daemon goes away (stopped, restarted) says so once and subscribes
/// again every [`FOLLOW_RETRY`]. directord's status page follows the daemons with it;
/// `lvsadm watch` does the same with blocking sockets, as lvsadm links no runtime.
pub async fn follow(
    daemon: &'static str,
    path: std::path::PathBuf,
    out: mpsc::Sender<(&'static str, Followed)>,
) {
    let mut lost_reported = false;
    loop {
        match subscribe::<serde_json::Value>(&path).await {
            Ok(mut events) => {
                lost_reported = false;
                if out.send((daemon, Followed::Following)).await.is_err() {
                    return;
                }
                let why = loop {
                    match events.recv().await {
                        Some(Ok(event)) => {
                            if out.send((daemon, Followed::Event(event))).await.is_err() {
                                return;
                            }
                        }
                        Some(Err(e)) => break e.to_string(),
                        None => break "the stream ended".to_owned(),
                    }
                };
                if out.send((daemon, Followed::Lost(why))).await.is_err() {
                    return;
                }
            }
            Err(e) if !lost_reported => {
                lost_reported = true;
                if out
                    .send((daemon, Followed::Lost(e.to_string())))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(_) if out.is_closed() => return,
            Err(_) => {}
        }
        tokio::time::sleep(FOLLOW_RETRY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::path::PathBuf;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(tag = "cmd", rename_all = "snake_case")]
    enum Req {
        Echo { text: String },
        Fail,
    }

    impl Access for Req {
        fn read_only(&self) -> bool {
            matches!(self, Req::Echo { .. })
        }
    }

    #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
    struct Ev {
        n: u32,
    }

    /// A served socket whose daemon echoes; cancel the token to stop it.
    fn echo_server(dir: &Path, limits: Limits) -> (PathBuf, CancellationToken) {
        let path = socket_path(dir, "testd");
        let listener = bind(&path).unwrap();
        let (tx, mut rx) = mpsc::channel::<Incoming<Req, String>>(8);
        let (events, _) = broadcast::channel::<Ev>(8);
        let shutdown = CancellationToken::new();
        tokio::spawn(serve_with(listener, tx, events, shutdown.clone(), limits));
        tokio::spawn(async move {
            while let Some(incoming) = rx.recv().await {
                let answer = match &incoming.request {
                    Req::Echo { text } => Ok(text.to_uppercase()),
                    Req::Fail => Err("refused on purpose".to_owned()),
                };
                incoming.reply(answer);
            }
        });
        (path, shutdown)
    }

    async fn read_reply(stream: &mut UnixStream) -> String {
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply))
            .await
            .expect("the server neither answered nor closed")
            .unwrap_or_default();
        String::from_utf8_lossy(&reply).into_owned()
    }

    // Caught: the line limit was checked once the whole line was buffered, so a client
    // streaming one endless line grew the daemon by as much as it sent (200 MB took a daemon
    // from 11 to 216 MB). Now the server stops reading past the limit: the client cannot even
    // get 32 MB out before it is answered and cut off.
    #[tokio::test]
    async fn a_long_line_is_refused_while_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let (path, shutdown) = echo_server(dir.path(), Limits::default());
        let stream = UnixStream::connect(&path).await.unwrap();
        let (mut read, mut write) = stream.into_split();
        let chunk = vec![b'x'; 1 << 20];
        let mut sent = 0usize;
        let sending = async {
            for _ in 0..32 {
                if write.write_all(&chunk).await.is_err() {
                    break;
                }
                sent += chunk.len();
            }
        };
        tokio::time::timeout(Duration::from_secs(10), sending)
            .await
            .expect("the writer is neither read nor cut off");
        assert!(sent < 8 << 20, "the server read {sent} bytes of one line");
        let mut reply = Vec::new();
        let _ = read.read_to_end(&mut reply).await;
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.contains("request too long"), "{reply}");
        shutdown.cancel();
    }

    // Caught: a client that connected and said nothing was held for ever.
    #[tokio::test]
    async fn an_idle_client_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            idle_timeout: Duration::from_millis(200),
            ..Limits::default()
        };
        let (path, shutdown) = echo_server(dir.path(), limits);
        let mut idle = UnixStream::connect(&path).await.unwrap();
        let started = std::time::Instant::now();
        assert_eq!(read_reply(&mut idle).await, "", "closed without a word");
        assert!(started.elapsed() < Duration::from_secs(2));
        // An active client is not: each request restarts the clock.
        let stream = UnixStream::connect(&path).await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut lines = tokio::io::BufReader::new(read).lines();
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            write
                .write_all(b"{\"cmd\":\"echo\",\"text\":\"hi\"}\n")
                .await
                .unwrap();
            assert_eq!(
                lines.next_line().await.unwrap().as_deref(),
                Some("{\"ok\":\"HI\"}")
            );
        }
        shutdown.cancel();
    }

    // Caught: no connection cap; 2,000 idle clients were all held.
    #[tokio::test]
    async fn connections_beyond_the_cap_are_told_and_closed() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            max_connections: 3,
            ..Limits::default()
        };
        let (path, shutdown) = echo_server(dir.path(), limits);
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(UnixStream::connect(&path).await.unwrap());
        }
        let mut refused = UnixStream::connect(&path).await.unwrap();
        let reply = read_reply(&mut refused).await;
        assert!(reply.contains("too many control connections"), "{reply}");
        drop(held.pop());
        // The slot comes back once the server sees the close.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match call_async::<_, String>(&path, &Req::Echo { text: "ok".into() }).await {
                Ok(reply) => {
                    assert_eq!(reply, "OK");
                    break;
                }
                Err(e) if std::time::Instant::now() < deadline => {
                    assert!(e.to_string().contains("too many"), "{e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("no slot freed: {e}"),
            }
        }
        shutdown.cancel();
    }

    // Caught: calls had no deadline, so a daemon stopped with SIGSTOP (here: one that reads
    // the request and never answers) held its caller for ever.
    #[tokio::test]
    async fn calls_to_a_daemon_that_never_answers_time_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = socket_path(dir.path(), "wedged");
        let listener = bind(&path).unwrap();
        let _held = tokio::spawn(async move {
            let mut clients = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                clients.push(stream);
            }
        });
        let started = std::time::Instant::now();
        let error = call_async_within::<_, String>(
            &path,
            &Req::Echo { text: "x".into() },
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
        assert_eq!(error.cause(), "timeout", "{error}");
        assert!(started.elapsed() < Duration::from_secs(2));
        let blocking = path.clone();
        let (error, took) = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let error = call::<_, String>(
                &blocking,
                &Req::Echo { text: "x".into() },
                Duration::from_millis(200),
            )
            .unwrap_err();
            (error, started.elapsed())
        })
        .await
        .unwrap();
        assert_eq!(error.cause(), "timeout", "{error}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }

    // A daemon whose reload runs its body again serves its socket again: the lock that stops
    // a second process is shared within one (feedbackd's SIGHUP broke on it). A second process
    // is refused: feedbackd/tests/director_signals.rs.
    #[tokio::test]
    async fn the_same_process_serves_again_under_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let control = lvs_config::Control {
            socket_dir: dir.path().to_owned(),
            ..lvs_config::Control::default()
        };
        let (events, _) = broadcast::channel::<Ev>(8);
        let first = daemon::serve_control::<Req, String, _>(&control, "testd", events.clone())
            .expect("the first starts");
        first.shutdown.cancel();
        let again = daemon::serve_control::<Req, String, _>(&control, "testd", events)
            .expect("served again after a reload");
        let mut requests = again.requests;
        tokio::spawn(async move {
            while let Some(incoming) = requests.recv().await {
                incoming.reply_ok("alive".to_owned());
            }
        });
        let reply: String = call_async(&again.path, &Req::Echo { text: "x".into() })
            .await
            .unwrap();
        assert_eq!(reply, "alive");
        assert!(dir.path().join("testd.lock").exists());
        again.shutdown.cancel();
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
