//! Targets for health-check benchmarks: ports that count the checks they receive.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
