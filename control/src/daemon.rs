//! What every daemon's `main` does the same way: logging, loading the config, the runtime,
//! the control socket.

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::io;
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
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::registry::LookupSpan;

use crate::{Access, Incoming};

/// Lines on stderr, the level from `LVS_LOG` (tracing's env-filter syntax), "info" by
/// default. Under systemd (stderr is the journal's stream, [`journal_stream`]) each line starts
/// with its sd-daemon priority (`<4>` for a warning) and has no timestamp, since journald
/// stamps lines itself: `journalctl -p warning` then finds warnings. Elsewhere, plain lines
/// with a timestamp.
///
/// A formatter of our own rather than tracing-journald: it keeps writing to stderr (no
/// journal socket to find or lose, output the same under `systemd-run`, in tests and in a
/// container), needs no new dependency, and journald already turns a stream's `<N>` prefix
/// into the entry's priority.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LVS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stderr);
    if journal_stream() {
        builder.event_format(JournalFormat).init();
    } else {
        builder.init();
    }
}

/// Whether stderr is connected to the journal: systemd sets `JOURNAL_STREAM` to the
/// `device:inode` of the stream it connected, and a child whose stderr was redirected
/// elsewhere inherits the variable but not the stream.
pub fn journal_stream() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    match nix::sys::stat::fstat(std::io::stderr()) {
        Ok(stat) => stream_matches(&value.to_string_lossy(), stat.st_dev, stat.st_ino),
        Err(_) => false,
    }
}

fn stream_matches(journal_stream: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = journal_stream.trim().split_once(':') else {
        return false;
    };
    d.parse() == Ok(dev) && i.parse() == Ok(ino)
}

/// `<priority>target: message fields`, one line per event (sd-daemon(3) priorities).
pub struct JournalFormat;

impl JournalFormat {
    pub fn priority(level: tracing::Level) -> u8 {
        match level {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            tracing::Level::DEBUG | tracing::Level::TRACE => 7,
        }
    }
}

impl<S, N> FormatEvent<S, N> for JournalFormat
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let metadata = event.metadata();
        write!(
            writer,
            "<{}>{}: ",
            Self::priority(*metadata.level()),
            metadata.target()
        )?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

// The command line every daemon parses is lvs-config's, where the manual pages read it too.
pub use lvs_config::cli::{Args, NoFlags};

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
pub fn main<F, Fut, E>(
    daemon: &str,
    args: &lvs_config::ConfigArgs,
    check: bool,
    body: F,
) -> ExitCode
where
    F: FnOnce(lvs_config::Config, PathBuf) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
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
        Err(e) => fatal(daemon, &e.to_string()),
    }
}

/// The error a daemon stops on, on stderr: at error priority under the journal, so
/// `journalctl -p err` finds why a unit failed.
pub fn fatal(daemon: &str, error: &str) -> ExitCode {
    let priority = if journal_stream() { "<3>" } else { "" };
    eprintln!("{priority}{daemon}: {error}");
    ExitCode::FAILURE
}

/// The soft descriptor limit up to the hard one (see [`crate::limits::raise_fd_limit`]),
/// logged: a daemon left at systemd's 1024 is what made probes fail with EMFILE.
pub fn raise_fd_limit() {
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

/// Why a daemon could not set up what every daemon has: its lock, its control socket, its
/// metrics endpoint, its signal handlers.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("control socket directory {}: {source}", path.display())]
    SocketDir { path: PathBuf, source: io::Error },
    #[error("{}: {source}", path.display())]
    LockFile { path: PathBuf, source: io::Error },
    #[error(
        "another {daemon} is running ({} is locked); refusing to take over its control socket",
        path.display()
    )]
    AlreadyRunning { daemon: String, path: PathBuf },
    #[error("{}: {errno}", path.display())]
    Lock {
        path: PathBuf,
        errno: nix::errno::Errno,
    },
    #[error("control.group: no group named {0:?} on this host")]
    NoGroup(String),
    #[error("control.group {name:?}: {errno}")]
    Group {
        name: String,
        errno: nix::errno::Errno,
    },
    #[error("control socket {}: {source}", path.display())]
    Bind { path: PathBuf, source: io::Error },
    #[error("metrics on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: io::Error,
    },
    /// A signal handler could not be installed.
    #[error(transparent)]
    Signal(io::Error),
}

