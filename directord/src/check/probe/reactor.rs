//! One epoll of our own for every probe's TCP connection, watched by tokio as a single
//! descriptor.
//!
//! A director probes thousands of servers a second, and a probe's cost is its system calls
//! (under UML, nearly all of it). A tokio `TcpStream` adds three to socket, connect and close:
//! `epoll_ctl` to register, `getsockopt(SO_ERROR)` to learn how the connect went and
//! `epoll_ctl` again to deregister on drop. Here a socket is added once, edge-triggered for
//! reading and writing; EPOLLOUT without EPOLLERR says the connect succeeded (the error is
//! fetched only when there is one); closing the socket takes it out of the set for free; and
//! one `epoll_wait` collects what every probe's socket did since the last.

use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker, ready};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

const READABLE: u32 = EpollFlags::EPOLLIN.bits() as u32 | EpollFlags::EPOLLRDHUP.bits() as u32;
const WRITABLE: u32 = EpollFlags::EPOLLOUT.bits() as u32;
/// Reported whatever was asked for, and never cleared: the socket is done.
const FAILED: u32 = EpollFlags::EPOLLERR.bits() as u32 | EpollFlags::EPOLLHUP.bits() as u32;

/// Events collected by one `epoll_wait`; more wait for the next turn.
const BATCH: usize = 256;

/// Started on first use, inside the runtime that runs the probes.
#[derive(Default)]
pub(crate) struct Reactor {
    shared: OnceLock<Arc<Shared>>,
}

impl Reactor {
    /// Started on first use. A failed start is not kept: an epoll refused for want of a
    /// descriptor must not fail every later probe, and its errno (EMFILE) makes this probe's
    /// result unknown rather than down.
    fn shared(&self) -> io::Result<&Arc<Shared>> {
        if let Some(shared) = self.shared.get() {
            return Ok(shared);
        }
        let started = Shared::start()?;
        Ok(self.shared.get_or_init(|| started))
    }

    /// A TCP connection to `addr`, from `from` when the check chooses its source
    /// (keepalived's bindto and bind_port), established (or the error that stopped it).
    pub async fn connect(&self, addr: SocketAddr, from: Option<SocketAddr>) -> io::Result<Conn> {
        let shared = self.shared()?;
        let socket = Socket::new(
            Domain::for_address(addr),
            Type::STREAM.nonblocking(),
            Some(Protocol::TCP),
        )?;
        if let Some(from) = from {
            // A fixed source port is taken again by the next probe while the last
            // connection may linger in TIME_WAIT.
            if from.port() != 0 {
                socket.set_reuse_address(true)?;
            }
            socket.bind(&from.into())?;
        }
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(Errno::EINPROGRESS as i32) => {}
            Err(e) => return Err(e),
        }
        let conn = shared.register(socket)?;
        let (ready, _) = poll_fn(|cx| conn.poll_ready(cx, WRITABLE)).await;
        if ready & EpollFlags::EPOLLERR.bits() as u32 != 0 {
            return Err(conn
                .socket
                .take_error()?
                .unwrap_or_else(|| io::Error::other("connection failed")));
        }
        Ok(conn)
    }
}

struct Shared {
    epoll: AsyncFd<EpollFd>,
    slots: Mutex<Slots>,
}

struct EpollFd(Epoll);

impl AsRawFd for EpollFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.0.as_raw_fd()
    }
}

/// What each registered socket has seen. A token is (generation << 32 | index), so an
/// event of a socket closed since, whose slot now serves another, is recognised and dropped.
#[derive(Default)]
struct Slots {
    entries: Vec<Slot>,
    free: Vec<u32>,
}

#[derive(Default)]
struct Slot {
    generation: u32,
    /// Events seen and not yet found spent by a read or write that would block.
    ready: u32,
    /// Counts deliveries, so a read that would block clears only the readiness it saw.
    deliveries: u64,
    waker: Option<Waker>,
}

impl Slots {
    fn slot(&mut self, token: u64) -> Option<&mut Slot> {
        let slot = self.entries.get_mut(index(token) as usize)?;
        (u64::from(slot.generation) == token >> 32).then_some(slot)
    }
}

fn index(token: u64) -> u32 {
    (token & u64::from(u32::MAX)) as u32
}

impl Shared {
    fn start() -> io::Result<Arc<Shared>> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        // SAFETY: EpollFd owns its descriptor and never gives it up or swaps it, so the fd
        // stays open and the same for the AsyncFd's whole life.
        let epoll = unsafe { AsyncFd::register_with_interest(EpollFd(epoll), Interest::READABLE) }?;
        let shared = Arc::new(Shared {
            epoll,
            slots: Mutex::new(Slots::default()),
        });
        tokio::spawn(harvest(Arc::clone(&shared)));
        Ok(shared)
    }

    fn slots(&self) -> MutexGuard<'_, Slots> {
        // Nothing panics while holding the lock.
        self.slots.lock().expect("probe slots")
    }

    fn register(self: &Arc<Self>, socket: Socket) -> io::Result<Conn> {
        let token = {
            let mut slots = self.slots();
            let index = match slots.free.pop() {
                Some(index) => index,
                None => {
                    slots.entries.push(Slot::default());
                    u32::try_from(slots.entries.len() - 1).map_err(io::Error::other)?
                }
            };
            let slot = &mut slots.entries[index as usize];
            (u64::from(slot.generation) << 32) | u64::from(index)
        };
        let conn = Conn {
            socket,
            token,
            shared: Arc::clone(self),
        };
        let flags = EpollFlags::EPOLLIN
            | EpollFlags::EPOLLOUT
            | EpollFlags::EPOLLRDHUP
            | EpollFlags::EPOLLET;
        self.epoll
            .get_ref()
            .0
            .add(&conn.socket, EpollEvent::new(flags, token))?;
        Ok(conn)
    }
}

