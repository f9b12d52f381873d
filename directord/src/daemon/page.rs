//! The director's live status page on directord's HTTP listener, in the spirit of haproxy's
//! stats page: `/` is one self-contained HTML page (its CSS and script inline, compiled in),
//! `/events` the server-sent events that keep it live.
//!
//! directord owns the IPVS table, so it serves the page; what the other daemons know it asks
//! them over their control sockets, as `lvsadm status` and `lvsadm watch` do: their status
//! requests for the periodic snapshot, their event streams for what happens in between. A
//! snapshot goes to each new client at once and to all of them every [`SNAPSHOT_EVERY`], so a
//! page that missed an event (a lagging client, a daemon restarting) heals within that.
//! Read-only: the page has no action that changes anything.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use lvs_control::http::{Body, Pages, event_stream, sse_frame, whole};
use lvs_control::{Followed, directord, feedbackd, syncd, vrrpd};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

/// The page: HTML, CSS and script in one file, no external asset.
pub const PAGE: &str = include_str!("status.html");

/// How often every open page gets a fresh snapshot.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(2);
/// Pages open at once (of the listener's 32 connections); one more is told to try later.
pub const MAX_STREAMS: usize = 8;
/// Events kept for a page that opens later.
const RECENT: usize = 50;
/// How long a snapshot waits for each daemon: one that is stopped or wedged shows as such.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

pub struct StatusPage {
    socket_dir: PathBuf,
    /// The last events of every daemon, oldest first.
    recent: Mutex<VecDeque<Value>>,
    /// SSE frames for every open page: events as they come, and the periodic snapshot.
    frames: broadcast::Sender<String>,
    /// Open event streams: each holds one of the listener's few connections for as long as
    /// the page is open, so they are capped below them, leaving room for scrapes.
    streams: Arc<tokio::sync::Semaphore>,
}

impl StatusPage {
    /// Starts following the daemons in `socket_dir` and the periodic snapshot.
    pub fn start(socket_dir: PathBuf) -> Arc<StatusPage> {
        let (frames, _) = broadcast::channel(256);
        let page = Arc::new(StatusPage {
            socket_dir,
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            frames,
            streams: Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS)),
        });
        tokio::spawn(Arc::clone(&page).follow());
        tokio::spawn(Arc::clone(&page).snapshots());
        page
    }

    /// Every daemon's events ([`lvs_control::follow`]; `lvsadm watch` follows the same ones
    /// blocking, as lvsadm links no runtime), for
    /// as long as directord runs; a daemon's going away and coming back are events too.
    async fn follow(self: Arc<Self>) {
        let (tx, mut rx) = mpsc::channel(64);
        for daemon in lvs_control::EVENT_DAEMONS {
            let path = lvs_control::socket_path(&self.socket_dir, daemon);
            tokio::spawn(lvs_control::follow(daemon, path, tx.clone()));
        }
        drop(tx);
        while let Some((daemon, followed)) = rx.recv().await {
            let event = match followed {
                Followed::Event(event) => event,
                Followed::Following => json!({ "event": "followed" }),
                Followed::Lost(why) => json!({ "event": "lost", "why": why }),
            };
            self.publish(daemon, &event);
        }
    }

    /// Keeps the event and sends it to every open page.
    fn publish(&self, daemon: &str, event: &Value) {
        let record = json!({ "daemon": daemon, "at": unix_ms(), "event": event });
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(record.clone());
        }
        // No page open: nobody to tell.
        let _ = self.frames.send(sse_frame("event", &record.to_string()));
    }

    /// A snapshot for the open pages every [`SNAPSHOT_EVERY`], none while no page is open.
    async fn snapshots(self: Arc<Self>) {
        let mut every = tokio::time::interval(SNAPSHOT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if self.frames.receiver_count() > 0 {
                let frame = sse_frame("snapshot", &self.snapshot().await.to_string());
                let _ = self.frames.send(frame);
            }
        }
    }

    /// Everything the page shows, as one JSON value.
    pub async fn snapshot(&self) -> Value {
        let dir = &self.socket_dir;
        let ask = |daemon: &'static str| lvs_control::socket_path(dir, daemon);
        let (own, vrrp, sync, feedback, kernel) = tokio::join!(
            ask_daemon::<_, directord::Response>(ask("directord"), directord::Request::STATUS),
            ask_daemon::<_, vrrpd::Status>(ask("vrrpd"), vrrpd::Request::Status),
            ask_daemon::<_, syncd::Response>(ask("syncd"), syncd::Request::Status),
            ask_daemon::<_, feedbackd::Status>(ask("feedbackd"), feedbackd::Request::Status),
            read_kernel(),
        );
        let mut errors = BTreeMap::new();
        let mut value = |name: &str, answer: Result<Value, Unanswered>| match answer {
            Ok(v) => v,
            Err(e) => {
                errors.insert(name.to_owned(), e.to_string());
                Value::Null
            }
        };
        let recent: Vec<Value> = self
            .recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default();
        json!({
            "at": unix_ms(),
            "host": std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_owned()),
            "directord": value("directord", own),
            "vrrpd": value("vrrpd", vrrp),
            "syncd": value("syncd", sync),
            "feedbackd": value("feedbackd", feedback),
            "kernel": value("kernel", kernel),
            "errors": errors,
            "events": recent,
        })
    }

    /// An open page's stream: a snapshot at once, then what every page gets. A client that
    /// falls behind the broadcast is told, and the next snapshot mends what it missed.
    async fn stream(self: Arc<Self>, out: mpsc::Sender<String>) {
        let mut frames = self.frames.subscribe();
        let first = sse_frame("snapshot", &self.snapshot().await.to_string());
        if out.send(first).await.is_err() {
            return;
        }
        loop {
            let frame = match frames.recv().await {
                Ok(frame) => frame,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    sse_frame("lagged", &missed.to_string())
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            // The page was closed: the response body, and so the receiver, is gone.
            if out.send(frame).await.is_err() {
                return;
            }
        }
    }
}

