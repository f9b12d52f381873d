//! The agent's TCP side. A dedicated thread sits in a blocking `accept4` and spends three
//! syscalls and one packet on each connection: accept, one send of the cached line, close. Under tokio the same
//! reply also cost an epoll registration and deregistration per socket plus the wake-ups and
//! the `EAGAIN` accept that end each batch, which capped the agent at ~30k replies per
//! CPU-second.
//!
//! The line itself is built once a second by the sampler and published as an `Arc<[u8]>` with a
//! generation number: the thread compares one atomic per connection and only takes the lock when
//! the line changed, so a reply costs no allocation and no contention.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lvs_control::limits::{AcceptBackoff, is_exhaustion};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::AsyncWriteExt;
use tracing::warn;

/// Room for a burst of checkers (a pair of directors and a few haproxy instances each opening
/// one connection per real server); the kernel caps it at `net.core.somaxconn`.
const BACKLOG: i32 = 4096;
/// A reply the kernel did not take at once (never seen for a fresh socket and a line under
/// 100 bytes) is finished by a task that gives up after this long.
const SLOW_REPLY_LIMIT: Duration = Duration::from_secs(2);
/// Replies being finished by tasks at once, at most: each holds a descriptor for up to
/// [`SLOW_REPLY_LIMIT`], so clients that do not read cannot use up the agent's descriptors;
/// beyond it a connection is closed unanswered (counted `slow_overload`).
const MAX_SLOW_REPLIES: usize = 256;

/// The current reply, replaced by the sampler and read by the listener thread.
#[derive(Debug)]
pub struct Published {
    generation: AtomicU64,
    line: Mutex<Arc<[u8]>>,
}

impl Published {
    pub fn new(line: &[u8]) -> Self {
        Published {
            generation: AtomicU64::new(0),
            line: Mutex::new(line.into()),
        }
    }

    /// Publishes a new line when it differs from the current one.
    pub fn set(&self, line: &[u8]) {
        let mut current = self.line.lock().unwrap_or_else(PoisonError::into_inner);
        if **current != *line {
            *current = line.into();
            self.generation.fetch_add(1, Ordering::Release);
        }
    }

