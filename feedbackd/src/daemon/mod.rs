//! The two tokio shells of feedbackd: the agent on a real server and the poller on a director.

pub mod agent;
pub mod director;
mod listener;

/// Starts the HTTP listener when `control.metrics` is set: Prometheus, and on a director (which
/// has a control socket) /status.json. The run stops it before a reload runs again.
pub async fn serve_metrics(
    config: &lvs_config::Config,
    registry: prometheus_client::registry::Registry,
    director: bool,
) -> Result<Option<lvs_control::http::Serving>, feedbackd::error::Error> {
    let Some(base) = config.control.metrics else {
        return Ok(None);
    };
    let mut routes =
        lvs_control::http::Routes::new(std::sync::Arc::new(std::sync::Mutex::new(registry)));
    if director {
        routes = routes.with_daemon_status(
            &config.control,
            "feedbackd",
            &lvs_control::feedbackd::Request::Status,
        );
    }
    let shutdown = tokio_util::sync::CancellationToken::new();
    let serving = lvs_control::http::start(base, "feedbackd", routes, shutdown).await?;
    Ok(Some(serving))
}

/// Why a loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// SIGTERM or SIGINT.
    Terminate,
    /// SIGHUP: run again with the re-read config.
    Reload,
}

/// Waits for SIGTERM/SIGINT (stop) or SIGHUP (reload).
pub async fn signalled() -> Exit {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(mut term), Ok(mut int), Ok(mut hup)) => {
            tokio::select! {
                _ = term.recv() => Exit::Terminate,
                _ = int.recv() => Exit::Terminate,
                _ = hup.recv() => Exit::Reload,
            }
        }
        _ => std::future::pending().await,
    }
}

pub fn notify_ready() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
}

/// Pings the systemd watchdog at half its period, when one is set.
pub fn spawn_watchdog() {
    let mut watchdog = lvs_control::daemon::Watchdog::from_env();
    tokio::spawn(async move {
        loop {
            watchdog.ping_when_due().await;
        }
    });
}
