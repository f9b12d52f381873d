//! Prometheus exposition for every daemon: `GET /metrics` on `control.metrics`, each daemon on
//! its own port offset (directord +0, vrrpd +1, syncd +2, feedbackd +3) so one setting serves
//! the whole director.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use prometheus_client::registry::Registry;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::limits::AcceptBackoff;

/// Port offsets from `control.metrics`.
pub fn address(base: SocketAddr, daemon: &str) -> SocketAddr {
    let offset = match daemon {
        "vrrpd" => 1,
        "syncd" => 2,
        "feedbackd" => 3,
        _ => 0,
    };
    SocketAddr::new(base.ip(), base.port().saturating_add(offset))
}

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What one scrape may hold: a client that sends no request, or reads no reply, is cut off
/// after a timeout, and no more than `max_connections` are served at once (the others wait in
/// the kernel's backlog), so slow or stuck clients cannot use up the daemon's descriptors.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 32,
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `registry` until `shutdown`. Anything but `GET /metrics` gets a 404.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Mutex<Registry>>,
    shutdown: CancellationToken,
) {
    serve_with(listener, registry, shutdown, Limits::default()).await;
}

/// [`serve`] with other limits.
pub async fn serve_with(
    listener: TcpListener,
    registry: Arc<Mutex<Registry>>,
    shutdown: CancellationToken,
    limits: Limits,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut backoff = AcceptBackoff::default();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = async {
                let slot = Arc::clone(&slots).acquire_owned().await;
                (slot, listener.accept().await)
            } => accepted,
        };
        let (slot, mut stream) = match accepted {
            (Ok(slot), Ok((stream, _))) => {
                backoff.succeeded();
                (slot, stream)
            }
            (_, Err(e)) => {
                backoff.pause_after("metrics", &e).await;
                continue;
            }
            (Err(_), Ok(_)) => return,
        };
        let registry = Arc::clone(&registry);
        tokio::spawn(async move {
            let _slot = slot;
            let mut request = [0u8; 2048];
            let read =
                match tokio::time::timeout(limits.read_timeout, stream.read(&mut request)).await {
                    Ok(Ok(n)) => n,
                    _ => return,
                };
            let response = respond(&request[..read], &registry);
            match tokio::time::timeout(limits.write_timeout, stream.write_all(response.as_bytes()))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!("metrics client: {e}"),
                Err(_) => debug!("metrics client: not reading, cut off"),
            }
        });
    }
}

fn respond(request: &[u8], registry: &Mutex<Registry>) -> String {
    let head = String::from_utf8_lossy(request);
    if !(head.starts_with("GET /metrics ") || head.starts_with("GET /metrics?")) {
        return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            .to_owned();
    }
    let mut body = String::new();
    let encoded = registry
        .lock()
        .map_err(|_| std::fmt::Error)
        .and_then(|registry| prometheus_client::encoding::text::encode(&mut body, &registry));
    match encoded {
        Ok(()) => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        Err(_) => {
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[tokio::test]
    async fn serves_the_registry_in_openmetrics_text() {
        let mut registry = Registry::default();
        let counter: Counter = Counter::default();
        registry.register("adverts_sent", "Adverts sent", counter.clone());
        counter.inc_by(3);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(
            listener,
            Arc::new(Mutex::new(registry)),
            shutdown.clone(),
        ));

        let fetch = |path: &'static str| async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut reply = String::new();
            stream.read_to_string(&mut reply).await.unwrap();
            reply
        };
        let metrics = fetch("/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200 OK"), "{metrics}");
        assert!(metrics.contains("adverts_sent_total 3"), "{metrics}");
        assert!(fetch("/").await.starts_with("HTTP/1.1 404"));
        shutdown.cancel();
    }

    /// `registry` served on a loopback port; cancel the token to stop.
    async fn serve_on(registry: Registry, limits: Limits) -> (SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(serve_with(
            listener,
            Arc::new(Mutex::new(registry)),
            shutdown.clone(),
            limits,
        ));
        (addr, shutdown)
    }

    // Caught: the reply was written with no timeout, so a client that asked and never read
    // (or a slow one) held its connection and descriptor for ever; enough of them and the
    // daemon ran out of descriptors, which made probes fail.
    #[tokio::test]
    async fn a_client_that_does_not_read_is_cut_off_and_others_are_served() {
        use prometheus_client::encoding::EncodeLabelSet;
        use prometheus_client::metrics::family::Family;
        #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
        struct Labels {
            server: String,
        }
        // A reply of 16 MB: more than the socket buffers between a server and a client that
        // does not read can hold (loopback's send buffer grows to 4 MB, tcp_wmem).
        let padding = "x".repeat(360);
        let mut registry = Registry::default();
        let family: Family<Labels, Counter> = Family::default();
        registry.register("probes", "Probes by server", family.clone());
        for i in 0..40_000 {
            family
                .get_or_create(&Labels {
                    server: format!("192.0.2.{}:{}/{padding}", i % 250, 1000 + i),
                })
                .inc();
        }
        let limits = Limits {
            max_connections: 4,
            read_timeout: Duration::from_millis(300),
            write_timeout: Duration::from_millis(300),
        };
        let (addr, shutdown) = serve_on(registry, limits).await;

        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stuck = socket.connect(addr).await.unwrap();
        stuck
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        // One that connects and says nothing.
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();

        // Others are served meanwhile.
        let mut other = tokio::net::TcpStream::connect(addr).await.unwrap();
        other
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), other.read_to_end(&mut reply))
            .await
            .expect("a scrape beside a stuck client")
            .unwrap();
        assert!(reply.starts_with(b"HTTP/1.1 200 OK"));
        let full = reply.len();

        tokio::time::sleep(Duration::from_millis(600)).await;
        // The server gave up on both: the stuck reader finds the end of a truncated reply,
        // the silent one an end with nothing.
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(3), stuck.read_to_end(&mut got)).await;
        let Ok(read) = read else {
            panic!("the server still holds a client that does not read");
        };
        // A reset is as good as an end here.
        let _ = read;
        assert!(got.len() < full, "{} of {full} bytes", got.len());
        let mut nothing = Vec::new();
        tokio::time::timeout(Duration::from_secs(3), silent.read_to_end(&mut nothing))
            .await
            .expect("the server still holds a client that sends nothing")
            .unwrap();
        assert!(nothing.is_empty());
        shutdown.cancel();
    }

    // Caught: no cap on connections; each one cost a descriptor and a task.
    #[tokio::test]
    async fn connections_beyond_the_cap_wait() {
        let limits = Limits {
            max_connections: 2,
            read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
        };
        let (addr, shutdown) = serve_on(Registry::default(), limits).await;
        let _a = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _b = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
        third
            .write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut reply = Vec::new();
        let waited =
            tokio::time::timeout(Duration::from_millis(500), third.read_to_end(&mut reply)).await;
        assert!(waited.is_err(), "served beyond the cap");
        drop(_a);
        tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut reply))
            .await
            .expect("served once a slot is free")
            .unwrap();
        assert!(reply.starts_with(b"HTTP/1.1 200 OK"));
        shutdown.cancel();
    }

    #[test]
    fn each_daemon_has_its_port() {
        let base: SocketAddr = "127.0.0.1:9542".parse().unwrap();
        assert_eq!(address(base, "directord").port(), 9542);
        assert_eq!(address(base, "vrrpd").port(), 9543);
        assert_eq!(address(base, "feedbackd").port(), 9545);
    }
}
