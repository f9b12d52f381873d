//! keepalived's VRRP side as a test peer.
//!
//! keepalived runs the protocol in a child process. Killing the parent is not a crash of the
//! router: the child notices and leaves gracefully, sending priority 0. So a crash is SIGKILL
//! to the VRRP child (with respawning off, or the parent would start a new one), and a
//! graceful leave is SIGTERM to the parent.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::netns::Netns;
use crate::process::{Guarded, wait_for};

pub struct Keepalived {
    parent: Guarded,
    vrrp_pid_file: PathBuf,
    /// With its BFD process too ([`Keepalived::start_with_bfd`]).
    bfd_pid_file: Option<PathBuf>,
    /// keepalived's TMPDIR, where it writes keepalived.stats.
    tmp_dir: PathBuf,
}

impl Keepalived {
    /// Starts keepalived's VRRP side in `host` on `config`, its pid files in `dir`, logging
    /// on the console (the test's output).
    pub fn start(host: &Netns, dir: &Path, config: &Path) -> Result<Self, String> {
        Self::spawn(host, dir, config, false, false)
    }

    /// As [`Keepalived::start`], logging nowhere (for benchmarks, whose output is a table).
    pub fn start_quiet(host: &Netns, dir: &Path, config: &Path) -> Result<Self, String> {
        Self::spawn(host, dir, config, true, false)
    }

    /// As [`Keepalived::start_quiet`], with keepalived's BFD process beside its VRRP one (the
    /// config's `bfd_instance`s and `track_bfd`).
    pub fn start_with_bfd(host: &Netns, dir: &Path, config: &Path) -> Result<Self, String> {
        Self::spawn(host, dir, config, true, true)
    }

    fn spawn(
        host: &Netns,
        dir: &Path,
        config: &Path,
        quiet: bool,
        bfd: bool,
    ) -> Result<Self, String> {
        let pid = dir.join(format!("{}.pid", host.name()));
        let vrrp_pid_file = dir.join(format!("{}.vrrp.pid", host.name()));
        let bfd_pid_file = bfd.then(|| dir.join(format!("{}.bfd.pid", host.name())));
        // A previous run's files would name processes that are gone, or someone else's.
        for file in [Some(&pid), Some(&vrrp_pid_file), bfd_pid_file.as_ref()]
            .into_iter()
            .flatten()
        {
            let _ = std::fs::remove_file(file);
        }
        let mut argv: Vec<&OsStr> = vec![
            "keepalived".as_ref(),
            "--dont-fork".as_ref(),
            "--dont-respawn".as_ref(),
            "--use-file".as_ref(),
            config.as_os_str(),
            "--pid".as_ref(),
            pid.as_os_str(),
            "--vrrp_pid".as_ref(),
            vrrp_pid_file.as_os_str(),
        ];
        // --vrrp means VRRP only; without it keepalived also runs BFD (and no checker for
        // a config with no virtual_server).
        match &bfd_pid_file {
            Some(file) => argv.extend(["--bfd_pid".as_ref(), file.as_os_str()]),
            None => argv.push("--vrrp".as_ref()),
        }
        if !quiet {
            argv.push("--log-console".as_ref());
        }
        let mut command = host.command(&argv);
        command.env("TMPDIR", dir);
        if quiet {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let parent = Guarded::spawn(&mut command)?;
        Ok(Keepalived {
            parent,
            vrrp_pid_file,
            bfd_pid_file,
            tmp_dir: dir.to_owned(),
        })
    }

    /// The parent's PID: SIGTERM to it is a graceful leave.
    pub fn pid(&self) -> u32 {
        self.parent.pid()
    }

    /// The PID of the process that speaks VRRP, once it has written its pid file.
    pub fn vrrp_pid(&self) -> Result<libc::pid_t, String> {
        child_pid(&self.vrrp_pid_file)
    }

    /// A crash of the whole machine's keepalived: SIGKILL to the VRRP child, the BFD child
    /// (if started) and the parent, back to back, so none of them says goodbye.
    pub fn crash_all(&self) -> Result<(), String> {
        let mut pids = vec![self.vrrp_pid()?];
        if let Some(file) = &self.bfd_pid_file {
            pids.push(child_pid(file)?);
        }
        pids.push(self.parent.pid() as libc::pid_t);
        for pid in pids {
            // SAFETY: kill(2) has no memory-safety preconditions; the PIDs are this guard's
            // process and the children it wrote pid files for (respawning off keeps them).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        Ok(())
    }

    /// A crash of the router: SIGKILL to the VRRP child, which sends nothing more.
    pub fn crash(&self) -> Result<(), String> {
        let pid = self.vrrp_pid()?;
        // SAFETY: kill(2) has no memory-safety preconditions; the PID is keepalived's VRRP
        // child, which this guard's process started and which respawning off keeps unique.
        if unsafe { libc::kill(pid, libc::SIGKILL) } != 0 {
            return Err(format!(
                "kill -9 {pid}: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }

    /// keepalived's own counters, as SIGUSR2 has its VRRP child write them to
    /// `$TMPDIR/keepalived.stats` (what keepalived-exporter reads).
    pub fn stats(&self) -> Result<String, String> {
        let file = self.tmp_dir.join("keepalived.stats");
        let _ = std::fs::remove_file(&file);
        let pid = self.vrrp_pid()?;
        // SAFETY: kill(2) has no memory-safety preconditions; the PID is keepalived's VRRP
        // child, started by this guard's process.
        if unsafe { libc::kill(pid, libc::SIGUSR2) } != 0 {
            return Err(format!(
                "kill -USR2 {pid}: {}",
                std::io::Error::last_os_error()
            ));
        }
        // Written at once; complete when its last section (Priority Zero) is there.
        wait_for(Duration::from_secs(5), || {
            let text = std::fs::read_to_string(&file).ok()?;
            text.contains("Priority Zero").then_some(text)
        })
        .ok_or_else(|| format!("keepalived wrote no {}", file.display()))
    }

    /// A graceful stop: SIGTERM to the parent, whose VRRP child sends priority 0 and leaves.
    pub fn leave(&self) {
        self.parent.signal(libc::SIGTERM);
    }
}

/// The PID a keepalived child wrote for itself, once written.
fn child_pid(file: &Path) -> Result<libc::pid_t, String> {
    wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    })
    .ok_or_else(|| format!("no pid in {}", file.display()))
}

/// The command line of keepalived's health checker alone (`--check`), in the foreground, its
/// log on stdout, its pid files in `dir`: how the checker benchmarks run it.
pub fn checker_argv(config: &Path, dir: &Path) -> Vec<std::ffi::OsString> {
    vec![
        "keepalived".into(),
        "--dont-fork".into(),
        "--log-console".into(),
        // With no syslogd in the guest, syslog falls back to UML's console, a slow host
        // write per line: a startup's line per server held keepalived's checker for
        // tens of seconds and once wedged the guest. The console copy is enough.
        "--no-syslog".into(),
        "--check".into(),
        "--use-file".into(),
        config.into(),
        "--pid".into(),
        dir.join("keepalived.pid").into(),
        "--checkers_pid".into(),
        dir.join("checkers.pid").into(),
    ]
}
