//! Director side: per real server, agent replies over time become the
//! weight and state directord should apply. Sans-IO: the caller feeds
//! replies, failures and timer expiries with `now`, applies the returned
//! [`Decision`] and arms a timer for [`ServerPolicy::poll_timeout`].
//!
//! Rules, in the order they apply to a reply carrying a weight:
//! 1. the percentage is clamped to `[min_weight_percent, max_weight_percent]`;
//! 2. EWMA: `smoothed = a * reported + (1 - a) * smoothed`, starting from
//!    100% (the configured weight, which is where a server starts);
//! 3. target = configured * smoothed / 100, rounded, kept within the
//!    min/max weights; it is never rounded down to 0 while the smoothed
//!    percentage is above 0 (weight 0 means drain to IPVS, and only an
//!    explicit `drain`, or an explicit 0% with a 0% minimum, should drain);
//! 4. hysteresis: a target closer to the current weight than
//!    `hysteresis_percent` of the configured weight is ignored, unless it
//!    is the min or max weight, so recovery to full weight always finishes;
//! 5. rate limit: at most one change per `min_interval`; a target that has
//!    to wait is kept pending and applied by [`ServerPolicy::handle_timeout`];
//! 6. a change moves at most `max_step_percent` of the configured weight;
//!    the rest of the way stays pending (and is not subject to hysteresis
//!    again, since the move was already accepted).
//!
//! States follow haproxy: `drain`/`maint`/`ready` and `up`/`down`/`fail`/
//! `stopped` are sticky until the agent says otherwise; a reply without a
//! weight leaves the weight alone. State changes are never rate limited.
//! Drain gives weight 0 and keeps the server; maint and down ask directord
//! to treat the server as failed (see [`StateHint::is_down`]).
//!
//! A malformed reply or a failed poll changes nothing and does not count as
//! hearing from the agent. If nothing valid arrives for `lost_after`, the
//! agent is lost: weight goes straight back to the configured weight and
//! state to Up, leaving health to directord's own checks (haproxy likewise
//! does not treat an unreachable agent as a failure). Falling back to the
//! configured weight, not to 0, means a dead agent never empties a pool.

use std::time::{Duration, Instant};

use crate::agent_check::{self, AdminState, AgentReply, HealthState, Reason};

/// Tunables, shared by all servers of a service.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicySettings {
    /// EWMA factor `a`, 0 < a <= 1; 1 disables smoothing.
    pub smoothing: f64,
    /// Lowest weight from load, in % of the configured weight.
    pub min_weight_percent: u16,
    /// Highest weight from load, in % of the configured weight.
    pub max_weight_percent: u16,
    /// Ignore weight changes smaller than this % of the configured weight.
    pub hysteresis_percent: u16,
    /// At most one weight change per this interval.
    pub min_interval: Duration,
    /// At most this % of the configured weight per change (at least 1).
    pub max_step_percent: u16,
    /// Agent silent this long: back to the configured weight.
    pub lost_after: Duration,
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            smoothing: 0.3,
            min_weight_percent: 10,
            max_weight_percent: 100,
            hysteresis_percent: 5,
            min_interval: Duration::from_secs(2),
            max_step_percent: 25,
            lost_after: Duration::from_secs(10),
        }
    }
}

/// Settings that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    #[error("smoothing must be in (0, 1], got {0}")]
    Smoothing(f64),
    #[error("min weight {min}% is above max weight {max}%")]
    MinAboveMax { min: u16, max: u16 },
    #[error("max step must be at least 1%")]
    ZeroStep,
    #[error("lost_after must be longer than zero")]
    ZeroLostAfter,
}

impl PolicySettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !(self.smoothing > 0.0 && self.smoothing <= 1.0) {
            return Err(SettingsError::Smoothing(self.smoothing));
        }
        if self.min_weight_percent > self.max_weight_percent {
            return Err(SettingsError::MinAboveMax {
                min: self.min_weight_percent,
                max: self.max_weight_percent,
            });
        }
        if self.max_step_percent == 0 {
            return Err(SettingsError::ZeroStep);
        }
        if self.lost_after.is_zero() {
            return Err(SettingsError::ZeroLostAfter);
        }
        Ok(())
    }
}

