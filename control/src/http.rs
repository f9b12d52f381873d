//! Every daemon's HTTP listener on `control.metrics` (its port offset: [`crate::metrics::address`]),
//! served by hyper: `GET /metrics` (OpenMetrics or Prometheus text, by the Accept header),
//! `GET /status.json` (what the daemon's control socket answers to its status request) and
//! whatever pages the daemon adds ([`Pages`]: directord's status page and its event stream).
//! Other paths get 404, other methods on a known path 405. Read-only: nothing served here
//! changes anything.
//!
//! The limits are the ones the hand-written responder had: at most `max_connections`
//! connections at once (the rest wait in the kernel's backlog), a client that sends no request
//! head within `read_timeout` is dropped, one that reads nothing for `write_timeout` is cut
//! off (an event stream's reader too), and a failed accept (EMFILE) backs off instead of
//! spinning.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::limits::AcceptBackoff;
use crate::metrics::{Limits, encode, register_common};

/// A response body: whole, or a stream (server-sent events).
pub type Body = BoxBody<Bytes, Infallible>;

/// Paths a daemon serves besides `/metrics` and `/status.json`.
pub trait Pages: Send + Sync + 'static {
    /// Whether `path` is one of these (a GET gets [`Pages::get`], another method 405).
    fn serves(&self, path: &str) -> bool;
    /// The answer to `GET path` (an event stream keeps a handle on the pages).
    fn get(self: Arc<Self>, path: &str) -> BoxFuture<'static, Response<Body>>;
}

/// Where `/status.json` comes from: the daemon's own control socket, asked its status request,
/// so the page shows exactly what `lvsadm status --json` shows.
#[derive(Debug, Clone)]
pub struct StatusSource {
    pub socket: PathBuf,
    pub request: serde_json::Value,
}

/// How long `/status.json` waits for the daemon's loop.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// What the listener answers.
#[derive(Clone)]
pub struct Routes {
    registry: Arc<Mutex<Registry>>,
    status: Option<StatusSource>,
    pages: Option<Arc<dyn Pages>>,
}

impl Routes {
    /// `/metrics` from `registry` (the build and process series are added when served).
    pub fn new(registry: Arc<Mutex<Registry>>) -> Self {
        Routes {
            registry,
            status: None,
            pages: None,
        }
    }

    /// `/status.json` as `socket` answers `request`.
    pub fn with_status<Req: serde::Serialize>(mut self, socket: PathBuf, request: &Req) -> Self {
        self.status = Some(StatusSource {
            socket,
            request: serde_json::to_value(request).unwrap_or_default(),
        });
        self
    }

    /// `/status.json` as `daemon`'s control socket under `control` answers `request`.
    pub fn with_daemon_status<Req: serde::Serialize>(
        self,
        control: &lvs_config::Control,
        daemon: &str,
        request: &Req,
    ) -> Self {
        self.with_status(crate::socket_path(&control.socket_dir, daemon), request)
    }

    pub fn with_pages(mut self, pages: Arc<dyn Pages>) -> Self {
        self.pages = Some(pages);
        self
    }

    /// The answer to one request.
    pub async fn handle(&self, method: &Method, path: &str, accept: &str) -> Response<Body> {
        let page = self.pages.as_ref().filter(|pages| pages.serves(path));
        let known = path == "/metrics" || (path == "/status.json" && self.status.is_some());
        if !known && page.is_none() {
            return plain(StatusCode::NOT_FOUND, "not found\n");
        }
        if method != Method::GET && method != Method::HEAD {
            let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "read-only: GET or HEAD\n");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        if let Some(pages) = page {
            return Arc::clone(pages).get(path).await;
        }
        match (path, &self.status) {
            ("/status.json", Some(source)) => status_json(source).await,
            _ => match encode(&self.registry, accept) {
                Ok((content_type, body)) => whole(StatusCode::OK, content_type, body),
                Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n"),
            },
        }
    }
}

async fn status_json(source: &StatusSource) -> Response<Body> {
    let answer = crate::call_async_within::<_, serde_json::Value>(
        &source.socket,
        &source.request,
        STATUS_TIMEOUT,
    )
    .await;
    match answer {
        Ok(status) => json(StatusCode::OK, &status),
        // The daemon's loop did not answer: said as JSON too, for scripts.
        Err(e) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({ "error": e.to_string() }),
        ),
    }
}

/// A whole body with its content type; nothing is cached (the figures are live).
pub fn whole(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    whole(status, "text/plain; charset=utf-8", text)
}

pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    whole(status, "application/json", body)
}

/// One server-sent event: `event: NAME`, the data one `data:` line per line of it (a newline
/// inside would otherwise end the field), and the blank line that ends the event.
pub fn sse_frame(event: &str, data: &str) -> String {
    let mut frame = String::with_capacity(data.len() + event.len() + 16);
    frame.push_str("event: ");
    frame.push_str(event);
    frame.push('\n');
    for line in data.split('\n') {
        frame.push_str("data: ");
        frame.push_str(line.trim_end_matches('\r'));
        frame.push('\n');
    }
    frame.push('\n');
    frame
}

/// A `text/event-stream` response fed with frames ([`sse_frame`]) from `frames`; it ends when
/// the sender is dropped. Each frame is flushed to the client as it comes.
pub fn event_stream(frames: mpsc::Receiver<String>) -> Response<Body> {
    let stream = futures::stream::unfold(frames, |mut frames| async move {
        let frame = frames.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(Bytes::from(frame))), frames))
    });
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A listener [`start`] runs.
pub struct Serving {
    pub addr: std::net::SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Serving {
    /// Closes the port, and returns once it is closed: a daemon whose reload runs its body
    /// again binds the same port right after (feedbackd's did, and failed with EADDRINUSE).
    /// Requests in flight finish on their own.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// Binds `daemon`'s port of `base` ([`crate::metrics::address`]) and serves `routes` there
/// until `shutdown` (or [`Serving::stop`]).
pub async fn start(
    base: std::net::SocketAddr,
    daemon: &str,
    routes: Routes,
    shutdown: CancellationToken,
) -> Result<Serving, crate::daemon::SetupError> {
    let addr = crate::metrics::address(base, daemon);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| crate::daemon::SetupError::Metrics { addr, source })?;
    let task = tokio::spawn(serve(listener, routes, shutdown.clone(), Limits::default()));
    tracing::info!("http on http://{addr}/ (metrics, status.json)");
    Ok(Serving {
        addr,
        shutdown,
        task,
    })
}

/// Serves `routes` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    shutdown: CancellationToken,
    limits: Limits,
) {
    if let Ok(mut registry) = routes.registry.lock() {
        register_common(&mut registry);
    }
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
        let (slot, stream) = match accepted {
            (Ok(slot), Ok((stream, _))) => {
                backoff.succeeded();
                (slot, stream)
            }
            (_, Err(e)) => {
                backoff.pause_after("http", &e).await;
                continue;
            }
            (Err(_), Ok(_)) => return,
        };
        let routes = routes.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let routes = routes.clone();
                async move {
                    let accept = request
                        .headers()
                        .get(header::ACCEPT)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let path = request.uri().path().to_owned();
                    Ok::<_, Infallible>(routes.handle(request.method(), &path, &accept).await)
                }
            });
            // One request per connection, as before: scrapers reconnect anyway, and a
            // connection that stays open would hold one of the few slots.
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .timer(TokioTimer::new())
                .header_read_timeout(limits.read_timeout)
                .serve_connection(
                    TokioIo::new(WriteDeadline::new(stream, limits.write_timeout)),
                    service,
                );
            if let Err(e) = connection.await {
                debug!("http client: {e}");
            }
        });
    }
}

/// A stream whose writes fail once the peer has taken nothing for `limit`: hyper has no write
/// timeout, and a client that asks and never reads would otherwise hold its connection (and
/// a slot) for ever.
struct WriteDeadline<S> {
    inner: S,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteDeadline<S> {
    fn new(inner: S, limit: Duration) -> Self {
        WriteDeadline {
            inner,
            limit,
            stalled: None,
        }
    }

    /// A write's outcome, with the clock started when it first could not proceed.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let limit = self.limit;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client not reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A page set with one page and nothing else.
    struct OnePage;

    impl Pages for OnePage {
        fn serves(&self, path: &str) -> bool {
            path == "/"
        }
        fn get(self: Arc<Self>, _: &str) -> BoxFuture<'static, Response<Body>> {
            Box::pin(async { whole(StatusCode::OK, "text/html", "<p>page</p>") })
        }
    }