/// Hands the events of every socket to its probe, one `epoll_wait` per batch.
async fn harvest(shared: Arc<Shared>) {
    let mut events = vec![EpollEvent::empty(); BATCH];
    let mut wake = Vec::new();
    loop {
        let Ok(mut guard) = shared.epoll.readable().await else {
            tracing::error!("probe epoll: tokio stopped watching it; probes will time out");
            return;
        };
        let count = match guard.get_inner().0.wait(&mut events, EpollTimeout::ZERO) {
            Ok(count) => count,
            Err(Errno::EINTR) => continue,
            Err(e) => {
                tracing::error!("probe epoll: {e}; probes will time out");
                return;
            }
        };
        {
            let mut slots = shared.slots();
            for event in &events[..count] {
                if let Some(slot) = slots.slot(event.data()) {
                    slot.ready |= event.events().bits() as u32;
                    slot.deliveries += 1;
                    wake.extend(slot.waker.take());
                }
            }
        }
        wake.drain(..).for_each(Waker::wake);
        if count < BATCH {
            guard.clear_ready();
        }
    }
}

/// A probe's TCP connection.
pub(crate) struct Conn {
    socket: Socket,
    token: u64,
    shared: Arc<Shared>,
}

impl Conn {
    /// Nagle off: for TLS, whose handshake writes several records in a row.
    pub fn set_nodelay(&self) -> io::Result<()> {
        self.socket.set_tcp_nodelay(true)
    }

    /// The events seen and how many deliveries brought them, once one of `interest` (or a
    /// failure) is among them.
    fn poll_ready(&self, cx: &mut Context<'_>, interest: u32) -> Poll<(u32, u64)> {
        let mut slots = self.shared.slots();
        let Some(slot) = slots.slot(self.token) else {
            return Poll::Ready((FAILED, 0));
        };
        if slot.ready & (interest | FAILED) != 0 {
            return Poll::Ready((slot.ready, slot.deliveries));
        }
        match &slot.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => slot.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// `interest` is spent (a call would block), unless an event came since `seen`.
    fn spent(&self, interest: u32, seen: u64) {
        let mut slots = self.shared.slots();
        if let Some(slot) = slots.slot(self.token)
            && slot.deliveries == seen
        {
            slot.ready &= !interest;
        }
    }

    /// Runs `call` when `interest` is ready, until it does not block.
    fn poll_io<T>(
        &self,
        cx: &mut Context<'_>,
        interest: u32,
        mut call: impl FnMut(&Socket) -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        loop {
            let (ready, seen) = ready!(self.poll_ready(cx, interest));
            match call(&self.socket) {
                // A failed socket never blocks; this keeps a surprise from spinning.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && ready & FAILED != 0 => {
                    return Poll::Ready(Err(io::Error::other("connection failed")));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.spent(interest, seen),
                result => return Poll::Ready(result),
            }
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // The socket closes after this (a field), which removes it from the epoll set.
        let mut slots = self.shared.slots();
        if let Some(slot) = slots.slot(self.token) {
            slot.generation = slot.generation.wrapping_add(1);
            slot.ready = 0;
            slot.waker = None;
            slots.free.push(index(self.token));
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let read = ready!(self.poll_io(cx, READABLE, |mut socket| {
            socket.read(buf.initialize_unfilled())
        }))?;
        buf.advance(read);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_io(cx, WRITABLE, |mut socket| socket.write(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.socket.shutdown(std::net::Shutdown::Write))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn an_event_of_a_closed_socket_does_not_reach_the_slot_now_reused() {
        let mut slots = Slots::default();
        slots.entries.push(Slot::default());
        let old = 0u64;
        slots.entries[0].generation = 1;
        let new = 1u64 << 32;
        assert!(slots.slot(old).is_none());
        assert!(slots.slot(new).is_some());
        assert!(slots.slot(new | 1).is_none(), "no such index");
    }

    /// More connections at once than one `epoll_wait` collects, each answered: no event is
    /// lost between batches.
    #[tokio::test(flavor = "current_thread")]
    async fn many_connections_at_once_all_complete() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut byte = [0u8; 1];
                    if stream.read_exact(&mut byte).await.is_ok() {
                        let _ = stream.write_all(&byte).await;
                    }
                });
            }
        });
        let reactor = Arc::new(Reactor::default());
        let probes: Vec<_> = (0..3 * BATCH + 7)
            .map(|i| {
                let reactor = Arc::clone(&reactor);
                tokio::spawn(async move {
                    let mut conn = reactor.connect(addr, None).await?;
                    conn.write_all(&[i as u8]).await?;
                    let mut echo = [0u8; 1];
                    conn.read_exact(&mut echo).await?;
                    Ok::<_, io::Error>(echo[0] == i as u8)
                })
            })
            .collect();
        for probe in probes {
            let echoed = tokio::time::timeout(std::time::Duration::from_secs(10), probe)
                .await
                .expect("every probe completes")
                .unwrap();
            assert!(echoed.unwrap());
        }
        server.abort();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_refused_connection_is_the_kernel_error() {
        // Bound and closed at once: nothing listens there now.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let reactor = Reactor::default();
        let error = reactor.connect(addr, None).await.err().expect("refused");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    }
}
