//! A deadline timer on a timerfd. tokio's timer wheel fires on whole milliseconds, rounded up,
//! and that lateness lands directly on the failover time (Master_Down) and on the advert
//! schedule; a timerfd is an hrtimer and fires within microseconds of the deadline.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Instant;

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::unix::AsyncFd;

pub struct PreciseTimer {
    fd: AsyncFd<Fd>,
}

/// nix's TimerFd as tokio's AsyncFd takes it (nix gives AsFd, tokio wants AsRawFd).
struct Fd(TimerFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl PreciseTimer {
    pub fn new() -> io::Result<Self> {
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        // SAFETY: the descriptor is owned by the AsyncFd from here on (TimerFd holds it as an
        // OwnedFd), so it stays open and the same for the AsyncFd's whole life.
        let fd = unsafe { AsyncFd::register(Fd(timer)) }.map_err(io::Error::from)?;
        Ok(PreciseTimer { fd })
    }

    /// Completes at `deadline`. Re-arming (a new call) replaces any earlier deadline.
    pub async fn sleep_until(&self, deadline: Instant) -> io::Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        // Setting the time also clears any expiration still unread.
        self.fd.get_ref().0.set(
            Expiration::OneShot(TimeSpec::from_duration(left)),
            TimerSetTimeFlags::empty(),
        )?;
        loop {
            let mut guard = self.fd.readable().await?;
            let read = guard.try_io(|fd| {
                let mut expirations = [0u8; 8];
                nix::unistd::read(fd.get_ref().0.as_fd(), &mut expirations)
                    .map(drop)
                    .map_err(io::Error::from)
            });
            match read {
                Ok(result) => return result,
                // Readiness left over from an earlier arming: wait for this one.
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn fires_at_the_deadline_and_rearms() {
        let timer = PreciseTimer::new().unwrap();
        for wait in [Duration::from_millis(3), Duration::from_micros(1500)] {
            let deadline = Instant::now() + wait;
            timer.sleep_until(deadline).await.unwrap();
            let now = Instant::now();
            assert!(now >= deadline, "fired {:?} early", deadline - now);
        }
        // A deadline already passed completes at once.
        let past = Instant::now();
        timer.sleep_until(past).await.unwrap();
    }
}
