//! Rate limiting for log lines that repeat per packet or per event: the first occurrence of a
//! key is logged at once, the repeats within `interval` are only counted, and a summary of
//! them is due when the interval ends. The daemon counts every occurrence in its metrics
//! regardless; this only decides what reaches the journal.
//!
//! Sans-IO: every call takes `now`; the daemon logs what [`Repeats::hit`] and
//! [`Repeats::summaries`] return, and calls the latter from a timer of its own (its
//! housekeeping tick, or [`Repeats::poll_timeout`]).

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How long repeats of one key are only counted before a summary, when a daemon has no reason
/// to choose otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Window {
    ends: Instant,
    suppressed: u64,
}

/// Repeats of log lines, by key (e.g. instance and cause).
#[derive(Debug)]
pub struct Repeats<K> {
    interval: Duration,
    windows: HashMap<K, Window>,
}

impl<K: Hash + Eq + Clone> Repeats<K> {
    pub fn new(interval: Duration) -> Self {
        Repeats {
            interval,
            windows: HashMap::new(),
        }
    }

    /// One occurrence of `key`: `Some(n)` when it is to be logged now (the first since its
    /// last window ended; `n` repeats of that window went unlogged and no summary said so yet,
    /// so the line should say it), `None` when it is only counted toward the next summary.
    pub fn hit(&mut self, key: K, now: Instant) -> Option<u64> {
        match self.windows.get_mut(&key) {
            Some(window) if now < window.ends => {
                window.suppressed += 1;
                None
            }
            found => {
                let unlogged = found.map_or(0, |w| w.suppressed);
                self.windows.insert(
                    key,
                    Window {
                        ends: now + self.interval,
                        suppressed: 0,
                    },
                );
                Some(unlogged)
            }
        }
    }

    /// The keys whose window has ended, with how many repeats went unlogged in it (only those
    /// with any); their windows close, so the next occurrence is logged at once.
    pub fn summaries(&mut self, now: Instant) -> Vec<(K, u64)> {
        let mut due = Vec::new();
        self.windows.retain(|key, window| {
            if now < window.ends {
                return true;
            }
            if window.suppressed > 0 {
                due.push((key.clone(), window.suppressed));
            }
            false
        });
        due
    }

    /// When the next window ends.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.windows.values().map(|w| w.ends).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_is_logged_repeats_are_summed_once_per_interval() {
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        let mut repeats = Repeats::new(10 * second);
        assert_eq!(repeats.hit("auth", t0), Some(0));
        for i in 1..=500 {
            assert_eq!(repeats.hit("auth", t0 + i * second / 100), None);
        }
        assert_eq!(repeats.hit("ttl", t0 + second), Some(0), "a key of its own");
        assert_eq!(repeats.poll_timeout(), Some(t0 + 10 * second));
        assert!(repeats.summaries(t0 + 9 * second).is_empty());
        let mut due = repeats.summaries(t0 + 10 * second);
        due.sort_unstable();
        assert_eq!(due, vec![("auth", 500)]);
        assert!(
            repeats.summaries(t0 + 11 * second).is_empty(),
            "ttl had no repeats"
        );
        assert_eq!(
            repeats.hit("auth", t0 + 12 * second),
            Some(0),
            "logged at once"
        );
        assert_eq!(repeats.poll_timeout(), Some(t0 + 22 * second));
    }

    #[test]
    fn a_hit_after_the_window_without_a_summary_call_carries_its_count() {
        let t0 = Instant::now();
        let mut repeats = Repeats::new(Duration::from_secs(1));
        assert_eq!(repeats.hit(1, t0), Some(0));
        assert_eq!(repeats.hit(1, t0), None);
        assert_eq!(
            repeats.hit(1, t0 + Duration::from_secs(2)),
            Some(1),
            "the repeat no summary reported is told with the next line"
        );
        assert!(repeats.summaries(t0 + Duration::from_secs(2)).is_empty());
    }
}
