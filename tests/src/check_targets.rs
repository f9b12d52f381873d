//! Targets for health-check benchmarks: ports that count the checks they receive.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::netns::Netns;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RESPONSE: &[u8] =
    b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";

/// Serves one port of `counts`: a TCP port counts a connection when it accepts it, an HTTP
/// port when it has answered a whole request head with 200. The last entry of `counts` is
/// not a port's: it counts HTTP connections that ended without a whole request.
pub async fn serve(
    socket: tokio::net::TcpListener,
    http: bool,
    counts: Arc<Vec<AtomicU64>>,
    index: usize,
) {
    loop {
        let mut stream = match socket.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors or similar: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if !http {
            counts[index].fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let counts = Arc::clone(&counts);
        tokio::spawn(async move {
            let mut head = Vec::with_capacity(512);
            let mut buf = [0u8; 1024];
            let read = tokio::time::timeout(Duration::from_secs(2), async {
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return false,
                        Ok(got) => head.extend_from_slice(&buf[..got]),
                    }
                }
                true
            })
            .await;
            if read == Ok(true) && stream.write_all(RESPONSE).await.is_ok() {
                let _ = stream.shutdown().await;
                counts[index].fetch_add(1, Ordering::Relaxed);
            } else {
                counts[counts.len() - 1].fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}

/// Room for thousands of targets and the checks in flight to them; children (the checkers)
/// inherit the limit.
pub fn raise_fd_limit(limit: u64) -> Result<(), String> {
    let wanted = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: setrlimit(2) reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } != 0 {
        return Err(format!(
            "setrlimit NOFILE {limit}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Check targets on one thread inside a namespace: each `(address, http)` is a port that
/// accepts and closes (TCP) or answers 200 to any request (HTTP); counts the checks each
/// receives.
pub struct Listener {
    /// One count per target, in the order given, then one more: HTTP connections that ended
    /// without a whole request (the checker gave up, or never got to send it).
    counts: Arc<Vec<AtomicU64>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    /// Binds every target (their addresses must be local in `ns`) and serves them until
    /// dropped.
    pub fn start(ns: &Netns, targets: Vec<(SocketAddr, bool)>) -> Result<Self, String> {
        let netns = std::fs::File::open(Path::new("/run/netns").join(ns.name()))
            .map_err(|e| format!("cannot open the namespace: {e}"))?;
        let counts: Arc<Vec<AtomicU64>> =
            Arc::new((0..=targets.len()).map(|_| AtomicU64::new(0)).collect());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (ready, is_ready) = std::sync::mpsc::channel();
        let thread_counts = Arc::clone(&counts);
        let thread = std::thread::spawn(move || {
            // SAFETY: setns(2) on an open namespace file; it moves only this thread, so the
            // sockets made below live in the test's namespace and the rest of the process
            // stays where it was.
            if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                let _ = ready.send(Err(format!("setns: {}", std::io::Error::last_os_error())));
                return;
            }
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = ready.send(Err(e.to_string()));
                    return;
                }
            };
            runtime.block_on(async move {
                for (index, (address, http)) in targets.into_iter().enumerate() {
                    let socket = match tokio::net::TcpListener::bind(address).await {
                        Ok(socket) => socket,
                        Err(e) => {
                            let _ = ready.send(Err(format!("bind {address}: {e}")));
                            return;
                        }
                    };
                    tokio::spawn(serve(socket, http, Arc::clone(&thread_counts), index));
                }
                let _ = ready.send(Ok(()));
                let _ = stopped.await;
            });
        });
        is_ready
            .recv()
            .map_err(|_| "the listener thread ended before binding".to_owned())??;
        Ok(Listener {
            counts,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The counts so far: one per target, then the abandoned HTTP connections.
    pub fn snapshot(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
