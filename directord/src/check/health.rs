//! One real server's health, sans-IO: probe outcomes and the time in, state changes and the
//! time of the next probe out.
//!
//! Hysteresis as keepalived and haproxy have it: an up server goes down after `fall`
//! consecutive failures, a down one comes up after `rise` consecutive successes. While a
//! failure streak has not yet reached `fall`, the next probe comes after `retry_delay` instead
//! of the interval (keepalived's retry / delay_before_retry), so a real failure is confirmed
//! quickly without probing healthy servers more often.

use std::time::{Duration, Instant};

use super::spec::Timing;

/// The director itself ran short of a resource while probing (file descriptors, socket
/// buffers, memory): the probe says nothing about the server. Each is a metric label.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    prometheus_client::encoding::EncodeLabelValue,
)]
pub enum Exhausted {
    /// EMFILE: this process's descriptor limit.
    Emfile,
    /// ENFILE: the system's descriptor table.
    Enfile,
    /// ENOBUFS: socket buffers.
    Enobufs,
    /// ENOMEM: kernel memory.
    Enomem,
}

impl Exhausted {
    pub const ALL: [Exhausted; 4] = [
        Exhausted::Emfile,
        Exhausted::Enfile,
        Exhausted::Enobufs,
        Exhausted::Enomem,
    ];

    /// The cause behind an I/O error, when it is the director's own shortage.
    pub fn of(e: &std::io::Error) -> Option<Exhausted> {
        match e.raw_os_error()? {
            libc::EMFILE => Some(Exhausted::Emfile),
            libc::ENFILE => Some(Exhausted::Enfile),
            libc::ENOBUFS => Some(Exhausted::Enobufs),
            libc::ENOMEM => Some(Exhausted::Enomem),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Exhausted::Emfile => "emfile",
            Exhausted::Enfile => "enfile",
            Exhausted::Enobufs => "enobufs",
            Exhausted::Enomem => "enomem",
        }
    }
}

/// Why a probe found the server down. Each is a metric label ([`DownCause::as_str`]), so a
/// dashboard tells a refusing server from a slow one or a wrong answer without reading the
/// details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DownCause {
    /// No answer within the check's timeout.
    Timeout,
    /// The connection was refused (or the port unreachable).
    Refused,
    /// The connection was reset.
    Reset,
    /// The server closed the connection before the answer was complete.
    Closed,
    /// The host or its network is unreachable.
    Unreachable,
    /// Another I/O error.
    Io,
    /// The TLS handshake failed.
    Tls,
    /// The answer did not fit in the check's `max_bytes`.
    ReadLimit,
    /// A status outside the wanted ones (HTTP, SIP, DNS rcode).
    Status,
    /// The answer does not match the check's pattern.
    Mismatch,
    /// The server refused the greeting or the login.
    Rejected,
    /// An answer the check could not read, or asks for what the check does not speak.
    Protocol,
    /// An external check's command failed.
    Command,
    /// The check is `off`.
    Off,
}

impl DownCause {
    pub const ALL: [DownCause; 14] = [
        DownCause::Timeout,
        DownCause::Refused,
        DownCause::Reset,
        DownCause::Closed,
        DownCause::Unreachable,
        DownCause::Io,
        DownCause::Tls,
        DownCause::ReadLimit,
        DownCause::Status,
        DownCause::Mismatch,
        DownCause::Rejected,
        DownCause::Protocol,
        DownCause::Command,
        DownCause::Off,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DownCause::Timeout => "timeout",
            DownCause::Refused => "refused",
            DownCause::Reset => "reset",
            DownCause::Closed => "closed",
            DownCause::Unreachable => "unreachable",
            DownCause::Io => "io",
            DownCause::Tls => "tls",
            DownCause::ReadLimit => "read_limit",
            DownCause::Status => "status",
            DownCause::Mismatch => "mismatch",
            DownCause::Rejected => "rejected",
            DownCause::Protocol => "protocol",
            DownCause::Command => "command",
            DownCause::Off => "off",
        }
    }
}

impl prometheus_client::encoding::EncodeLabelValue for DownCause {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder<'_>,
    ) -> std::fmt::Result {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

/// What a probe says of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Up,
    Down(DownCause),
    /// The probe could not be made: no evidence either way, so no health change.
    Unknown(Exhausted),
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// A weight the probe asks for (dynamic-weight external checks); none keeps the
    /// configured one.
    pub weight: Option<u32>,
    /// Short reason, for logs and status: "connect refused", "status 503 not in 200-299".
    pub detail: String,
}

impl Outcome {
    pub fn up(detail: impl Into<String>) -> Self {
        Outcome {
            verdict: Verdict::Up,
            weight: None,
            detail: detail.into(),
        }
    }

