//! External checks: a shell command whose exit code is the verdict (ldirectord's external
//! check, keepalived's MISC_CHECK).

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Command;

use super::human;
use crate::check::health::{DownCause, Exhausted, Outcome, Verdict};
use crate::check::spec::{External, Target};

/// Kills the command's whole process group when dropped: on timeout, and when the
/// scheduler drops a probe of a server removed by a reload, so no grandchild outlives it.
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

pub async fn run(external: &External, target: &Target, timeout: Duration) -> Outcome {
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(&external.command)
        .env("LVS_REAL_IP", target.real.ip().to_string())
        .env("LVS_REAL_PORT", target.real.port().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(vip) = target.virtual_addr {
        command
            .env("LVS_VIRTUAL_IP", vip.ip().to_string())
            .env("LVS_VIRTUAL_PORT", vip.port().to_string());
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        // fork/exec short of descriptors or memory says nothing about the server.
        Err(e) => {
            let detail = format!("cannot run /bin/sh: {e}");
            return match Exhausted::of(&e) {
                Some(cause) => Outcome::unknown(cause, detail),
                None => Outcome::down(DownCause::Io, detail),
            };
        }
    };
    let guard = GroupGuard(child.id().map(|pid| Pid::from_raw(pid as i32)));
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            return Outcome::down(DownCause::Io, format!("waiting for the command: {e}"));
        }
        Err(_) => {
            return Outcome::down(
                DownCause::Timeout,
                format!("timeout after {}, killed", human(timeout)),
            );
        }
    };
    // The shell has exited; whatever it left running in its group goes too, since a check
    // must not leave processes behind.
    drop(guard);
    verdict(status.code(), external.dynamic_weight)
}

/// keepalived misc_dynamic: 0 up at the configured weight, 1 down, 2..=255 up with weight
/// code - 2. Without it: 0 up, anything else down.
pub fn verdict(code: Option<i32>, dynamic_weight: bool) -> Outcome {
    match code {
        None => Outcome::down(DownCause::Command, "killed by a signal"),
        Some(0) => Outcome::up("exit 0"),
        Some(code @ 2..=255) if dynamic_weight => Outcome {
            verdict: Verdict::Up,
            weight: Some(code as u32 - 2),
            detail: format!("exit {code}, weight {}", code - 2),
        },
        Some(code) => Outcome::down(DownCause::Command, format!("exit {code}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert!(verdict(Some(0), false).is_up());
        assert!(verdict(Some(7), false).is_down());
        assert!(verdict(Some(1), true).is_down());
        assert_eq!(verdict(Some(7), true).weight, Some(5));
        assert_eq!(verdict(Some(2), true).weight, Some(0));
        assert!(verdict(None, true).is_down());
    }
}