/// What directord should do with the server besides setting the weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateHint {
    /// In service.
    Up,
    /// Weight 0, keep the server (existing connections finish).
    Drain,
    /// Agent says maintenance: treat as failed.
    Maint,
    /// Agent says down/fail/stopped: treat as failed.
    Down {
        state: HealthState,
        reason: Option<Reason>,
    },
}

impl StateHint {
    /// Whether directord should handle the server as failed its health check.
    pub fn is_down(&self) -> bool {
        matches!(self, StateHint::Maint | StateHint::Down { .. })
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            StateHint::Up => "up",
            StateHint::Drain => "drain",
            StateHint::Maint => "maint",
            StateHint::Down { .. } => "down",
        }
    }
}

/// The weight and state to apply, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub weight: u32,
    pub state: StateHint,
    /// One line for status output and logs.
    pub why: String,
}

/// Weight controller for one real server.
#[derive(Debug, Clone)]
pub struct ServerPolicy {
    settings: PolicySettings,
    configured: u32,
    /// EWMA of reported percentages; `None` until the agent reports one (or
    /// after it was lost).
    smoothed: Option<f64>,
    /// Weight from load, before drain forces 0.
    load_weight: u32,
    admin: AdminState,
    health: HealthState,
    reason: Option<Reason>,
    last_heard: Instant,
    lost: bool,
    last_change: Option<Instant>,
    /// A target waiting for the rate limit or further steps.
    pending: Option<u32>,
    decision: Decision,
    last_error: Option<String>,
    malformed: u64,
    poll_failures: u64,
}

impl ServerPolicy {
    /// Start at the configured weight, Up. The agent has `lost_after` from
    /// `now` to answer before that is reported as lost (which changes
    /// nothing but the explanation).
    pub fn new(configured: u32, settings: PolicySettings, now: Instant) -> ServerPolicy {
        ServerPolicy {
            settings,
            configured,
            smoothed: None,
            load_weight: configured,
            admin: AdminState::Ready,
            health: HealthState::Up,
            reason: None,
            last_heard: now,
            lost: false,
            last_change: None,
            pending: None,
            decision: Decision {
                weight: configured,
                state: StateHint::Up,
                why: format!("no agent reply yet: configured weight {configured}"),
            },
            last_error: None,
            malformed: 0,
            poll_failures: 0,
        }
    }

    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    pub fn configured_weight(&self) -> u32 {
        self.configured
    }

    /// EWMA of the reported percentage, if the agent is reporting.
    pub fn smoothed_percent(&self) -> Option<f64> {
        self.smoothed
    }

    pub fn is_lost(&self) -> bool {
        self.lost
    }

