//! vrrpd's watch on directord (`[vrrp] track_directord`): a VIP is only worth holding over a
//! table someone keeps. A task asks directord for its status every `interval`; no answer
//! within `timeout` (dead: the connection is refused; wedged, e.g. SIGSTOP: it is accepted by
//! the kernel and never answered) is down. The main loop turns each result into every
//! instance's tracking, as keepalived's weights do: 0 faults, negative lowers the priority.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use lvs_config::TrackDirectord;
use lvs_control::ControlError;
use serde::de::IgnoredAny;
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

/// One question to directord, bounded by `timeout`. A refusal is an answer: it is alive (a
/// directord older than Ping refuses it, and so still counts). Ping goes through directord's
/// main loop like any request, so a wedged loop is caught, but costs no table walk.
pub async fn probe(socket: &std::path::Path, timeout: Duration) -> Result<(), ProbeError> {
    let request = lvs_control::directord::Request::Ping;
    match lvs_control::call_async_within::<_, IgnoredAny>(socket, &request, timeout).await {
        Ok(_) | Err(ControlError::Refused(_)) => Ok(()),
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
        results: mpsc::Sender<Result<(), ProbeError>>,
        first_answer: bool,
        metrics: &Metrics,
    ) -> Watch {
        let socket: PathBuf = lvs_control::socket_path(socket_dir, "directord");
        let mut watch = Watch {
            settings: settings.clone(),
            up: true,
            checks: BTreeMap::new(),
            last_error: None,
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
            watch.record(last, metrics);
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
    pub fn record(&mut self, result: Result<(), ProbeError>, metrics: &Metrics) -> bool {
        let up = result.is_ok();
        let cause = match &result {
            Ok(()) => "answered",
            Err(e) => e.cause(),
        };
        *self.checks.entry(cause.to_owned()).or_default() += 1;
        metrics.directord_checked(cause);
        if let Err(e) = &result {
            self.last_error = Some(e.to_string());
        }
        if up == self.up {
            return false;
        }
        self.up = up;
        match result {
            Ok(()) => info!("directord answers again"),
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

    /// The probe asks directord for a Ping, not the full Status (megabytes at issue 20's
    /// size, every second), and an answer or a refusal both count as alive.
    #[tokio::test]
    async fn the_probe_is_a_ping() {
        let dir = tempfile::tempdir().unwrap();
        let path = lvs_control::socket_path(dir.path(), "directord");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let mut asked = Vec::new();
            for reply in ["{\"ok\":{}}\n", "{\"error\":\"unknown cmd\"}\n"] {
                let (stream, _) = listener.accept().unwrap();
                let mut request = String::new();
                BufReader::new(&stream).read_line(&mut request).unwrap();
                (&stream).write_all(reply.as_bytes()).unwrap();
                asked.push(request);
            }
            asked
        });
        for _ in 0..2 {
            probe(&path, Duration::from_secs(5)).await.unwrap();
        }
        assert_eq!(server.join().unwrap(), ["{\"cmd\":\"ping\"}\n"; 2]);
    }
}