impl Pages for StatusPage {
    fn serves(&self, path: &str) -> bool {
        matches!(path, "/" | "/index.html" | "/events")
    }

    fn get(self: Arc<Self>, path: &str) -> BoxFuture<'static, hyper::Response<Body>> {
        if path == "/events" {
            let Ok(slot) = Arc::clone(&self.streams).try_acquire_owned() else {
                return Box::pin(async {
                    lvs_control::http::plain(
                        hyper::StatusCode::SERVICE_UNAVAILABLE,
                        "too many status pages open; try again later\n",
                    )
                });
            };
            let (tx, rx) = mpsc::channel(16);
            tokio::spawn(async move {
                let _slot = slot;
                self.stream(tx).await;
            });
            return Box::pin(async move { event_stream(rx) });
        }
        Box::pin(async {
            whole(
                hyper::StatusCode::OK,
                "text/html; charset=utf-8",
                PAGE.as_bytes(),
            )
        })
    }
}

/// Why a part of the snapshot is missing (shown on the page in its place).
#[derive(Debug, thiserror::Error)]
enum Unanswered {
    #[error(transparent)]
    Daemon(#[from] lvs_control::ControlError),
    #[error("its answer is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("reading the IPVS table: {0}")]
    Kernel(#[from] lvs_ipvs::Error),
    #[error("reading the IPVS table: {0}")]
    Task(#[from] tokio::task::JoinError),
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A daemon's answer to `request` as JSON (its own status type, so the page sees what
/// `lvsadm status --json` prints), or why there is none.
async fn ask_daemon<Req, Resp>(path: PathBuf, request: Req) -> Result<Value, Unanswered>
where
    Req: serde::Serialize,
    Resp: serde::de::DeserializeOwned + serde::Serialize,
{
    let answer: Resp = lvs_control::call_async_within(&path, &request, ASK_TIMEOUT).await?;
    Ok(serde_json::to_value(answer)?)
}

/// Per service (`tcp 192.0.2.100:80`, as directord's status names it) and real server: the
/// kernel's weight, active and inactive connections and the estimator's rates.
async fn read_kernel() -> Result<Value, Unanswered> {
    let read = tokio::task::spawn_blocking(|| -> Result<Value, lvs_ipvs::Error> {
        let mut client = lvs_ipvs::IpvsClient::connect()?;
        let mut services = serde_json::Map::new();
        for service in client.services()? {
            let mut reals = serde_json::Map::new();
            for dest in client.destinations(&service.key)? {
                let stats = dest.stats.unwrap_or_default();
                reals.insert(
                    SocketAddrText(dest.addr, dest.port).to_string(),
                    json!({
                        "weight": dest.weight,
                        "active": dest.active_conns,
                        "inactive": dest.inactive_conns,
                        "conns": stats.conns,
                        "cps": stats.cps,
                        "inpps": stats.inpps,
                        "outpps": stats.outpps,
                        "inbps": stats.inbps,
                        "outbps": stats.outbps,
                    }),
                );
            }
            services.insert(service.key.to_string(), Value::Object(reals));
        }
        Ok(Value::Object(services))
    });
    Ok(read.await??)
}

/// A real server's address as directord's status writes it (`[2001:db8::1]:80` for IPv6).
struct SocketAddrText(std::net::IpAddr, u16);

impl std::fmt::Display for SocketAddrText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::net::SocketAddr::new(self.0, self.1).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake vrrpd on `dir`'s socket: its status has VI_1 in BACKUP; its events are sent on
    /// the returned sender.
    fn fake_vrrpd(dir: &std::path::Path) -> broadcast::Sender<vrrpd::Event> {
        let listener = lvs_control::bind(&lvs_control::socket_path(dir, "vrrpd")).unwrap();
        let (tx, mut rx) = mpsc::channel::<lvs_control::Incoming<vrrpd::Request, Value>>(4);
        let (events, _) = broadcast::channel(16);
        let shutdown = tokio_util::sync::CancellationToken::new();
        tokio::spawn(lvs_control::serve(listener, tx, events.clone(), shutdown));
        tokio::spawn(async move {
            while let Some(incoming) = rx.recv().await {
                incoming.reply_ok(json!({"instances": [{
                    "name": "VI_1", "interface": "eth0", "vrid": 51, "state": "BACKUP",
                    "configured_priority": 100, "priority": 100, "master": "192.0.2.11",
                    "virtual_addresses": ["192.0.2.100/24"],
                    "counters": {"adverts_sent": 0, "adverts_received": 3, "transitions": 1,
                                 "became_master": 0, "drops": {}}
                }]}));
            }
        });
        events
    }

    /// The next frame's event name and data.
    async fn next_frame(frames: &mut mpsc::Receiver<String>) -> (String, Value) {
        let frame = tokio::time::timeout(Duration::from_secs(10), frames.recv())
            .await
            .expect("no frame")
            .expect("stream ended");
        let (head, data) = frame.split_once('\n').unwrap();
        let data = data.trim_end().strip_prefix("data: ").unwrap();
        (
            head.strip_prefix("event: ").unwrap().to_owned(),
            serde_json::from_str(data).unwrap(),
        )
    }

    // What /events sends: a snapshot at once with each daemon's status (or why it has none),
    // then a daemon's event as it happens, without waiting for the next snapshot.
    #[tokio::test]
    async fn a_page_gets_a_snapshot_then_events_as_they_come() {
        let dir = tempfile::tempdir().unwrap();
        let vrrp_events = fake_vrrpd(dir.path());
        let page = StatusPage::start(dir.path().to_owned());
        let (tx, mut frames) = mpsc::channel(16);
        tokio::spawn(Arc::clone(&page).stream(tx));
        let (name, snapshot) = next_frame(&mut frames).await;
        assert_eq!(name, "snapshot");
        assert_eq!(
            snapshot["vrrpd"]["instances"][0]["state"], "BACKUP",
            "{snapshot}"
        );
        for daemon in ["directord", "syncd", "feedbackd"] {
            assert!(snapshot[daemon].is_null(), "{snapshot}");
            assert!(snapshot["errors"][daemon].is_string(), "{snapshot}");
        }
        assert!(snapshot["events"].is_array(), "{snapshot}");

        // The follower subscribes in the background: send until one comes through.
        let started = std::time::Instant::now();
        let event = loop {
            let _ = vrrp_events.send(vrrpd::Event::State {
                instance: "VI_1".into(),
                old: "BACKUP".into(),
                new: "MASTER".into(),
            });
            match tokio::time::timeout(Duration::from_millis(100), next_frame(&mut frames)).await {
                Ok((name, event)) if name == "event" && event["event"]["event"] == "state" => {
                    break event;
                }
                _ => assert!(started.elapsed() < Duration::from_secs(10), "no event"),
            }
        };
        assert_eq!(event["daemon"], "vrrpd", "{event}");
        assert_eq!(event["event"]["new"], "MASTER", "{event}");
        // Within the snapshot period: it came as an event, not with a snapshot.
        assert!(
            started.elapsed() < SNAPSHOT_EVERY,
            "{:?}",
            started.elapsed()
        );
        // A page opened later finds it among the last events.
        let later = page.snapshot().await;
        let recent = later["events"].as_array().unwrap();
        assert!(
            recent.iter().any(|e| e["event"]["new"] == "MASTER"),
            "{later}"
        );
    }

    // Each open page holds a connection of the listener's 32 for as long as it is open:
    // without a cap, 32 open pages would leave none for Prometheus. The one beyond the cap is
    // told so, and a closed page frees its place.
    #[tokio::test]
    async fn open_pages_are_capped_below_the_listeners_connections() {
        let dir = tempfile::tempdir().unwrap();
        let page = StatusPage::start(dir.path().to_owned());
        let mut open = Vec::new();
        for _ in 0..MAX_STREAMS {
            let response = Arc::clone(&page).get("/events").await;
            assert_eq!(response.status(), hyper::StatusCode::OK);
            open.push(response);
        }
        let refused = Arc::clone(&page).get("/events").await;
        assert_eq!(refused.status(), hyper::StatusCode::SERVICE_UNAVAILABLE);
        // The stream notices the closed page when it next sends: the next snapshot, within
        // SNAPSHOT_EVERY.
        drop(open.pop());
        let started = std::time::Instant::now();
        loop {
            let again = Arc::clone(&page).get("/events").await;
            if again.status() == hyper::StatusCode::OK {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "no place freed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // A status page that pulls a font or a script from elsewhere breaks on a director with no
    // route out, and tells a third party that someone looked: nothing in the page may name
    // another host or load a file.
    #[test]
    fn the_page_has_no_external_asset() {
        let lower = PAGE.to_lowercase();
        for needle in [
            "http://", "https://", "src=", "href=", "@import", "url(", "//cdn",
        ] {
            assert!(!lower.contains(needle), "the page holds {needle:?}");
        }
        assert!(lower.starts_with("<!doctype html>"));
        // The script reads what /events sends.
        for name in ["new eventsource(\"/events\")", "\"snapshot\"", "\"event\""] {
            assert!(lower.contains(name), "the page lacks {name}");
        }
    }
}