    /// Last malformed reply or poll failure, for status output.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    pub fn malformed_replies(&self) -> u64 {
        self.malformed
    }

    pub fn poll_failures(&self) -> u64 {
        self.poll_failures
    }

    /// When [`ServerPolicy::handle_timeout`] should run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let lost_at = (!self.lost).then(|| self.last_heard + self.settings.lost_after);
        let pending_at = self.pending.map(|_| self.next_change_allowed());
        match (lost_at, pending_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A valid reply arrived.
    pub fn handle_reply(&mut self, now: Instant, reply: &AgentReply) -> Option<Decision> {
        let before = self.decision.clone();
        let mut notes = Vec::new();
        // Silent past lost_after but no timer ran yet: the old average is
        // as stale as if the fallback had happened, so start over.
        if !self.lost && now >= self.last_heard + self.settings.lost_after {
            self.lost = true;
            self.smoothed = None;
            self.pending = None;
        }
        self.last_heard = now;
        if self.lost {
            self.lost = false;
            notes.push("agent back".to_owned());
        }
        if let Some(admin) = reply.admin {
            self.admin = admin;
        }
        if let Some(health) = &reply.health {
            self.health = health.state;
            self.reason = health.reason.clone();
        }
        let weight_note = match reply.weight_percent {
            Some(pct) => self.take_percent(now, pct),
            None => format!("no weight in reply, keeping {}", self.load_weight),
        };
        notes.push(weight_note);
        self.publish(notes.join("; "));
        self.changed_since(&before)
    }

    /// A reply that did not parse. Changes nothing, and the agent still
    /// counts as silent.
    pub fn handle_malformed(
        &mut self,
        now: Instant,
        error: &agent_check::Error,
    ) -> Option<Decision> {
        self.malformed += 1;
        self.last_error = Some(format!("malformed reply ({}): {error}", error.as_str()));
        self.handle_timeout(now)
    }

    /// Connecting or reading failed. Changes nothing; see `lost_after`.
    pub fn handle_poll_failure(
        &mut self,
        now: Instant,
        error: impl std::fmt::Display,
    ) -> Option<Decision> {
        self.poll_failures += 1;
        self.last_error = Some(format!("poll failed: {error}"));
        self.handle_timeout(now)
    }

    /// Apply whatever is due at `now`: the lost-agent fallback or a pending
    /// rate-limited or stepped change.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Decision> {
        let before = self.decision.clone();
        if !self.lost && now >= self.last_heard + self.settings.lost_after {
            self.lost = true;
            self.smoothed = None;
            self.pending = None;
            self.admin = AdminState::Ready;
            self.health = HealthState::Up;
            self.reason = None;
            if self.load_weight != self.configured {
                self.last_change = Some(now);
            }
            self.load_weight = self.configured;
            let silent = now.duration_since(self.last_heard);
            self.publish(format!(
                "agent silent for {}: back to configured weight {}",
                fmt_duration(silent),
                self.configured
            ));
        } else if let Some(target) = self.pending.filter(|_| now >= self.next_change_allowed()) {
            let note = self.move_toward(now, target);
            self.publish(note);
        }
        self.changed_since(&before)
    }

    /// The configured weight changed (config reload). Applied at once,
    /// rescaling the current smoothed percentage.
    pub fn set_configured_weight(&mut self, now: Instant, configured: u32) -> Option<Decision> {
        let before = self.decision.clone();
        self.configured = configured;
        self.pending = None;
        self.load_weight = match self.smoothed {
            Some(pct) => self.weight_for(pct),
            None => configured,
        };
        self.last_change = Some(now);
        self.publish(format!(
            "configured weight now {configured}: weight {}",
            self.load_weight
        ));
        self.changed_since(&before)
    }

    fn take_percent(&mut self, now: Instant, reported: u16) -> String {
        let s = &self.settings;
        let pct = f64::from(reported.clamp(s.min_weight_percent, s.max_weight_percent));
        let prev = self.smoothed.unwrap_or(100.0);
        let smoothed = s.smoothing * pct + (1.0 - s.smoothing) * prev;
        self.smoothed = Some(smoothed);
        let target = self.weight_for(smoothed);
        let head = format!("agent {reported}% (smoothed {smoothed:.1}%)");
        if self.configured == 0 {
            self.pending = None;
            return format!("{head}: configured weight 0");
        }
        if target == self.load_weight {
            self.pending = None;
            return format!("{head}: weight {target}");
        }
        let diff = target.abs_diff(self.load_weight);
        let threshold = f64::from(self.configured) * f64::from(s.hysteresis_percent) / 100.0;
        let at_bound = target == self.min_weight() || target == self.max_weight();
        if (diff as f64) < threshold && !at_bound {
            self.pending = None;
            return format!(
                "{head}: target {target} within hysteresis of {}, holding",
                self.load_weight
            );
        }
        self.pending = Some(target);
        if now < self.next_change_allowed() {
            let wait = self.next_change_allowed().duration_since(now);
            return format!(
                "{head}: target {target}, holding {} for {} (rate limit)",
                self.load_weight,
                fmt_duration(wait)
            );
        }
        format!("{head}: {}", self.move_toward(now, target))
    }

    /// One rate-limited, step-limited move toward `target`.
    fn move_toward(&mut self, now: Instant, target: u32) -> String {
        let from = self.load_weight;
        let step = self.max_step();
        let to = if target > from {
            from + (target - from).min(step)
        } else {
            from - (from - target).min(step)
        };
        self.load_weight = to;
        self.last_change = Some(now);
        if to == target {
            self.pending = None;
            format!("weight {from} -> {to}")
        } else {
            self.pending = Some(target);
            format!("weight {from} -> {to} toward {target} (max step {step})")
        }
    }

    fn weight_for(&self, pct: f64) -> u32 {
        let raw = (f64::from(self.configured) * pct / 100.0).round();
        let mut w = raw.clamp(0.0, f64::from(u32::MAX)) as u32;
        if w == 0 && pct > 0.0 && self.configured > 0 {
            w = 1;
        }
        w.clamp(self.min_weight(), self.max_weight())
    }

    fn min_weight(&self) -> u32 {
        scale(self.configured, self.settings.min_weight_percent)
    }

    fn max_weight(&self) -> u32 {
        scale(self.configured, self.settings.max_weight_percent).max(self.min_weight())
    }

    fn max_step(&self) -> u32 {
        scale(self.configured, self.settings.max_step_percent).max(1)
    }

    fn next_change_allowed(&self) -> Instant {
        match self.last_change {
            Some(at) => at + self.settings.min_interval,
            // Nothing changed yet: no limit. Inputs arrive in time order,
            // so the last reply is never in the future.
            None => self.last_heard,
        }
    }

    fn publish(&mut self, why: String) {
        let state = if self.admin == AdminState::Maint {
            StateHint::Maint
        } else if self.health.is_down() {
            StateHint::Down {
                state: self.health,
                reason: self.reason.clone(),
            }
        } else if self.admin == AdminState::Drain {
            StateHint::Drain
        } else {
            StateHint::Up
        };
        let weight = if state == StateHint::Drain {
            0
        } else {
            self.load_weight
        };
        let why = match &state {
            StateHint::Up => why,
            StateHint::Down { state, reason } => {
                let reason = reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                format!("agent says {}{reason}; {why}", state.as_str())
            }
            other => format!("agent says {}; {why}", other.as_str()),
        };
        self.decision = Decision { weight, state, why };
    }

    fn changed_since(&self, before: &Decision) -> Option<Decision> {
        (self.decision.weight != before.weight || self.decision.state != before.state)
            .then(|| self.decision.clone())
    }
}

