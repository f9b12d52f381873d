//! Resource limits every daemon and listener shares: the descriptor limit raised at start,
//! accept backoff, and rate-limited logging of repeats.

use std::io;
use std::time::{Duration, Instant};

/// The director's own shortage of a resource (descriptors, socket buffers, memory), as
/// opposed to an error about the peer.
pub fn is_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Raises the soft RLIMIT_NOFILE to the hard limit: systemd starts services at a soft 1024,
/// which a checker of a few hundred servers (each probe one socket) plus the listeners can
/// exhaust. Returns the limit before and after.
pub fn raise_fd_limit() -> io::Result<(u64, u64)> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (before, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if before >= hard {
        return Ok((before, before));
    }
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    Ok((before, hard))
}

/// At most one line per `every`, and how many were held back meanwhile: a condition that
/// repeats per packet or per probe is said once, with a count, not thousands of times.
#[derive(Debug, Clone)]
pub struct RateLimit {
    every: Duration,
    last: Option<Instant>,
    held: u64,
}

impl RateLimit {
    pub const fn new(every: Duration) -> Self {
        RateLimit {
            every,
            last: None,
            held: 0,
        }
    }

    /// `Some(held back since the last line)` when a line may be logged now.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.every => {
                self.held += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held))
            }
        }
    }
}

/// What a listener does after a failed accept, sans-IO: how long to pause and whether to log.
/// Without a pause, an accept failing with EMFILE returns at once with the connection still
/// queued, and the loop spins a CPU at 100 %.
#[derive(Debug, Clone)]
pub struct AcceptBackoff {
    pause: Duration,
    log: RateLimit,
}

/// The first pause after an exhaustion error; doubled on each further one up to [`MAX_PAUSE`].
pub const MIN_PAUSE: Duration = Duration::from_millis(10);
pub const MAX_PAUSE: Duration = Duration::from_secs(1);

/// What to do about one failed accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptFailure {
    /// Wait this long before the next accept.
    pub pause: Duration,
    /// A line to log now (rate-limited), with how many were held back.
    pub log: Option<String>,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        AcceptBackoff {
            pause: MIN_PAUSE,
            log: RateLimit::new(Duration::from_secs(10)),
        }
    }
}

impl AcceptBackoff {
    pub fn failed(&mut self, now: Instant, e: &io::Error) -> AcceptFailure {
        // A connection that died in the queue, or a signal: take the next one at once.
        if matches!(e.raw_os_error(), Some(libc::ECONNABORTED | libc::EINTR)) {
            return AcceptFailure {
                pause: Duration::ZERO,
                log: None,
            };
        }
        let pause = self.pause;
        if is_exhaustion(e) {
            self.pause = (self.pause * 2).min(MAX_PAUSE);
        }
        let log = self.log.allow(now).map(|held| {
            let mut line = format!("accept: {e}; pausing {}ms", pause.as_millis());
            if held > 0 {
                line.push_str(&format!(" ({held} more since the last report)"));
            }
            line
        });
        AcceptFailure { pause, log }
    }

    pub fn succeeded(&mut self) {
        self.pause = MIN_PAUSE;
    }

    /// [`AcceptBackoff::failed`], logging and sleeping.
    pub async fn pause_after(&mut self, what: &str, e: &io::Error) {
        let failure = self.failed(Instant::now(), e);
        if let Some(line) = failure.log {
            tracing::warn!("{what} {line}");
        }
        if !failure.pause.is_zero() {
            tokio::time::sleep(failure.pause).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_said_once_per_period_with_a_count() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(Duration::from_secs(10));
        assert_eq!(limit.allow(t0), Some(0));
        for s in 1..10 {
            assert_eq!(limit.allow(t0 + Duration::from_secs(s)), None);
        }
        assert_eq!(limit.allow(t0 + Duration::from_secs(10)), Some(9));
        assert_eq!(limit.allow(t0 + Duration::from_secs(11)), None);
    }

    #[test]
    fn exhaustion_backs_off_doubling_and_success_resets() {
        let t0 = Instant::now();
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let mut backoff = AcceptBackoff::default();
        let first = backoff.failed(t0, &emfile);
        assert_eq!(first.pause, MIN_PAUSE);
        assert!(first.log.is_some());
        let second = backoff.failed(t0, &emfile);
        assert_eq!(second.pause, MIN_PAUSE * 2);
        assert_eq!(second.log, None, "rate-limited");
        for _ in 0..20 {
            backoff.failed(t0, &emfile);
        }
        assert_eq!(backoff.failed(t0, &emfile).pause, MAX_PAUSE);
        backoff.succeeded();
        assert_eq!(backoff.failed(t0, &emfile).pause, MIN_PAUSE);
        let aborted = io::Error::from_raw_os_error(libc::ECONNABORTED);
        assert_eq!(backoff.failed(t0, &aborted).pause, Duration::ZERO);
    }
}