    pub fn down(cause: DownCause, detail: impl Into<String>) -> Self {
        Outcome {
            verdict: Verdict::Down(cause),
            weight: None,
            detail: detail.into(),
        }
    }

    pub fn unknown(cause: Exhausted, detail: impl Into<String>) -> Self {
        Outcome {
            verdict: Verdict::Unknown(cause),
            weight: None,
            detail: detail.into(),
        }
    }

    pub fn is_up(&self) -> bool {
        self.verdict == Verdict::Up
    }

    pub fn is_down(&self) -> bool {
        matches!(self.verdict, Verdict::Down(_))
    }
}

/// The state the daemon must apply: the server went up or down, or, while up, a
/// dynamic-weight check asked for another weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub up: bool,
    pub weight: Option<u32>,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct HealthState {
    timing: Timing,
    up: bool,
    weight: Option<u32>,
    /// Consecutive results that disagree with `up`; reset by one that agrees.
    streak: u32,
    last_result: Option<Instant>,
    last_detail: String,
}

impl HealthState {
    pub fn new(timing: Timing) -> Self {
        HealthState {
            up: timing.initial_up,
            timing,
            weight: None,
            streak: 0,
            last_result: None,
            last_detail: "initial state".to_owned(),
        }
    }

    /// Starts in `up` whatever the timing says: for servers whose state was adopted from the
    /// kernel table at start.
    pub fn with_state(timing: Timing, up: bool) -> Self {
        let mut state = HealthState::new(timing);
        state.up = up;
        state
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    pub fn weight(&self) -> Option<u32> {
        self.weight
    }

    pub fn detail(&self) -> &str {
        &self.last_detail
    }

    /// When the last probe result came in; none before the first.
    pub fn last_result(&self) -> Option<Instant> {
        self.last_result
    }

    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// Takes new timing on reload without forgetting the state or the streak; a streak
    /// already past a lowered threshold takes effect on the next result.
    pub fn set_timing(&mut self, timing: Timing) {
        self.timing = timing;
    }

    pub fn record(&mut self, now: Instant, outcome: Outcome) -> Option<Transition> {
        self.last_result = Some(now);
        let up = match outcome.verdict {
            Verdict::Up => true,
            Verdict::Down(_) => false,
            // Neither a success nor a failure: the streak and the state stay as they were,
            // and the next probe comes at the usual time.
            Verdict::Unknown(_) => {
                self.last_detail = format!("unknown: {}", outcome.detail);
                return None;
            }
        };
        self.last_detail = outcome.detail;
        if up == self.up {
            self.streak = 0;
            if self.up && outcome.weight != self.weight {
                self.weight = outcome.weight;
                return Some(self.transition());
            }
            return None;
        }
        self.streak += 1;
        let needed = if self.up {
            self.timing.fall
        } else {
            self.timing.rise
        };
        if self.streak < needed {
            return None;
        }
        self.up = up;
        self.streak = 0;
        self.weight = if self.up { outcome.weight } else { None };
        Some(self.transition())
    }

    /// The state as a transition would report it, for a caller that must announce it even
    /// though it did not change.
    pub fn current(&self) -> Transition {
        self.transition()
    }

    fn transition(&self) -> Transition {
        Transition {
            up: self.up,
            weight: self.weight,
            detail: self.last_detail.clone(),
        }
    }

    /// When the next probe should start, counted from the last result; `now` when none has
    /// run yet or one is overdue.
    pub fn next_due(&self, now: Instant) -> Instant {
        let Some(last) = self.last_result else {
            return now;
        };
        (last + self.wait()).max(now)
    }

    /// The retry delay while a failure streak might take an up server down, else the interval.
    fn wait(&self) -> Duration {
        let failing_while_up = self.up && self.streak > 0;
        if failing_while_up {
            self.timing.retry_delay
        } else {
            self.timing.interval
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn timing(rise: u32, fall: u32, initial_up: bool) -> Timing {
        Timing {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            rise,
            fall,
            retry_delay: Duration::from_secs(2),
            initial_up,
        }
    }

    fn ok() -> Outcome {
        Outcome::up("ok")
    }

    fn bad() -> Outcome {
        Outcome::down(DownCause::Refused, "connect refused")
    }

    #[test]
    fn falls_after_fall_failures_and_rises_after_rise_successes() {
        let t0 = Instant::now();
        let mut h = HealthState::new(timing(2, 3, true));
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(h.record(at(0), bad()), None);
        assert_eq!(h.record(at(1), bad()), None);
        let down = h.record(at(2), bad()).expect("third failure takes it down");
        assert!(!down.up);
        assert_eq!(down.detail, "connect refused");
        assert!(!h.is_up());
        assert_eq!(h.record(at(3), bad()), None);
        assert_eq!(h.record(at(4), ok()), None);
        assert!(h.record(at(5), ok()).unwrap().up);
    }

    #[test]
    fn an_interrupted_streak_starts_over() {
        let t0 = Instant::now();
        let mut h = HealthState::new(timing(1, 2, true));
        assert_eq!(h.record(t0, bad()), None);
        assert_eq!(h.record(t0, ok()), None);
        assert_eq!(h.record(t0, bad()), None);
        assert!(h.is_up());
        assert!(!h.record(t0, bad()).unwrap().up);
    }

    #[test]
    fn initial_down_needs_rise_successes() {
        let t0 = Instant::now();
        let mut h = HealthState::new(timing(2, 1, false));
        assert!(!h.is_up());
        assert_eq!(h.record(t0, ok()), None);
        assert_eq!(
            h.record(t0, ok()),
            Some(Transition {
                up: true,
                weight: None,
                detail: "ok".into()
            })
        );
    }

    #[test]
    fn confirming_the_initial_state_is_no_transition() {
        let t0 = Instant::now();
        let mut up = HealthState::new(timing(1, 1, true));
        assert_eq!(up.record(t0, ok()), None);
        let mut down = HealthState::new(timing(1, 1, false));
        assert_eq!(down.record(t0, bad()), None);
    }

    #[test]
    fn retries_sooner_while_a_failure_is_unconfirmed() {
        let t0 = Instant::now();
        let mut h = HealthState::new(timing(1, 3, true));
        assert_eq!(h.next_due(t0), t0, "first probe is due at once");
        h.record(t0, ok());
        assert_eq!(h.next_due(t0), t0 + Duration::from_secs(10));
        h.record(t0 + Duration::from_secs(10), bad());
        assert_eq!(h.next_due(t0), t0 + Duration::from_secs(12));
        h.record(t0 + Duration::from_secs(12), bad());
        h.record(t0 + Duration::from_secs(14), bad());
        assert!(!h.is_up());
        assert_eq!(
            h.next_due(t0),
            t0 + Duration::from_secs(24),
            "a confirmed failure goes back to the interval"
        );
        assert_eq!(
            h.next_due(t0 + Duration::from_secs(30)),
            t0 + Duration::from_secs(30),
            "overdue is now"
        );
    }

    #[test]
    fn dynamic_weight_changes_while_up_are_transitions() {
        let t0 = Instant::now();
        let mut h = HealthState::new(timing(1, 1, true));
        let weighted = |w| Outcome {
            verdict: Verdict::Up,
            weight: Some(w),
            detail: format!("exit {}", w + 2),
        };
        assert_eq!(h.record(t0, weighted(5)).unwrap().weight, Some(5));
        assert_eq!(h.record(t0, weighted(5)), None);
        assert_eq!(h.record(t0, weighted(7)).unwrap().weight, Some(7));
        let down = h.record(t0, bad()).unwrap();
        assert_eq!((down.up, down.weight), (false, None));
    }

    // Caught: a probe that failed for want of a descriptor (EMFILE) counted as a failure,
    // so a director short of fds took healthy servers down.
    #[test]
    fn unknown_changes_neither_state_nor_streak() {
        let t0 = Instant::now();
        let mut h = HealthState::new(timing(1, 2, true));
        let emfile = || Outcome::unknown(Exhausted::Emfile, "connect: too many open files");
        assert_eq!(h.record(t0, bad()), None);
        for _ in 0..10 {
            assert_eq!(h.record(t0, emfile()), None);
        }
        assert!(h.is_up());
        assert!(h.detail().starts_with("unknown:"), "{}", h.detail());
        assert_eq!(
            h.next_due(t0),
            t0 + Duration::from_secs(2),
            "a pending failure streak keeps its retry delay"
        );
        assert!(!h.record(t0, bad()).unwrap().up, "the streak was kept");
        let mut down = HealthState::new(timing(1, 1, false));
        assert_eq!(down.record(t0, emfile()), None);
        assert!(!down.is_up());
    }

    #[test]
    fn reload_keeps_state_and_streak() {
        let t0 = Instant::now();
        let mut h = HealthState::new(timing(1, 3, true));
        h.record(t0, bad());
        h.set_timing(timing(1, 2, true));
        assert!(!h.record(t0, bad()).unwrap().up);
    }

    #[test]
    fn with_state_overrides_initial() {
        let h = HealthState::with_state(timing(1, 1, true), false);
        assert!(!h.is_up());
    }
}