/// `configured * percent / 100`, rounded up so that a non-zero minimum or
/// step never comes out as 0.
fn scale(configured: u32, percent: u16) -> u32 {
    (u64::from(configured) * u64::from(percent))
        .div_ceil(100)
        .min(u64::from(u32::MAX)) as u32
}

fn fmt_duration(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent_check::{HealthReport, Packet};

    /// A fake clock: seconds after a fixed base.
    struct Clock(Instant);

    impl Clock {
        fn new() -> Clock {
            Clock(Instant::now())
        }
        fn at(&self, secs: f64) -> Instant {
            self.0 + Duration::from_secs_f64(secs)
        }
    }

    /// No smoothing, bounds, hysteresis or limits: each rule test turns on
    /// only the one it checks.
    fn plain() -> PolicySettings {
        PolicySettings {
            smoothing: 1.0,
            min_weight_percent: 0,
            max_weight_percent: 100,
            hysteresis_percent: 0,
            min_interval: Duration::ZERO,
            max_step_percent: 100,
            lost_after: Duration::from_secs(1000),
        }
    }

    fn wire(line: &str) -> AgentReply {
        AgentReply::parse(&Packet::new_checked(line.as_bytes()).unwrap()).unwrap()
    }

    fn pct(p: u16) -> AgentReply {
        AgentReply {
            weight_percent: Some(p),
            ..Default::default()
        }
    }

    #[test]
    fn starts_at_configured_weight() {
        let c = Clock::new();
        let p = ServerPolicy::new(100, PolicySettings::default(), c.at(0.0));
        assert_eq!(p.decision().weight, 100);
        assert_eq!(p.decision().state, StateHint::Up);
        assert_eq!(
            p.decision().why,
            "no agent reply yet: configured weight 100"
        );
        assert_eq!(p.poll_timeout(), Some(c.at(10.0)));
    }

    #[test]
    fn weight_follows_percentage() {
        let c = Clock::new();
        let mut p = ServerPolicy::new(200, plain(), c.at(0.0));
        let d = p.handle_reply(c.at(1.0), &wire("ready 40% up\n")).unwrap();
        assert_eq!((d.weight, d.state), (80, StateHint::Up));
        assert_eq!(d.why, "agent 40% (smoothed 40.0%): weight 200 -> 80");
        // Same target again: no change reported.
        assert_eq!(p.handle_reply(c.at(2.0), &pct(40)), None);
        assert_eq!(p.decision().why, "agent 40% (smoothed 40.0%): weight 80");
    }

    #[test]
    fn ewma_smoothing() {
        let c = Clock::new();
        let s = PolicySettings {
            smoothing: 0.5,
            ..plain()
        };
        let mut p = ServerPolicy::new(100, s, c.at(0.0));
        // Starts from 100%: 0.5 * 20 + 0.5 * 100.
        assert_eq!(p.handle_reply(c.at(1.0), &pct(20)).unwrap().weight, 60);
        assert_eq!(p.handle_reply(c.at(2.0), &pct(20)).unwrap().weight, 40);
        assert_eq!(p.handle_reply(c.at(3.0), &pct(20)).unwrap().weight, 30);
        assert_eq!(p.smoothed_percent(), Some(30.0));
    }

    #[test]
    fn min_and_max_weight() {
        let c = Clock::new();
        let s = PolicySettings {
            min_weight_percent: 10,
            max_weight_percent: 150,
            max_step_percent: 200,
            ..plain()
        };
        let mut p = ServerPolicy::new(50, s, c.at(0.0));
        assert_eq!(p.handle_reply(c.at(1.0), &pct(0)).unwrap().weight, 5);
        assert_eq!(p.handle_reply(c.at(2.0), &pct(25600)).unwrap().weight, 75);
        let s = PolicySettings {
            min_weight_percent: 10,
            ..plain()
        };
        let mut p = ServerPolicy::new(50, s, c.at(0.0));
        assert_eq!(p.handle_reply(c.at(1.0), &pct(200)), None);
        assert_eq!(p.decision().weight, 50);
        // A 10% minimum of weight 3 is 1, not 0.
        let mut p = ServerPolicy::new(3, s, c.at(0.0));
        assert_eq!(p.handle_reply(c.at(1.0), &pct(0)).unwrap().weight, 1);
    }

    #[test]
    fn never_zero_by_rounding() {
        let c = Clock::new();
        let mut p = ServerPolicy::new(1, plain(), c.at(0.0));
        // 1 * 40% = 0.4 rounds to 0, but the server is merely busy.
        assert_eq!(p.handle_reply(c.at(1.0), &pct(40)), None);
        assert_eq!(p.decision().weight, 1);
        // With smoothing, 0% reported forever never reaches exactly 0 either.
        let s = PolicySettings {
            smoothing: 0.5,
            ..plain()
        };
        let mut p = ServerPolicy::new(10, s, c.at(0.0));
        for i in 1..50 {
            p.handle_reply(c.at(f64::from(i)), &pct(0));
        }
        assert_eq!(p.decision().weight, 1);
        // An explicit 0% with a 0% minimum and no smoothing is a choice.
        let mut p = ServerPolicy::new(10, plain(), c.at(0.0));
        assert_eq!(p.handle_reply(c.at(1.0), &pct(0)).unwrap().weight, 0);
    }

    #[test]
    fn hysteresis_suppresses_small_flaps() {
        let c = Clock::new();
        let s = PolicySettings {
            hysteresis_percent: 10,
            ..plain()
        };
        let mut p = ServerPolicy::new(100, s, c.at(0.0));
        assert_eq!(p.handle_reply(c.at(1.0), &pct(60)).unwrap().weight, 60);
        for (i, flap) in [65u16, 55, 69, 51, 60, 64].into_iter().enumerate() {
            assert_eq!(
                p.handle_reply(c.at(2.0 + i as f64), &pct(flap)),
                None,
                "{flap}%"
            );
            assert_eq!(p.decision().weight, 60);
        }
        assert!(
            p.decision().why.contains("within hysteresis of 60"),
            "{}",
            p.decision().why
        );
        // A real change of 10 or more goes through.
        assert_eq!(p.handle_reply(c.at(10.0), &pct(70)).unwrap().weight, 70);
        assert_eq!(p.handle_reply(c.at(11.0), &pct(95)).unwrap().weight, 95);
        // The max weight is always reachable, even closer than hysteresis.
        assert_eq!(p.handle_reply(c.at(12.0), &pct(100)).unwrap().weight, 100);
    }

    #[test]
    fn rate_limit_defers_changes() {
        let c = Clock::new();
        let s = PolicySettings {
            min_interval: Duration::from_secs(10),
            ..plain()
        };
        let mut p = ServerPolicy::new(100, s, c.at(0.0));
        // First change is free.
        assert_eq!(p.handle_reply(c.at(1.0), &pct(50)).unwrap().weight, 50);
        assert_eq!(p.handle_reply(c.at(3.0), &pct(30)), None);
        assert_eq!(p.decision().weight, 50);
        assert_eq!(
            p.decision().why,
            "agent 30% (smoothed 30.0%): target 30, holding 50 for 8.0s (rate limit)"
        );
        assert_eq!(p.poll_timeout(), Some(c.at(11.0)));
        assert_eq!(p.handle_timeout(c.at(10.9)), None);
        let d = p.handle_timeout(c.at(11.0)).unwrap();
        assert_eq!(d.weight, 30);
        assert_eq!(p.poll_timeout(), Some(c.at(1003.0)));
        // A newer reply replaces the pending target.
        assert_eq!(p.handle_reply(c.at(12.0), &pct(80)), None);
        assert_eq!(p.handle_reply(c.at(13.0), &pct(40)), None);
        assert_eq!(p.handle_timeout(c.at(21.0)).unwrap().weight, 40);
        // Going back to the current weight cancels a pending change.
        assert_eq!(p.handle_reply(c.at(22.0), &pct(90)), None);
        assert_eq!(p.handle_reply(c.at(23.0), &pct(40)), None);
        assert_eq!(p.poll_timeout(), Some(c.at(1023.0)));
        assert_eq!(p.handle_timeout(c.at(31.0)), None);
    }

    #[test]
    fn max_step_per_change() {
        let c = Clock::new();
        let s = PolicySettings {
            max_step_percent: 20,
            min_interval: Duration::from_secs(2),
            hysteresis_percent: 30,
            ..plain()
        };
        let mut p = ServerPolicy::new(100, s, c.at(0.0));
        let d = p.handle_reply(c.at(1.0), &pct(45)).unwrap();
        assert_eq!(d.weight, 80);
        assert_eq!(
            d.why,
            "agent 45% (smoothed 45.0%): weight 100 -> 80 toward 45 (max step 20)"
        );
        assert_eq!(p.poll_timeout(), Some(c.at(3.0)));
        assert_eq!(p.handle_timeout(c.at(3.0)).unwrap().weight, 60);
        // The last 15 is below the hysteresis but part of an accepted move.
        assert_eq!(p.handle_timeout(c.at(5.0)).unwrap().weight, 45);
        assert_eq!(p.handle_timeout(c.at(7.0)), None);
    }

    #[test]
    fn lost_agent_falls_back_to_configured_weight() {
        let c = Clock::new();
        let s = PolicySettings {
            lost_after: Duration::from_secs(10),
            min_interval: Duration::from_secs(60),
            max_step_percent: 10,
            ..plain()
        };
        let mut p = ServerPolicy::new(100, s, c.at(0.0));
        assert_eq!(
            p.handle_reply(c.at(1.0), &wire("drain 40% up\n"))
                .unwrap()
                .weight,
            0
        );
        assert_eq!(p.poll_timeout(), Some(c.at(11.0)));
        assert_eq!(p.handle_timeout(c.at(10.9)), None);
        let d = p.handle_timeout(c.at(11.0)).unwrap();
        // Straight back, bypassing step and rate limits, and undrained.
        assert_eq!((d.weight, d.state), (100, StateHint::Up));
        assert_eq!(
            d.why,
            "agent silent for 10.0s: back to configured weight 100"
        );
        assert!(p.is_lost());
        assert_eq!(p.poll_timeout(), None);
        // When it returns, smoothing restarts from 100%.
        assert_eq!(p.handle_reply(c.at(30.0), &pct(95)), None);
        assert_eq!(p.smoothed_percent(), Some(95.0));
        assert!(
            p.decision().why.starts_with("agent back; "),
            "{}",
            p.decision().why
        );
        assert!(!p.is_lost());
    }

    #[test]
    fn late_reply_without_timer_restarts_smoothing() {
        let c = Clock::new();
        let s = PolicySettings {
            smoothing: 0.5,
            lost_after: Duration::from_secs(10),
            ..plain()
        };
        let mut p = ServerPolicy::new(100, s, c.at(0.0));
        p.handle_reply(c.at(1.0), &pct(20));
        assert_eq!(p.smoothed_percent(), Some(60.0));
        p.handle_reply(c.at(30.0), &pct(20));
        assert_eq!(p.smoothed_percent(), Some(60.0));
        assert!(p.decision().why.starts_with("agent back; "));
    }

    #[test]
    fn lost_agent_that_never_answered() {
        let c = Clock::new();
        let s = PolicySettings {
            lost_after: Duration::from_secs(5),
            ..plain()
        };
        let mut p = ServerPolicy::new(7, s, c.at(0.0));
        // Nothing to change, but the status says why.
        assert_eq!(p.handle_poll_failure(c.at(5.0), "connection refused"), None);
        assert!(p.is_lost());
        assert_eq!(p.decision().weight, 7);
        assert_eq!(p.last_error(), Some("poll failed: connection refused"));
        assert_eq!(p.poll_failures(), 1);
    }

    #[test]
    fn a_single_malformed_reply_changes_nothing() {
        let c = Clock::new();
        let s = PolicySettings {
            smoothing: 0.5,
            lost_after: Duration::from_secs(10),
            ..plain()
        };
        let mut p = ServerPolicy::new(100, s, c.at(0.0));
        let mut twin = p.clone();
        p.handle_reply(c.at(1.0), &pct(50));
        twin.handle_reply(c.at(1.0), &pct(50));
        let before = p.decision().clone();
        let err =
            AgentReply::parse(&Packet::new_checked(&b"down#oops\n"[..]).unwrap()).unwrap_err();
        assert_eq!(p.handle_malformed(c.at(2.0), &err), None);
        assert_eq!(p.decision(), &before);
        assert_eq!(p.malformed_replies(), 1);
        assert_eq!(
            p.last_error(),
            Some("malformed reply (unknown_word): unknown word \"down#oops\"")
        );
        // Smoothing state untouched: the next reply lands where it would have.
        assert_eq!(
            p.handle_reply(c.at(3.0), &pct(20)),
            twin.handle_reply(c.at(3.0), &pct(20))
        );
        // Garbage does not keep a silent agent alive: last valid reply at 3 s.
        assert_eq!(p.handle_malformed(c.at(12.9), &err), None);
        assert_eq!(p.handle_malformed(c.at(13.0), &err).unwrap().weight, 100);
    }

    #[test]
    fn poll_failure_changes_nothing() {
        let c = Clock::new();
        let s = PolicySettings {
            lost_after: Duration::from_secs(10),
            ..plain()
        };
        let mut p = ServerPolicy::new(100, s, c.at(0.0));
        p.handle_reply(c.at(1.0), &wire("maint 30%\n"));
        let before = p.decision().clone();
        assert_eq!(p.handle_poll_failure(c.at(5.0), "timeout"), None);
        assert_eq!(p.decision(), &before);
        assert_eq!(
            p.handle_poll_failure(c.at(11.0), "timeout").unwrap().state,
            StateHint::Up
        );
    }

    #[test]
    fn states() {
        let c = Clock::new();
        let mut p = ServerPolicy::new(100, plain(), c.at(0.0));
        let d = p.handle_reply(c.at(1.0), &wire("drain 60% up\n")).unwrap();
        assert_eq!((d.weight, d.state.clone()), (0, StateHint::Drain));
        assert!(!d.state.is_down());
        assert_eq!(
            d.why,
            "agent says drain; agent 60% (smoothed 60.0%): weight 100 -> 60"
        );
        // Sticky: a weight-only reply keeps the drain.
        assert_eq!(p.handle_reply(c.at(2.0), &pct(50)), None);
        assert_eq!(p.decision().weight, 0);
        // Ready brings back the load weight.
        let d = p.handle_reply(c.at(3.0), &wire("ready\n")).unwrap();
        assert_eq!((d.weight, d.state), (50, StateHint::Up));
        assert_eq!(d.why, "no weight in reply, keeping 50");

        let d = p.handle_reply(c.at(4.0), &wire("maint\n")).unwrap();
        assert_eq!(d.state, StateHint::Maint);
        assert!(d.state.is_down());
        let d = p
            .handle_reply(c.at(5.0), &wire("ready stopped #by ops\n"))
            .unwrap();
        assert_eq!(
            d.state,
            StateHint::Down {
                state: HealthState::Stopped,
                reason: Reason::new("by ops").unwrap()
            }
        );
        assert_eq!(
            d.why,
            "agent says stopped (by ops); no weight in reply, keeping 50"
        );
        assert!(d.state.is_down());
        // Maint outranks down; drain does not.
        assert_eq!(
            p.handle_reply(c.at(6.0), &wire("maint\n")).unwrap().state,
            StateHint::Maint
        );
        assert_eq!(
            p.handle_reply(c.at(7.0), &wire("drain\n"))
                .unwrap()
                .state
                .as_str(),
            "down"
        );
        let d = p.handle_reply(c.at(8.0), &wire("up\n")).unwrap();
        assert_eq!((d.weight, d.state), (0, StateHint::Drain));
        let d = p
            .handle_reply(
                c.at(9.0),
                &AgentReply {
                    admin: Some(AdminState::Ready),
                    health: Some(HealthReport {
                        state: HealthState::Up,
                        reason: None,
                    }),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!((d.weight, d.state), (50, StateHint::Up));
    }

    #[test]
    fn state_changes_ignore_rate_limit() {
        let c = Clock::new();
        let s = PolicySettings {
            min_interval: Duration::from_secs(60),
            ..plain()
        };
        let mut p = ServerPolicy::new(100, s, c.at(0.0));
        assert_eq!(p.handle_reply(c.at(1.0), &pct(50)).unwrap().weight, 50);
        assert_eq!(
            p.handle_reply(c.at(2.0), &wire("drain\n")).unwrap().weight,
            0
        );
        assert_eq!(
            p.handle_reply(c.at(3.0), &wire("fail\n"))
                .unwrap()
                .state
                .as_str(),
            "down"
        );
    }

    #[test]
    fn configured_weight_zero_stays_zero() {
        let c = Clock::new();
        let mut p = ServerPolicy::new(0, PolicySettings::default(), c.at(0.0));
        assert_eq!(p.handle_reply(c.at(1.0), &pct(100)), None);
        assert_eq!(p.decision().weight, 0);
        assert_eq!(
            p.decision().why,
            "agent 100% (smoothed 100.0%): configured weight 0"
        );
    }

    #[test]
    fn reconfigured_weight_rescales() {
        let c = Clock::new();
        let mut p = ServerPolicy::new(100, plain(), c.at(0.0));
        p.handle_reply(c.at(1.0), &pct(40));
        let d = p.set_configured_weight(c.at(2.0), 50).unwrap();
        assert_eq!(d.weight, 20);
        assert_eq!(d.why, "configured weight now 50: weight 20");
        let mut fresh = ServerPolicy::new(100, plain(), c.at(0.0));
        assert_eq!(
            fresh.set_configured_weight(c.at(1.0), 30).unwrap().weight,
            30
        );
    }

    #[test]
    fn settings_validation() {
        assert_eq!(PolicySettings::default().validate(), Ok(()));
        let bad = |f: fn(&mut PolicySettings)| {
            let mut s = PolicySettings::default();
            f(&mut s);
            s.validate().unwrap_err()
        };
        assert_eq!(bad(|s| s.smoothing = 0.0), SettingsError::Smoothing(0.0));
        assert_eq!(bad(|s| s.smoothing = 1.5), SettingsError::Smoothing(1.5));
        assert!(matches!(
            bad(|s| s.smoothing = f64::NAN),
            SettingsError::Smoothing(_)
        ));
        assert_eq!(
            bad(|s| s.min_weight_percent = 101),
            SettingsError::MinAboveMax { min: 101, max: 100 }
        );
        assert_eq!(bad(|s| s.max_step_percent = 0), SettingsError::ZeroStep);
        assert_eq!(
            bad(|s| s.lost_after = Duration::ZERO),
            SettingsError::ZeroLostAfter
        );
    }
}
