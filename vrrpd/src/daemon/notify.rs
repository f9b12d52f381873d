//! Runs the notify scripts and writes the notify FIFO at each state change of an instance or
//! a sync group, as keepalived does (see [`vrrpd::notify`]). Scripts are not waited for: a
//! slow script must not hold an advert back.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use lvs_config::{NotifyScripts, Vrrp, command_words};
use tracing::{info, warn};
use vrrpd::instance::State;
use vrrpd::notify::Notice;

use super::metrics::Metrics;

/// The FIFO and its reader script, with keepalived's `notify_fifo` rules: made (0644) when
/// absent, opened read-write and non-blocking so vrrpd never
/// waits for a reader, refused unless it is a FIFO owned by vrrpd's user.
struct Fifo {
    path: PathBuf,
    file: File,
    script: Option<Child>,
}

/// Why a script did not run or a FIFO line was not written; each cause is counted
/// (`vrrp_notify_failures_total{cause}`).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("not a command line")]
    Command,
    #[error("{0} may be changed by others than root; not run (script_security)")]
    Insecure(PathBuf),
    #[error("{path}: {source}")]
    Unresolved {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Spawn(std::io::Error),
    #[error("notify_fifo: {0}")]
    Fifo(std::io::Error),
}

impl NotifyError {
    fn cause(&self) -> &'static str {
        match self {
            NotifyError::Command => "command",
            NotifyError::Insecure(_) | NotifyError::Unresolved { .. } => "insecure",
            NotifyError::Spawn(_) => "spawn",
            NotifyError::Fifo(_) => "fifo",
        }
    }
}

pub struct Notifier {
    fifo: Option<Fifo>,
    /// The `[vrrp]` keys the FIFO came from, so a reload that keeps them keeps it.
    settings: (Option<PathBuf>, Option<String>),
    /// `[vrrp] script_security`.
    security: bool,
    metrics: Metrics,
}

impl Notifier {
    pub fn new(metrics: Metrics) -> Self {
        Notifier {
            fifo: None,
            settings: (None, None),
            security: false,
            metrics,
        }
    }

    /// Runs `command` with `extra` arguments, reaped by a thread so no zombie is left behind.
    fn spawn(&self, name: &str, command: &str, extra: &[String]) {
        match start(command, extra, self.security) {
            Ok(mut child) => {
                std::thread::spawn(move || child.wait());
            }
            Err(e) => self.failed(name, command, &e),
        }
    }

    fn failed(&self, name: &str, what: &str, e: &NotifyError) {
        warn!(instance = name, "{what}: {e}");
        self.metrics.notify_failed(e.cause());
    }

    /// Opens (or, after a reload that changed it, reopens) the FIFO of `[vrrp] notify_fifo`.
    pub fn configure(&mut self, vrrp: &Vrrp) {
        self.security = vrrp.script_security;
        let settings = (vrrp.notify_fifo.clone(), vrrp.notify_fifo_script.clone());
        if settings == self.settings {
            return;
        }
        self.close();
        self.settings = settings;
        let Some(path) = &vrrp.notify_fifo else {
            return;
        };
        match Fifo::open(
            path,
            vrrp.notify_fifo_script.as_deref(),
            self.security,
            &self.metrics,
        ) {
            Ok(fifo) => self.fifo = Some(fifo),
            Err(e) => warn!("notify_fifo {}: {e}; not used", path.display()),
        }
    }

    /// An instance or group entered `notice.state` from `old`: its per-state script, its
    /// `notify_state` script, its `notify` script (ours: name, old and new state) and the FIFO.
    pub fn notify(
        &mut self,
        scripts: NotifyScripts<'_>,
        legacy: Option<&str>,
        old: State,
        notice: &Notice<'_>,
    ) {
        let per_state = match notice.state {
            State::Master => scripts.master,
            State::Backup => scripts.backup,
            State::Fault => scripts.fault,
            State::Initialize => scripts.stop,
        };
        if let Some(command) = per_state {
            self.spawn(notice.name, command, &[]);
        }
        if let Some(command) = scripts.state {
            self.spawn(notice.name, command, &notice.arguments());
        }
        if let Some(command) = legacy {
            let args = [
                notice.name.to_owned(),
                old.as_str().to_owned(),
                notice.state.as_str().to_owned(),
            ];
            self.spawn(notice.name, command, &args);
        }
        if let Some(fifo) = &mut self.fifo
            && let Err(e) = fifo.write(&notice.fifo_line())
        {
            let what = format!("notify_fifo {}", fifo.path.display());
            self.failed(notice.name, &what, &e);
        }
    }

    /// Ends the FIFO script. The FIFO stays, as keepalived 2.2.7 leaves it (seen in
    /// `vrrp_import`'s notify test): a reader that reopens it waits for the next run.
    pub fn close(&mut self) {
        let Some(mut fifo) = self.fifo.take() else {
            return;
        };
        if let Some(mut child) = fifo.script.take() {
            let _ = child.kill();
            std::thread::spawn(move || child.wait());
        }
    }
}

