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

/// The FIFO and its reader script, with keepalived's `notify_fifo` rules: made (0644) when
/// absent, opened read-write and non-blocking so vrrpd never
/// waits for a reader, refused unless it is a FIFO owned by vrrpd's user.
struct Fifo {
    path: PathBuf,
    file: File,
    script: Option<Child>,
}

#[derive(Default)]
pub struct Notifier {
    fifo: Option<Fifo>,
    /// The `[vrrp]` keys the FIFO came from, so a reload that keeps them keeps it.
    settings: (Option<PathBuf>, Option<String>),
}

impl Notifier {
    /// Opens (or, after a reload that changed it, reopens) the FIFO of `[vrrp] notify_fifo`.
    pub fn configure(&mut self, vrrp: &Vrrp) {
        let settings = (vrrp.notify_fifo.clone(), vrrp.notify_fifo_script.clone());
        if settings == self.settings {
            return;
        }
        self.close();
        self.settings = settings;
        let Some(path) = &vrrp.notify_fifo else {
            return;
        };
        match Fifo::open(path, vrrp.notify_fifo_script.as_deref()) {
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
            spawn(notice.name, command, &[]);
        }
        if let Some(command) = scripts.state {
            spawn(notice.name, command, &notice.arguments());
        }
        if let Some(command) = legacy {
            let args = [
                notice.name.to_owned(),
                old.as_str().to_owned(),
                notice.state.as_str().to_owned(),
            ];
            spawn(notice.name, command, &args);
        }
        if let Some(fifo) = &mut self.fifo {
            fifo.write(&notice.fifo_line());
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

impl Fifo {
    fn open(path: &Path, script: Option<&str>) -> Result<Fifo, String> {
        let made = match nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o644))
        {
            Ok(()) => true,
            Err(nix::errno::Errno::EEXIST) => false,
            Err(e) => return Err(format!("cannot make it: {e}")),
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| format!("cannot open it: {e}"))?;
        let meta = file.metadata().map_err(|e| e.to_string())?;
        // Anyone else's FIFO (or a plain file put there) could feed a reader false states.
        if !meta.file_type().is_fifo() || meta.uid() != nix::unistd::geteuid().as_raw() {
            if made {
                let _ = std::fs::remove_file(path);
            }
            return Err("not a FIFO owned by vrrpd's user".to_owned());
        }
        let script = script.and_then(|command| {
            let path = path.display().to_string();
            let child = start(command, &[path])
                .map_err(|e| warn!("notify_fifo_script {command}: {e}"))
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

    fn write(&mut self, line: &str) {
        // A full FIFO (no reader keeping up) loses the line, as in keepalived: vrrpd must
        // not block on it.
        if let Err(e) = self.file.write_all(line.as_bytes())
            && e.kind() != std::io::ErrorKind::WouldBlock
        {
            warn!("notify_fifo {}: {e}", self.path.display());
        }
    }
}

fn start(command: &str, extra: &[String]) -> Result<Child, String> {
    let words = command_words(command).ok_or("not a command line")?;
    Command::new(&words[0])
        .args(&words[1..])
        .args(extra)
        .spawn()
        .map_err(|e| e.to_string())
}

/// Runs `command` with `extra` arguments, reaped by a thread so no zombie is left behind.
fn spawn(name: &str, command: &str, extra: &[String]) {
    match start(command, extra) {
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(e) => warn!(instance = name, "notify {command}: {e}"),
    }
}
