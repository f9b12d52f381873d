//! vrrpd's watch on directord (`[vrrp] track_directord`): a VIP is only worth holding over a
//! table someone keeps. A task asks directord for its services' quorum (`track_services`)
//! every `interval`, which is also the liveness question; no answer within `timeout` (dead:
//! the connection is refused; wedged, e.g. SIGSTOP: it is accepted by the kernel and never
//! answered) is down. The main loop turns each result into every instance's tracking, as
//! keepalived's weights do: 0 faults, negative lowers the priority.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use lvs_config::TrackDirectord;
use lvs_control::ControlError;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::metrics::Metrics;

/// Why directord counted as down on one probe.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Unreachable(ControlError),
    #[error("{0}")]
    Garbled(ControlError),
}

impl ProbeError {
    /// The per-cause counter a failed probe goes to.
    pub fn cause(&self) -> &'static str {
        match self {
            ProbeError::Timeout(_) => "timeout",
            ProbeError::Unreachable(_) => "unreachable",
            ProbeError::Garbled(_) => "malformed_reply",
        }
    }
}

/// What one question to directord found: each named service's quorum (`track_services`).
pub type ProbeResult = Result<BTreeMap<String, bool>, ProbeError>;

/// One question to directord, bounded by `timeout`: its services' quorum, which is small at
/// any table size (its status lists every real server, megabytes at issue 20's size). The
/// same question is the liveness probe: it goes through directord's main loop like any
/// request, so a wedged loop is caught, and costs no table walk. A refusal is an answer: it is
/// alive (a directord older than Quorum refuses it, and so still counts, telling no quorum).
pub async fn probe(socket: &std::path::Path, timeout: Duration) -> ProbeResult {
    use lvs_control::directord::{Request, Response};
    match lvs_control::call_async_within::<_, Response>(socket, &Request::Quorum, timeout).await {
        Ok(Response::Quorum(report)) => Ok(report.quorum),
        Ok(_) | Err(ControlError::Refused(_)) => Ok(BTreeMap::new()),
        Err(ControlError::Timeout { .. }) => Err(ProbeError::Timeout(timeout)),
        Err(e @ ControlError::Io { .. }) => Err(ProbeError::Unreachable(e)),
        Err(e @ ControlError::Protocol { .. }) => Err(ProbeError::Garbled(e)),
    }
}

/// What vrrpd knows of directord, for the main loop, the status and the metrics.
pub struct Watch {
    pub settings: TrackDirectord,
    pub up: bool,
    pub checks: BTreeMap<String, u64>,
    pub last_error: Option<String>,
    /// Each named service's quorum, as directord last said.
    pub quorum: BTreeMap<String, bool>,
    task: JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Watch {
    /// Starts probing directord's socket in `socket_dir`, results to `results`. At start
    /// (`first_answer`) vrrpd waits up to an interval and a timeout for directord's first
    /// answer, so its instances start knowing: under systemd directord is ready before vrrpd
    /// starts (After=), and a pair of daemons started together needs a moment. On a reload
    /// that turns tracking on, directord counts as up until a probe says otherwise.
    pub async fn start(
        settings: TrackDirectord,
        socket_dir: &std::path::Path,
        results: mpsc::Sender<ProbeResult>,
        first_answer: bool,
        metrics: &Metrics,
    ) -> Watch {
        let socket: PathBuf = lvs_control::socket_path(socket_dir, "directord");
        let mut watch = Watch {
            settings: settings.clone(),
            up: true,
            checks: BTreeMap::new(),
            last_error: None,
            quorum: BTreeMap::new(),
            task: tokio::spawn(async {}),
        };
        if first_answer {
            let window = settings.interval.get() + settings.timeout.get();
            let deadline = tokio::time::Instant::now() + window;
            let mut last = probe(&socket, settings.timeout.get()).await;
            while last.is_err() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                last = probe(&socket, left.min(settings.timeout.get())).await;
            }
            watch.record(&last, metrics);
        }
        let (interval, timeout) = (settings.interval.get(), settings.timeout.get());
        info!(
            "tracking directord on {} every {interval:?}, down after {timeout:?} without an answer",
            socket.display()
        );
        watch.task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let result = probe(&socket, timeout).await;
                if results.send(result).await.is_err() {
                    return;
                }
            }
        });
        watch
    }

    /// Counts one probe (status and metrics); returns whether directord's up/down changed.
    pub fn record(&mut self, result: &ProbeResult, metrics: &Metrics) -> bool {
        let up = result.is_ok();
        let cause = match result {
            Ok(quorum) => {
                self.quorum.clone_from(quorum);
                "answered"
            }
            Err(e) => e.cause(),
        };
        *self.checks.entry(cause.to_owned()).or_default() += 1;
        metrics.directord_checked(cause);
        if let Err(e) = result {
            self.last_error = Some(e.to_string());
        }
        if up == self.up {
            return false;
        }
        self.up = up;
        match result {
            Ok(_) => info!("directord answers again"),
            Err(e) => warn!(
                "directord is down ({e}): weight {} on every instance",
                self.settings.weight
            ),
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;

    /// The probe is one small question, not the full Status (megabytes at issue 20's size,
    /// every second): the services' quorum, which is also the liveness probe. A quorum
    /// answer, any other answer and a refusal (a directord older than Quorum) all count as
    /// alive; only the quorum answer says anything of the services.
    #[tokio::test]
    async fn the_probe_is_a_quorum_request_and_a_liveness_probe() {
        let dir = tempfile::tempdir().unwrap();
        let path = lvs_control::socket_path(dir.path(), "directord");
        let listener = UnixListener::bind(&path).unwrap();
        let replies = [
            "{\"ok\":{\"quorum\":{\"web\":false,\"api\":true}}}\n",
            "{\"ok\":{}}\n",
            "{\"error\":\"unknown cmd\"}\n",
        ];
        let server = std::thread::spawn(move || {
            let mut asked = Vec::new();
            for reply in replies {
                let (stream, _) = listener.accept().unwrap();
                let mut request = String::new();
                BufReader::new(&stream).read_line(&mut request).unwrap();
                (&stream).write_all(reply.as_bytes()).unwrap();
                asked.push(request);
            }
            asked
        });
        let mut found = Vec::new();
        for _ in 0..replies.len() {
            found.push(probe(&path, Duration::from_secs(5)).await.unwrap());
        }
        let held = BTreeMap::from([("api".to_owned(), true), ("web".to_owned(), false)]);
        assert_eq!(found, [held, BTreeMap::new(), BTreeMap::new()]);
        assert_eq!(server.join().unwrap(), ["{\"cmd\":\"quorum\"}\n"; 3]);
    }

    /// Silence is down: a socket nobody answers on is a timeout.
    #[tokio::test]
    async fn a_silent_directord_is_down() {
        let dir = tempfile::tempdir().unwrap();
        let path = lvs_control::socket_path(dir.path(), "directord");
        let _listener = UnixListener::bind(&path).unwrap();
        let result = probe(&path, Duration::from_millis(200)).await;
        assert!(matches!(result, Err(ProbeError::Timeout(_))), "{result:?}");
    }
}