/// Why the notify FIFO is not used.
#[derive(Debug, thiserror::Error)]
enum FifoError {
    #[error("cannot make it: {0}")]
    Make(nix::errno::Errno),
    #[error("cannot open it: {0}")]
    Open(std::io::Error),
    #[error("not a FIFO owned by vrrpd's user")]
    NotOurs,
}

impl Fifo {
    fn open(
        path: &Path,
        script: Option<&str>,
        security: bool,
        metrics: &Metrics,
    ) -> Result<Fifo, FifoError> {
        let made = match nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o644))
        {
            Ok(()) => true,
            Err(nix::errno::Errno::EEXIST) => false,
            Err(e) => return Err(FifoError::Make(e)),
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .open(path)
            .map_err(FifoError::Open)?;
        let meta = file.metadata().map_err(FifoError::Open)?;
        // Anyone else's FIFO (or a plain file put there) could feed a reader false states.
        if !meta.file_type().is_fifo() || meta.uid() != nix::unistd::geteuid().as_raw() {
            if made {
                let _ = std::fs::remove_file(path);
            }
            return Err(FifoError::NotOurs);
        }
        let script = script.and_then(|command| {
            let path = path.display().to_string();
            let child = start(command, &[path], security)
                .map_err(|e| {
                    warn!("notify_fifo_script {command}: {e}");
                    metrics.notify_failed(e.cause());
                })
                .ok()?;
            info!("notify_fifo_script {command} started");
            Some(child)
        });
        Ok(Fifo {
            path: path.to_owned(),
            file,
            script,
        })
    }

    fn write(&mut self, line: &str) -> Result<(), NotifyError> {
        // A full FIFO (no reader keeping up) loses the line, as in keepalived: vrrpd must
        // not block on it.
        match self.file.write_all(line.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => Err(NotifyError::Fifo(e)),
            _ => Ok(()),
        }
    }
}

fn start(command: &str, extra: &[String], security: bool) -> Result<Child, NotifyError> {
    let words = command_words(command).ok_or(NotifyError::Command)?;
    if security {
        secure(Path::new(&words[0]))?;
    }
    Command::new(&words[0])
        .args(&words[1..])
        .args(extra)
        .spawn()
        .map_err(NotifyError::Spawn)
}

/// keepalived's `enable_script_security` test (core/notify.c, check_security): every
/// component of the script's real path, from `/`, is owned by root and, unless it is a
/// directory with the sticky bit, writable neither by a group other than root's nor by all.
fn secure(program: &Path) -> Result<(), NotifyError> {
    let found = if program.is_absolute() || program.components().count() > 1 {
        program.to_owned()
    } else {
        std::env::var_os("PATH")
            .and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(program))
                    .find(|candidate| candidate.is_file())
            })
            .ok_or_else(|| NotifyError::Insecure(program.to_owned()))?
    };
    let unresolved = |path: &Path| {
        let path = path.to_owned();
        move |source| NotifyError::Unresolved { path, source }
    };
    let real = std::fs::canonicalize(&found).map_err(unresolved(&found))?;
    for path in real.ancestors().collect::<Vec<_>>().into_iter().rev() {
        let meta = std::fs::symlink_metadata(path).map_err(unresolved(path))?;
        let mode = meta.mode();
        let sticky_dir = meta.is_dir() && mode & libc::S_ISVTX != 0;
        let writable = (meta.gid() != 0 && mode & libc::S_IWGRP != 0) || mode & libc::S_IWOTH != 0;
        if meta.uid() != 0 || (!sticky_dir && writable) {
            return Err(NotifyError::Insecure(path.to_owned()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// As keepalived: a root-owned script in root-owned directories runs; one that a group
    /// other than root's or everyone may write, or that sits in such a directory, does not.
    /// (Root-owned files: the test runs as root, as vrrpd does; elsewhere it checks nothing.)
    #[test]
    fn only_scripts_no_one_but_root_can_change_pass() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("notify.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let mode = |path: &Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        mode(&script, 0o755);
        assert!(secure(&script).is_ok());
        mode(&script, 0o757);
        assert!(secure(&script).is_err());
        mode(&script, 0o755);
        mode(dir.path(), 0o777);
        assert!(secure(&script).is_err(), "a world-writable directory");
        mode(dir.path(), 0o1777);
        assert!(secure(&script).is_ok(), "the sticky bit, as /tmp");
        assert!(secure(Path::new("sh")).is_ok(), "found on PATH");
        let refused = secure(&dir.path().join("missing")).map_err(|e| e.cause());
        assert_eq!(
            refused.err(),
            Some("insecure"),
            "what cannot be checked is not run"
        );
    }
}
