//! Processes a test starts, ended by PID when their guard drops, and commands whose failure is
//! an error with the command line and its output.

use std::ffi::OsStr;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Finds a program on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// A command line as a shell would print it, for error messages.
pub fn describe(command: &Command) -> String {
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    words.extend(command.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

/// Runs to completion; a non-zero exit is an error carrying stdout and stderr.
pub fn run(command: &mut Command) -> Result<Output, String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `{}`: {e}", describe(command)))?;
    if !output.status.success() {
        return Err(format!(
            "`{}` failed ({}):\n{}{}",
            describe(command),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(output)
}

/// Runs to completion and returns stdout as text.
pub fn run_stdout(command: &mut Command) -> Result<String, String> {
    run(command).map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Builds a command from a program and its arguments.
pub fn command<S: AsRef<OsStr>>(argv: &[S]) -> Command {
    let (program, args) = argv.split_first().expect("a command needs a program");
    let mut command = Command::new(program);
    command.args(args);
    command
}

/// A child process that is ended (SIGTERM, then SIGKILL) when dropped. It runs in its own
/// process group, so the whole group it started goes with it.
#[derive(Debug)]
pub struct Guarded {
    child: Child,
    label: String,
}

impl Guarded {
    pub fn spawn(command: &mut Command) -> Result<Self, String> {
        let label = describe(command);
        let child = command
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start `{label}`: {e}"))?;
        Ok(Guarded { child, label })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Sends a signal to the process itself (not its group), e.g. SIGKILL to simulate a crash.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on the PID of a child we spawned and have not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }

    /// Exit status if it has ended.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `limit`; on expiry ends it and reports a timeout.
    pub fn wait_timeout(&mut self, limit: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_status() {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                self.end();
                return Err(format!("`{}` did not finish within {limit:?}", self.label));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM to its process group, SIGKILL after a grace period.
    pub fn end(&mut self) {
        if self.try_status().is_some() {
            return;
        }
        let group = self.child.id() as libc::pid_t;
        signal_group(group, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if self.try_status().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        signal_group(group, libc::SIGKILL);
        let _ = self.child.wait();
    }
}

fn signal_group(group: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) with a negative PID signals the process group we created for the child;
    // it has no memory-safety preconditions.
    let rc = unsafe { libc::kill(-group, signal) };
    if rc != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH) {
        eprintln!(
            "cannot signal process group {group}: {}",
            io::Error::last_os_error()
        );
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.end();
    }
}

/// Polls `probe` until it returns `Some` or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
