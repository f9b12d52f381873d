//! Prometheus exposition for every daemon: `GET /metrics` on `control.metrics`, each daemon on
//! its own port offset (directord +0, vrrpd +1, syncd +2, feedbackd +3) so one setting serves
//! the whole director.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

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

/// Serves `registry` until `shutdown`. Anything but `GET /metrics` gets a 404.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Mutex<Registry>>,
    shutdown: CancellationToken,
) {
    loop {
        let (mut stream, _) = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!("metrics accept: {e}");
                    continue;
                }
            },
        };
        let registry = Arc::clone(&registry);
        tokio::spawn(async move {
            let mut request = [0u8; 2048];
            let read = match tokio::time::timeout(
                std::time::Duration::from_secs(5),
                stream.read(&mut request),
            )
            .await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let head = String::from_utf8_lossy(&request[..read]);
            let response = if head.starts_with("GET /metrics ") || head.starts_with("GET /metrics?")
            {
                let mut body = String::new();
                let encoded = registry
                    .lock()
                    .map_err(|_| std::fmt::Error)
                    .and_then(|registry| {
                        prometheus_client::encoding::text::encode(&mut body, &registry)
                    });
                match encoded {
                    Ok(()) => format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    ),
                    Err(_) => "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_owned(),
                }
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_owned()
            };
            if let Err(e) = stream.write_all(response.as_bytes()).await {
                debug!("metrics client: {e}");
            }
        });
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

    #[test]
    fn each_daemon_has_its_port() {
        let base: SocketAddr = "127.0.0.1:9542".parse().unwrap();
        assert_eq!(address(base, "directord").port(), 9542);
        assert_eq!(address(base, "vrrpd").port(), 9543);
        assert_eq!(address(base, "feedbackd").port(), 9545);
    }
}