/// Takes `<socket_dir>/<daemon>.lock`: a second copy of a daemon would otherwise replace the
/// first one's socket, leaving it running unreachable. Within one process the lock is shared:
/// a daemon that restarts its body on reload serves anew while the old task still holds it.
pub fn lock(socket_dir: &Path, daemon: &str) -> Result<Arc<Flock<File>>, SetupError> {
    static HELD: Mutex<BTreeMap<PathBuf, Weak<Flock<File>>>> = Mutex::new(BTreeMap::new());
    let path = socket_dir.join(format!("{daemon}.lock"));
    let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(lock) = held.get(&path).and_then(Weak::upgrade) {
        return Ok(lock);
    }
    std::fs::create_dir_all(socket_dir).map_err(|source| SetupError::SocketDir {
        path: socket_dir.to_owned(),
        source,
    })?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|source| SetupError::LockFile {
            path: path.clone(),
            source,
        })?;
    let lock =
        Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| match errno {
            nix::errno::Errno::EWOULDBLOCK => SetupError::AlreadyRunning {
                daemon: daemon.to_owned(),
                path: path.clone(),
            },
            errno => SetupError::Lock {
                path: path.clone(),
                errno,
            },
        })?;
    let lock = Arc::new(lock);
    held.insert(path, Arc::downgrade(&lock));
    Ok(lock)
}

/// The gid of `control.group`, which must exist.
pub fn control_group(control: &lvs_config::Control) -> Result<Option<u32>, SetupError> {
    let Some(name) = &control.group else {
        return Ok(None);
    };
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Ok(Some(group.gid.as_raw())),
        Ok(None) => Err(SetupError::NoGroup(name.clone())),
        Err(errno) => Err(SetupError::Group {
            name: name.clone(),
            errno,
        }),
    }
}

/// Takes the daemon's lock, binds `<socket_dir>/<daemon>.sock` and serves it in a task.
pub fn serve_control<Req, Resp, Ev>(
    control: &lvs_config::Control,
    daemon: &str,
    events: broadcast::Sender<Ev>,
) -> Result<ControlSocket<Req, Resp>, SetupError>
where
    Req: DeserializeOwned + Access + Send + 'static,
    Resp: Serialize + Send + Sync + 'static,
    Ev: Serialize + Clone + Send + Sync + 'static,
{
    let group = control_group(control)?;
    let lock = lock(&control.socket_dir, daemon)?;
    let path = crate::socket_path(&control.socket_dir, daemon);
    let listener = crate::bind_for(&path, group).map_err(|source| SetupError::Bind {
        path: path.clone(),
        source,
    })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    // Caught: under journald every line carried a second timestamp and no priority, so
    // `journalctl -p warning` found no warnings.
    #[test]
    fn journal_lines_carry_the_priority_and_no_timestamp() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .event_format(JournalFormat)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!("table refused");
            tracing::warn!(real = "192.0.2.10:80", "probe failed");
            tracing::info!("reloaded");
            tracing::debug!("detail");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let target = module_path!();
        assert_eq!(
            lines,
            [
                format!("<3>{target}: table refused"),
                format!("<4>{target}: probe failed real=\"192.0.2.10:80\""),
                format!("<6>{target}: reloaded"),
                format!("<7>{target}: detail"),
            ]
        );
    }

    #[test]
    fn the_journal_is_stderr_only_when_device_and_inode_match() {
        assert!(stream_matches("8:1234", 8, 1234));
        assert!(stream_matches("8:1234\n", 8, 1234));
        assert!(!stream_matches("8:1235", 8, 1234));
        assert!(!stream_matches("9:1234", 8, 1234));
        assert!(!stream_matches("garbage", 8, 1234));
        assert!(!stream_matches("", 8, 1234));
    }
}