    pub fn get(&self) -> Arc<[u8]> {
        Arc::clone(&self.line.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Refreshes `local` when a newer line was published since `seen`.
    fn refresh(&self, seen: &mut u64, local: &mut Arc<[u8]>) {
        let now = self.generation.load(Ordering::Acquire);
        if now != *seen {
            *local = self.get();
            *seen = now;
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabels {
    cause: &'static str,
}

impl CauseLabels {
    pub fn new(cause: &'static str) -> Self {
        CauseLabels { cause }
    }
}

/// What the listener counts: replies sent, and connections that got none, by cause.
#[derive(Debug, Clone, Default)]
pub struct ListenerMetrics {
    pub replies: Counter,
    pub failures: Family<CauseLabels, Counter>,
}

impl ListenerMetrics {
    fn failed(&self, cause: &'static str) {
        self.failures.get_or_create(&CauseLabels::new(cause)).inc();
    }
}

/// The running listener thread; stopping (or dropping) it closes the port before returning, so
/// a reload can bind the same address again at once.
#[derive(Debug)]
pub struct ReplyListener {
    socket: Arc<Socket>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ReplyListener {
    /// Binds and listens (SO_REUSEADDR, as tokio did, so a restart is not refused while old
    /// connections sit in TIME_WAIT), then starts the thread. `runtime` runs the rare slow reply.
    pub fn start(
        addr: SocketAddr,
        published: Arc<Published>,
        metrics: ListenerMetrics,
        runtime: tokio::runtime::Handle,
    ) -> io::Result<Self> {
        let socket = Socket::new(
            Domain::for_address(addr),
            Type::STREAM.cloexec(),
            Some(Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(BACKLOG)?;
        let socket = Arc::new(socket);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("agent-listener".to_owned())
            .spawn({
                let socket = Arc::clone(&socket);
                let stop = Arc::clone(&stop);
                move || serve(&socket, &published, &metrics, &stop, &runtime)
            })?;
        Ok(ReplyListener {
            socket,
            stop,
            thread: Some(thread),
        })
    }

    #[cfg(test)]
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("not an IP socket"))
    }

    /// Stops the thread and closes the port.
    pub fn stop(self) {}
}

impl Drop for ReplyListener {
    fn drop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.stop.store(true, Ordering::Release);
        // On Linux, shutting down the read side of a listening socket wakes a blocked accept
        // with EINVAL; that is the only way to interrupt it without a timeout. The socket
        // itself closes when the last Arc (ours, after the join) drops.
        let _ = self.socket.shutdown(std::net::Shutdown::Read);
        let _ = thread.join();
    }
}

fn serve(
    listener: &Socket,
    published: &Published,
    metrics: &ListenerMetrics,
    stop: &AtomicBool,
    runtime: &tokio::runtime::Handle,
) {
    let mut seen = u64::MAX;
    let mut line: Arc<[u8]> = Arc::from(&b""[..]);
    let mut backoff = AcceptBackoff::default();
    let slow = Arc::new(AtomicUsize::new(0));
    loop {
        // Non-blocking accepted sockets: the one send can never stall this thread.
        let conn = match listener.accept4(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) {
            Ok((conn, _)) => {
                backoff.succeeded();
                conn
            }
            Err(_) if stop.load(Ordering::Acquire) => return,
            Err(e) => {
                accept_failed(&e, &mut backoff, metrics);
                continue;
            }
        };
        published.refresh(&mut seen, &mut line);
        // MSG_MORE holds the line back (corked) so that close(2) attaches its FIN to the same
        // segment: one packet (data + FIN) instead of two, and one wake-up of the reader.
        match conn.send_with_flags(&line, libc::MSG_NOSIGNAL | libc::MSG_MORE) {
            Ok(n) if n == line.len() => {
                metrics.replies.inc();
            }
            Ok(n) => finish_later(conn, Arc::clone(&line), n, metrics, runtime, &slow),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                finish_later(conn, Arc::clone(&line), 0, metrics, runtime, &slow);
            }
            // The peer reset before we spoke; nothing to do but close.
            Err(_) => metrics.failed("send"),
        }
        // `conn` drops here: close(2) sends our FIN after the line.
    }
}

fn accept_failed(e: &io::Error, backoff: &mut AcceptBackoff, metrics: &ListenerMetrics) {
    let failure = backoff.failed(Instant::now(), e);
    if failure.pause.is_zero() {
        return;
    }
    metrics.failed(if is_exhaustion(e) {
        "accept_resources"
    } else {
        "accept"
    });
    if let Some(line) = failure.log {
        warn!("{line}");
    }
    std::thread::sleep(failure.pause);
}

fn finish_later(
    conn: Socket,
    line: Arc<[u8]>,
    sent: usize,
    metrics: &ListenerMetrics,
    runtime: &tokio::runtime::Handle,
    slow: &Arc<AtomicUsize>,
) {
    if slow.fetch_add(1, Ordering::AcqRel) >= MAX_SLOW_REPLIES {
        slow.fetch_sub(1, Ordering::AcqRel);
        metrics.failed("slow_overload");
        return;
    }
    let metrics = metrics.clone();
    let slow = Arc::clone(slow);
    runtime.spawn(async move {
        let _release = SlowSlot(slow);
        let Ok(mut stream) = tokio::net::TcpStream::from_std(conn.into()) else {
            metrics.failed("send");
            return;
        };
        let done = tokio::time::timeout(SLOW_REPLY_LIMIT, async {
            stream.write_all(&line[sent..]).await?;
            stream.shutdown().await
        })
        .await;
        match done {
            Ok(Ok(())) => {
                metrics.replies.inc();
            }
            _ => metrics.failed("slow_send"),
        }
    });
}

/// Gives a slow-reply slot back when its task ends, however it ends.
struct SlowSlot(Arc<AtomicUsize>);

impl Drop for SlowSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_line_is_refreshed_only_when_it_changes() {
        let published = Published::new(b"ready up\n");
        let mut seen = u64::MAX;
        let mut local: Arc<[u8]> = Arc::from(&b""[..]);
        published.refresh(&mut seen, &mut local);
        assert_eq!(&*local, b"ready up\n");
        let before = seen;
        published.set(b"ready up\n");
        published.refresh(&mut seen, &mut local);
        assert_eq!(seen, before, "the same line is not a new generation");
        published.set(b"ready 40% up\n");
        published.refresh(&mut seen, &mut local);
        assert_eq!(&*local, b"ready 40% up\n");
        assert_ne!(seen, before);
    }

    fn ask(addr: SocketAddr) -> io::Result<Vec<u8>> {
        use std::io::Read;
        let mut reply = Vec::new();
        std::net::TcpStream::connect(addr)?.read_to_end(&mut reply)?;
        Ok(reply)
    }

    /// Real sockets on loopback: every connection gets the current line and a clean close, a new
    /// line shows on the next connection, and stopping frees the port.
    #[test]
    fn answers_each_connection_and_stops() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let published = Arc::new(Published::new(b"ready 40% up\n"));
        let metrics = ListenerMetrics::default();
        let listener = ReplyListener::start(
            ([127, 0, 0, 1], 0).into(),
            Arc::clone(&published),
            metrics.clone(),
            runtime.handle().clone(),
        )
        .unwrap();
        let addr = listener.local_addr().unwrap();
        for _ in 0..100 {
            assert_eq!(ask(addr).unwrap(), b"ready 40% up\n");
        }
        published.set(b"drain 40% up\n");
        assert_eq!(ask(addr).unwrap(), b"drain 40% up\n");
        assert_eq!(metrics.replies.get(), 101);
        listener.stop();
        assert!(ask(addr).is_err(), "the port must be closed after stop");
        // The address is free again at once (a reload binds it anew).
        let again = ReplyListener::start(addr, published, metrics, runtime.handle().clone());
        assert!(again.is_ok(), "{:?}", again.err());
    }
}