    async fn exchange(addr: std::net::SocketAddr, request: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reply = String::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut reply))
            .await
            .expect("no answer")
            .unwrap();
        reply
    }

    async fn served(routes: Routes) -> (std::net::SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(listener, routes, shutdown.clone(), Limits::default()));
        (addr, shutdown)
    }

    // Unknown paths are 404, writes to known ones 405 with the methods allowed: nothing on
    // this listener changes state, and a POST must not be answered as a GET.
    #[tokio::test]
    async fn unknown_paths_are_404_and_other_methods_405() {
        let routes =
            Routes::new(Arc::new(Mutex::new(Registry::default()))).with_pages(Arc::new(OnePage));
        let (addr, shutdown) = served(routes).await;
        let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        let reply = exchange(addr, &get("/nothing")).await;
        assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
        // No socket to ask: /status.json is not served at all.
        let reply = exchange(addr, &get("/status.json")).await;
        assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
        for path in ["/metrics", "/"] {
            let reply = exchange(
                addr,
                &format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
            )
            .await;
            assert!(reply.starts_with("HTTP/1.1 405"), "{reply}");
            assert!(reply.to_lowercase().contains("allow: get, head"), "{reply}");
        }
        let reply = exchange(addr, &get("/")).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.ends_with("<p>page</p>"), "{reply}");
        // A query string does not change the path.
        let reply = exchange(addr, &get("/metrics?x=1")).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        shutdown.cancel();
    }

    // /status.json is the daemon's control-socket answer as it is (here a fake daemon's), and
    // a daemon that does not answer gives 503 with the reason, as JSON.
    #[tokio::test]
    async fn status_json_is_the_control_sockets_answer() {
        let dir = tempfile::tempdir().unwrap();
        let socket = crate::socket_path(dir.path(), "testd");
        let routes = Routes::new(Arc::new(Mutex::new(Registry::default())))
            .with_status(socket.clone(), &crate::vrrpd::Request::Status);
        let (addr, shutdown) = served(routes).await;
        let get = "GET /status.json HTTP/1.1\r\nHost: x\r\n\r\n";
        let reply = exchange(addr, get).await;
        assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
        assert!(reply.contains("\"error\""), "{reply}");

        let listener = crate::bind(&socket).unwrap();
        let (tx, mut rx) =
            mpsc::channel::<crate::Incoming<crate::vrrpd::Request, serde_json::Value>>(4);
        let (events, _) = tokio::sync::broadcast::channel::<serde_json::Value>(4);
        tokio::spawn(crate::serve(listener, tx, events, shutdown.clone()));
        tokio::spawn(async move {
            while let Some(incoming) = rx.recv().await {
                let asked = serde_json::to_value(&incoming.request).unwrap();
                incoming.reply_ok(
                    serde_json::json!({"instances": [{"state": "MASTER"}], "asked": asked}),
                );
            }
        });
        let reply = exchange(addr, get).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(
            reply
                .to_lowercase()
                .contains("content-type: application/json"),
            "{reply}"
        );
        let body = reply.split_once("\r\n\r\n").unwrap().1;
        let value: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"instances": [{"state": "MASTER"}], "asked": {"cmd": "status"}})
        );
        shutdown.cancel();
    }

    // A data line with a newline inside must become two `data:` lines: a bare newline would
    // end the field and the rest would be read as a field of its own.
    #[test]
    fn sse_frames_split_data_lines() {
        assert_eq!(sse_frame("snapshot", "{}"), "event: snapshot\ndata: {}\n\n");
        assert_eq!(
            sse_frame("event", "a\nb\r\nc"),
            "event: event\ndata: a\ndata: b\ndata: c\n\n"
        );
    }

    // Frames reach the client as they are sent, not when the stream ends.
    #[tokio::test]
    async fn event_streams_flush_each_frame() {
        struct Events(Mutex<Option<mpsc::Receiver<String>>>);
        impl Pages for Events {
            fn serves(&self, path: &str) -> bool {
                path == "/events"
            }
            fn get(self: Arc<Self>, _: &str) -> BoxFuture<'static, Response<Body>> {
                let frames = self.0.lock().unwrap().take().unwrap();
                Box::pin(async move { event_stream(frames) })
            }
        }
        let (tx, rx) = mpsc::channel(4);
        let routes = Routes::new(Arc::new(Mutex::new(Registry::default())))
            .with_pages(Arc::new(Events(Mutex::new(Some(rx)))));
        let (addr, shutdown) = served(routes).await;
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        tx.send(sse_frame("snapshot", "{\"n\":1}")).await.unwrap();
        let mut seen = Vec::new();
        let mut chunk = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("data: {\"n\":1}\n\n") {
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
                .await
                .expect("the frame was held back")
                .unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&seen).to_lowercase();
        assert!(head.contains("content-type: text/event-stream"), "{head}");
        drop(tx);
        shutdown.cancel();
    }
}
