//! What every daemon's `main` does the same way: logging, loading the config, the runtime,
//! the control socket.

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use nix::fcntl::{Flock, FlockArg};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use tracing::{info, warn};

use crate::{Access, Incoming};

/// Plain lines on stderr (journald timestamps and colours nothing); the level comes from
/// `LVS_LOG` (tracing's env-filter syntax), "info" by default.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LVS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
}

/// A single-threaded runtime: each daemon is one event loop.
pub fn runtime(daemon: &str) -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("{daemon}: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}

/// The whole of a daemon's `main`: logging, the validated config (`--check` stops there),
/// the runtime, then `body` until it returns.
pub fn main<F, Fut>(daemon: &str, args: &lvs_config::ConfigArgs, check: bool, body: F) -> ExitCode
where
    F: FnOnce(lvs_config::Config, PathBuf) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    init_logging();
    let config = match lvs_config::load_for_daemon(daemon, args, check) {
        Ok(config) => config,
        Err(code) => return code,
    };
    raise_fd_limit();
    let runtime = match runtime(daemon) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(body(config, args.path.clone())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{daemon}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The soft descriptor limit up to the hard one (see [`crate::limits::raise_fd_limit`]),
/// logged: a daemon left at systemd's 1024 is what made probes fail with EMFILE.
fn raise_fd_limit() {
    match crate::limits::raise_fd_limit() {
        Ok((before, after)) if before == after => info!("file descriptor limit: {after}"),
        Ok((before, after)) => info!("file descriptor limit: {after} (raised from {before})"),
        Err(e) => warn!("cannot raise the file descriptor limit: {e}"),
    }
}

/// systemd's watchdog, pinged from the daemon's own event loop (one `select!` arm) rather
/// than from a task of its own, so a wedged loop stops the pings and systemd restarts it.
pub struct Watchdog {
    tick: Option<tokio::time::Interval>,
}

impl Watchdog {
    /// Half of `WatchdogSec`, when systemd set one; otherwise [`Watchdog::ping_when_due`]
    /// never completes.
    pub fn from_env() -> Watchdog {
        Watchdog {
            tick: sd_notify::watchdog_enabled().map(|period| tokio::time::interval(period / 2)),
        }
    }

    pub async fn ping_when_due(&mut self) {
        match &mut self.tick {
            Some(tick) => {
                tick.tick().await;
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
            None => std::future::pending().await,
        }
    }
}

/// A served control socket: requests arrive on `requests`; cancel `shutdown` and the socket
/// file goes when the daemon stops.
pub struct ControlSocket<Req, Resp> {
    pub requests: mpsc::Receiver<Incoming<Req, Resp>>,
    pub shutdown: CancellationToken,
    pub path: PathBuf,
}

impl<Req, Resp> ControlSocket<Req, Resp> {
    pub fn close(&self) {
        self.shutdown.cancel();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Takes `<socket_dir>/<daemon>.lock`: a second copy of a daemon would otherwise replace the
/// first one's socket, leaving it running unreachable. Within one process the lock is shared:
/// a daemon that restarts its body on reload serves anew while the old task still holds it.
pub fn lock(socket_dir: &Path, daemon: &str) -> Result<Arc<Flock<File>>, String> {
    static HELD: Mutex<BTreeMap<PathBuf, Weak<Flock<File>>>> = Mutex::new(BTreeMap::new());
    let path = socket_dir.join(format!("{daemon}.lock"));
    let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(lock) = held.get(&path).and_then(Weak::upgrade) {
        return Ok(lock);
    }
    std::fs::create_dir_all(socket_dir)
        .map_err(|e| format!("control socket directory {}: {e}", socket_dir.display()))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let lock =
        Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| match errno {
            nix::errno::Errno::EWOULDBLOCK => format!(
                "another {daemon} is running ({} is locked); refusing to take over its control \
                 socket",
                path.display()
            ),
            errno => format!("{}: {errno}", path.display()),
        })?;
    let lock = Arc::new(lock);
    held.insert(path, Arc::downgrade(&lock));
    Ok(lock)
}

/// The gid of `control.group`, which must exist.
pub fn control_group(control: &lvs_config::Control) -> Result<Option<u32>, String> {
    let Some(name) = &control.group else {
        return Ok(None);
    };
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Ok(Some(group.gid.as_raw())),
        Ok(None) => Err(format!(
            "control.group: no group named {name:?} on this host"
        )),
        Err(e) => Err(format!("control.group {name:?}: {e}")),
    }
}

/// Takes the daemon's lock, binds `<socket_dir>/<daemon>.sock` and serves it in a task.
pub fn serve_control<Req, Resp, Ev>(
    control: &lvs_config::Control,
    daemon: &str,
    events: broadcast::Sender<Ev>,
) -> Result<ControlSocket<Req, Resp>, String>
where
    Req: DeserializeOwned + Access + Send + 'static,
    Resp: Serialize + Send + Sync + 'static,
    Ev: Serialize + Clone + Send + Sync + 'static,
{
    let group = control_group(control)?;
    let lock = lock(&control.socket_dir, daemon)?;
    let path = crate::socket_path(&control.socket_dir, daemon);
    let listener = crate::bind_for(&path, group)
        .map_err(|e| format!("control socket {}: {e}", path.display()))?;
    let shutdown = CancellationToken::new();
    let (requests_tx, requests) = mpsc::channel(64);
    let serving = crate::serve(listener, requests_tx, events, shutdown.clone());
    tokio::spawn(async move {
        // Held while the socket is served, i.e. until the daemon stops.
        let _lock = lock;
        serving.await;
    });
    Ok(ControlSocket {
        requests,
        shutdown,
        path,
    })
}
