//! Warnings for the drops an operator must hear of (a stranger on the sync link, a peer with
//! another key, a full mirror): said when they start, then at most once per
//! [`WARN_EVERY`] with the count since, so a flood cannot flood the journal too. Other drops
//! (malformed datagrams and the like) are left to the counters.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use lvs_control::syncd::Counters;

pub const WARN_EVERY: Duration = Duration::from_secs(60);

/// The causes worth a warning, with what to say about them.
const LOUD: &[(&str, &str)] = &[
    (
        "group_source",
        "messages to the sync group dropped: from senders neither in group_sources (default: \
         the sync interface's subnets) nor peers",
    ),
    (
        "unknown_peer",
        "unicast sync messages dropped: from addresses that are no configured peer",
    ),
    (
        "auth_bad_tag",
        "unicast datagrams dropped: their authentication tag is wrong (does the peer's \
         key_file hold the same key?)",
    ),
    (
        "auth_no_tag",
        "unicast datagrams dropped: too short to carry an authentication tag (has the peer \
         no key_file?)",
    ),
    (
        "mirror_full",
        "new entries refused: the mirror holds max_entries (held entries still update)",
    ),
];

#[derive(Debug, Default)]
pub struct DropWarnings {
    /// Per cause: the count last said, and when.
    said: HashMap<&'static str, (u64, Instant)>,
}

impl DropWarnings {
    /// The warnings due now, given the counters.
    pub fn due(&mut self, counters: &Counters, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        for (cause, what) in LOUD {
            let count = counters.drops.get(*cause).copied().unwrap_or(0);
            let (before, at) = match self.said.get(cause) {
                Some(&(before, at)) => (before, Some(at)),
                None => (0, None),
            };
            if count > before && at.is_none_or(|at| now.saturating_duration_since(at) >= WARN_EVERY)
            {
                out.push(format!(
                    "{} {what} (drops{{cause=\"{cause}\"}})",
                    count - before
                ));
                self.said.insert(cause, (count, now));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_is_said_when_it_starts_then_once_a_minute_with_the_count_since() {
        let t0 = Instant::now();
        let mut warnings = DropWarnings::default();
        let mut counters = Counters::default();
        assert!(warnings.due(&counters, t0).is_empty());
        counters.drops.insert("group_source".to_owned(), 1);
        counters.drops.insert("size_mismatch".to_owned(), 5);
        let said = warnings.due(&counters, t0);
        assert_eq!(said.len(), 1);
        assert!(said[0].starts_with("1 messages to the sync group dropped"));
        counters.drops.insert("group_source".to_owned(), 1000);
        assert!(
            warnings
                .due(&counters, t0 + Duration::from_secs(59))
                .is_empty()
        );
        let said = warnings.due(&counters, t0 + WARN_EVERY);
        assert_eq!(said.len(), 1);
        assert!(said[0].starts_with("999 "), "{said:?}");
        // Quiet while nothing more is dropped.
        assert!(warnings.due(&counters, t0 + 3 * WARN_EVERY).is_empty());
    }
}
