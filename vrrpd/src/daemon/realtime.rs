//! keepalived's `vrrp_rt_priority`, `vrrp_rlimit_rttime` and `vrrp_no_swap` for vrrpd: the
//! event loop at a real-time priority, so that on a loaded director an advert is sent and a
//! Master_Down timer fires when due rather than when the scheduler gets round to vrrpd; and its
//! memory locked, so neither waits on a page fault from swap.
//!
//! The calling thread (the runtime's, which runs every timer and socket) becomes real-time,
//! and so do the address thread (told by a job) and BFD's (which sets its own). SCHED_RESET_ON_FORK
//! keeps the processes it starts (notify and track scripts) at normal priority, as keepalived
//! resets its scripts' priority.

use std::io;
use std::time::Duration;

use lvs_config::Vrrp;
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
pub enum RealtimeError {
    /// In a systemd unit: RestrictRealtime=no and LimitRTPRIO (or CAP_SYS_NICE) allow it.
    #[error("cannot run at SCHED_RR priority {priority}: {source}")]
    Scheduler { priority: u8, source: io::Error },
    #[error("cannot limit real-time CPU time to {limit:?}: {source}")]
    RttimeLimit { limit: Duration, source: io::Error },
    /// In a systemd unit: LimitMEMLOCK=infinity (or CAP_IPC_LOCK) allows it.
    #[error("cannot lock memory (no_swap): {source}")]
    LockMemory { source: io::Error },
}

impl RealtimeError {
    /// The per-cause counter this failure is counted under.
    pub fn cause(&self) -> &'static str {
        match self {
            RealtimeError::Scheduler { .. } => "realtime_priority_refused",
            RealtimeError::RttimeLimit { .. } => "rlimit_rttime_refused",
            RealtimeError::LockMemory { .. } => "mlockall_refused",
        }
    }
}

/// What [`apply`] last set, so a reload changes only what the config changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    priority: Option<u8>,
    locked: bool,
}

impl Applied {
    /// The SCHED_RR priority in force, if any.
    pub fn priority(self) -> Option<u8> {
        self.priority
    }
}

/// Sets the calling thread's scheduling and the process's memory locking as `vrrp` says,
/// returning what now holds and each setting the kernel refused (vrrpd runs on without it).
pub fn apply(vrrp: &Vrrp, was: Applied) -> (Applied, Vec<RealtimeError>) {
    let mut now = was;
    let mut refused = Vec::new();
    if vrrp.rt_priority != was.priority {
        // The limit first: a real-time loop must never run without it.
        if vrrp.rt_priority.is_some()
            && let Err(e) = limit_rttime(vrrp.rlimit_rttime.get())
        {
            refused.push(e);
        }
        match schedule(vrrp.rt_priority) {
            Ok(()) => {
                now.priority = vrrp.rt_priority;
                match vrrp.rt_priority {
                    Some(p) => info!("running at SCHED_RR priority {p}"),
                    None => info!("running at normal priority"),
                }
            }
            Err(e) => refused.push(e),
        }
    }
    if vrrp.no_swap != was.locked {
        match lock_memory(vrrp.no_swap) {
            Ok(()) => now.locked = vrrp.no_swap,
            Err(e) => refused.push(e),
        }
    }
    for e in &refused {
        warn!("{e}");
    }
    (now, refused)
}

/// The calling thread's scheduling; BFD's thread calls it for itself, as SCHED_RESET_ON_FORK
/// starts every new thread at normal priority.
pub fn schedule(priority: Option<u8>) -> Result<(), RealtimeError> {
    let (policy, level) = match priority {
        Some(p) => (libc::SCHED_RR | libc::SCHED_RESET_ON_FORK, i32::from(p)),
        None => (libc::SCHED_OTHER, 0),
    };
    let param = libc::sched_param {
        sched_priority: level,
    };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param for the call.
    if unsafe { libc::sched_setscheduler(0, policy, &param) } != 0 {
        return Err(RealtimeError::Scheduler {
            priority: priority.unwrap_or(0),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// RLIMIT_RTTIME as keepalived sets it: at half the limit without blocking the kernel warns
/// (SIGXCPU, which the daemon logs and counts), at the whole it kills a runaway loop and
/// systemd restarts vrrpd.
fn limit_rttime(limit: Duration) -> Result<(), RealtimeError> {
    use nix::sys::resource::{Resource, setrlimit};
    let micros = libc::rlim_t::try_from(limit.as_micros()).unwrap_or(libc::RLIM_INFINITY);
    setrlimit(Resource::RLIMIT_RTTIME, micros / 2, micros).map_err(|errno| {
        RealtimeError::RttimeLimit {
            limit,
            source: errno.into(),
        }
    })
}

fn lock_memory(lock: bool) -> Result<(), RealtimeError> {
    use nix::sys::mman::{MlockAllFlags, mlockall, munlockall};
    let done = if lock {
        mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE)
    } else {
        munlockall()
    };
    done.map_err(|errno| RealtimeError::LockMemory {
        source: errno.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> i32 {
        // SAFETY: pid 0 is the calling thread.
        unsafe { libc::sched_getscheduler(0) }
    }

    /// Needs root (CAP_SYS_NICE), as the unit tests of vrrpd's sockets do; the thread is the
    /// test's own and is put back to normal scheduling.
    #[test]
    fn runs_the_thread_round_robin_and_back_and_reports_refusals() {
        let mut vrrp = Vrrp {
            rt_priority: Some(10),
            ..Vrrp::default()
        };
        let (applied, refused) = apply(&vrrp, Applied::default());
        if !nix::unistd::geteuid().is_root() {
            assert!(
                refused
                    .iter()
                    .any(|e| e.cause() == "realtime_priority_refused")
            );
            return;
        }
        assert!(refused.is_empty(), "{refused:?}");
        assert_eq!(policy() & !libc::SCHED_RESET_ON_FORK, libc::SCHED_RR);
        assert_ne!(policy() & libc::SCHED_RESET_ON_FORK, 0);
        // A reload with the same settings changes nothing; without rt_priority it goes back.
        assert_eq!(apply(&vrrp, applied).0, applied);
        vrrp.rt_priority = None;
        let (back, refused) = apply(&vrrp, applied);
        assert!(refused.is_empty(), "{refused:?}");
        assert_eq!(back, Applied::default());
        assert_eq!(policy(), libc::SCHED_OTHER);
    }
}
