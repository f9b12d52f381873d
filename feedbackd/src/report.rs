//! Agent side: turn load measurements and the operator's override into the
//! reply the agent writes.
//!
//! Every reply carries the complete state (administrative word, health word
//! except under `maint`, weight when known). haproxy, and our director, keep
//! whatever the agent set until the agent says otherwise ("only the agent
//! may revert its own actions"), so an agent that only ever reported
//! changes could leave a server drained after a missed reply.
//!
//! Weight = the smallest headroom among the measured signals, in percent:
//! - CPU: idle % over the sampling window;
//! - load: `100 * (1 - load_per_core / load_full_per_core)`;
//! - memory: 100 while available memory is at or above `mem_low_percent`,
//!   then linearly down to 0 at no available memory;
//! - command: the percentage a custom command printed;
//! - connections (optional): `100 * (1 - established / max_connections)`.
//!
//! Rounding goes to the nearest percent, then the result is clamped to
//! `[floor_percent, ceiling_percent]`. The floor (default 10%) keeps a busy
//! but healthy server in rotation: a fully busy host reporting 0% would be
//! drained by haproxy and by our director, moving all its load onto the
//! others at once. Only an override drains. With the floor set to 0, a
//! positive headroom still never rounds to 0%: 0.3% is reported as 1%.
//! With no measurement yet (the CPU window needs two samples) the reply
//! carries no weight, which leaves the director's weight unchanged.

use core::fmt;

use crate::agent_check::{AdminState, AgentReply, HealthReport, HealthState, Reason};

/// What the operator wrote in the override file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Override {
    /// No file, an empty file, or `none`: report measured load.
    #[default]
    None,
    /// `ready`: the operator vouches for the host: advertise the ceiling
    /// whatever the load.
    Ready,
    /// `drain`: finish existing connections, accept no new ones.
    Drain,
    /// `maint`: out of service for maintenance.
    Maint,
    /// `down`, `fail` or `stopped`, optionally followed by `#reason`.
    Down {
        state: HealthState,
        reason: Option<Reason>,
    },
}

/// Why an override file's content was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    #[error("unknown override {0:?} (expected none, ready, drain, maint, down, fail or stopped)")]
    UnknownWord(String),
    #[error("more than one override word in {0:?}")]
    TooManyWords(String),
    #[error("only down, fail and stopped take a #reason")]
    ReasonNotAllowed,
    #[error("bad reason text: {0}")]
    BadReason(crate::agent_check::Error),
}

impl OverrideError {
    /// Stable label for per-cause counters.
    pub fn as_str(&self) -> &'static str {
        match self {
            OverrideError::UnknownWord(_) => "unknown_word",
            OverrideError::TooManyWords(_) => "too_many_words",
            OverrideError::ReasonNotAllowed => "reason_not_allowed",
            OverrideError::BadReason(_) => "bad_reason",
        }
    }
}

impl Override {
    /// Parse an override file. The first line that is neither blank nor a
    /// `#` comment holds one word, case-insensitive; for down/fail/stopped
    /// a `#` (with or without a space before it) starts the reason. Unlike
    /// the wire format, `down#disk full` is accepted here: operators type
    /// this file by hand. On error the caller should keep the previous
    /// override rather than guess.
    pub fn parse(content: &str) -> Result<Override, OverrideError> {
        let Some(line) = content
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
        else {
            return Ok(Override::None);
        };
        let (head, reason) = match line.split_once('#') {
            Some((head, reason)) => (head, Some(reason)),
            None => (line, None),
        };
        let mut words = head.split_ascii_whitespace();
        let word = words.next().unwrap_or("");
        if words.next().is_some() {
            return Err(OverrideError::TooManyWords(line.to_owned()));
        }
        let lower = word.to_ascii_lowercase();
        let state = match lower.as_str() {
            "down" => HealthState::Down,
            "fail" => HealthState::Fail,
            "stopped" => HealthState::Stopped,
            other => {
                if reason.is_some() {
                    return match other {
                        "none" | "ready" | "drain" | "maint" => {
                            Err(OverrideError::ReasonNotAllowed)
                        }
                        _ => Err(OverrideError::UnknownWord(word.to_owned())),
                    };
                }
                return match other {
                    "none" => Ok(Override::None),
                    "ready" => Ok(Override::Ready),
                    "drain" => Ok(Override::Drain),
                    "maint" => Ok(Override::Maint),
                    _ => Err(OverrideError::UnknownWord(word.to_owned())),
                };
            }
        };
        let reason = match reason {
            Some(text) => Reason::new(text.trim_end()).map_err(OverrideError::BadReason)?,
            None => None,
        };
        Ok(Override::Down { state, reason })
    }
}

impl fmt::Display for Override {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Override::None => f.write_str("none"),
            Override::Ready => f.write_str("ready"),
            Override::Drain => f.write_str("drain"),
            Override::Maint => f.write_str("maint"),
            Override::Down { state, reason } => {
                f.write_str(state.as_str())?;
                match reason {
                    Some(r) => write!(f, " #{r}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// The override an operator sets by signal: SIGUSR1 drains, SIGUSR2 lifts it. It lives in
/// memory only (a restart forgets it; a reload keeps it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SignalOverride {
    #[default]
    None,
    Drain,
}

/// The override in force when both the file and a signal say something: the stronger one wins.
/// A signalled drain beats the file's `none` and `ready` (an operator who sent SIGUSR1 wants no
/// new connections, whatever an old file says), while the file's `maint` and
/// `down`/`fail`/`stopped` beat a drain: they take the server further out of service. So
/// neither source can bring back a server the other took out; SIGUSR2 only lifts the signal's
/// drain. Returns the override and whether the signal decided it.
pub fn effective_override(file: &Override, signal: SignalOverride) -> (Override, bool) {
    match (signal, file) {
        (SignalOverride::Drain, Override::None | Override::Ready) => (Override::Drain, true),
        _ => (file.clone(), false),
    }
}

/// Current measurements; `None` for a signal not configured or not yet
/// available.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Measurements {
    /// CPU idle % over the window ([`crate::procstat::IdleWindow`]).
    pub cpu_idle_percent: Option<f64>,
    /// One-minute load average per online CPU.
    pub load_per_core: Option<f64>,
    /// `MemAvailable` as % of `MemTotal`.
    pub mem_available_percent: Option<f64>,
    /// Percentage printed by a custom command.
    pub command_percent: Option<f64>,
    /// Established TCP connections on the configured local ports.
    pub established_connections: Option<u64>,
}

/// How measurements become a weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReportSettings {
    /// Lowest weight advertised without an override (default 10).
    pub floor_percent: u16,
    /// Highest weight advertised (default 100).
    pub ceiling_percent: u16,
    /// Load per core at which the host counts as full (default 1.0).
    pub load_full_per_core: f64,
    /// Available memory below which the weight drops (default 10.0).
    pub mem_low_percent: f64,
    /// Established connections that count as full (no connection signal when unset or 0).
    pub max_connections: Option<u32>,
}

impl Default for ReportSettings {
    fn default() -> Self {
        ReportSettings {
            floor_percent: 10,
            ceiling_percent: 100,
            load_full_per_core: 1.0,
            mem_low_percent: 10.0,
            max_connections: None,
        }
    }
}

/// The reply to send and a line for logs and status output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub reply: AgentReply,
    pub why: String,
}

/// Which reports deserve a log line, sans-IO: a change of state (ready, drain, maint; up,
/// down, ...), of maxconn, or of the weight by at least [`ReportLog::BAND`] points from the
/// last one logged. The weight follows the measured CPU every second: logging each sample
/// was ~86k lines a day per real server, saying nothing an operator acts on.
#[derive(Debug, Default)]
pub struct ReportLog {
    last: Option<AgentReply>,
}

impl ReportLog {
    /// Percentage points of weight that make a change worth a line.
    pub const BAND: u16 = 20;

    pub fn worth_logging(&mut self, reply: &AgentReply) -> bool {
        let changed = match &self.last {
            None => true,
            Some(last) => {
                last.admin != reply.admin
                    || last.health.as_ref().map(|h| h.state)
                        != reply.health.as_ref().map(|h| h.state)
                    || last.maxconn != reply.maxconn
                    || match (last.weight_percent, reply.weight_percent) {
                        (Some(a), Some(b)) => a.abs_diff(b) >= Self::BAND,
                        (a, b) => a != b,
                    }
            }
        };
        if changed {
            self.last = Some(reply.clone());
        }
        changed
    }
}

/// Build the reply for the current measurements and override.
pub fn build(m: &Measurements, ov: &Override, settings: &ReportSettings) -> Report {
    let ceiling = settings.ceiling_percent;
    let floor = settings.floor_percent.min(ceiling);
    let measured = headroom(m, settings);
    let weight = measured
        .as_ref()
        .map(|(pct, _)| clamp_percent(*pct, floor, ceiling));
    let measured_why = match measured {
        Some((pct, signal)) => {
            let w = weight.unwrap_or_default();
            let clamp = if f64::from(w) > pct.round() {
                format!(", raised to the {floor}% floor")
            } else if f64::from(w) < pct.round() {
                format!(", capped at {ceiling}%")
            } else {
                String::new()
            };
            format!("{signal} -> {w}%{clamp}")
        }
        None => "no measurement yet, weight not advertised".to_owned(),
    };
    let up = Some(HealthReport {
        state: HealthState::Up,
        reason: None,
    });
    let (admin, health, weight, why) = match ov {
        Override::None => (AdminState::Ready, up, weight, measured_why),
        Override::Ready => (
            AdminState::Ready,
            up,
            Some(ceiling),
            format!("override ready: {ceiling}% regardless of load ({measured_why})"),
        ),
        Override::Drain => (
            AdminState::Drain,
            up,
            weight,
            format!("override drain ({measured_why})"),
        ),
        Override::Maint => (
            AdminState::Maint,
            None,
            weight,
            format!("override maint ({measured_why})"),
        ),
        Override::Down { state, reason } => (
            AdminState::Ready,
            Some(HealthReport {
                state: *state,
                reason: reason.clone(),
            }),
            weight,
            format!("override {ov} ({measured_why})"),
        ),
    };
    Report {
        reply: AgentReply {
            weight_percent: weight,
            maxconn: None,
            admin: Some(admin),
            health,
        },
        why,
    }
}

/// Smallest headroom among the available signals, with a description of
/// the one that set it.
fn headroom(m: &Measurements, s: &ReportSettings) -> Option<(f64, String)> {
    let mut candidates: Vec<(f64, String)> = Vec::new();
    if let Some(idle) = finite(m.cpu_idle_percent) {
        candidates.push((idle, format!("cpu idle {idle:.1}%")));
    }
    if let Some(load) = finite(m.load_per_core) {
        let full = if s.load_full_per_core > 0.0 {
            s.load_full_per_core
        } else {
            1.0
        };
        candidates.push((
            100.0 * (1.0 - load / full),
            format!("load {load:.2}/core of {full:.2}"),
        ));
    }
    if let Some(avail) = finite(m.mem_available_percent) {
        let pct = if avail >= s.mem_low_percent || s.mem_low_percent <= 0.0 {
            100.0
        } else {
            100.0 * avail / s.mem_low_percent
        };
        candidates.push((pct, format!("memory available {avail:.1}%")));
    }
    if let Some(cmd) = finite(m.command_percent) {
        candidates.push((cmd, format!("command {cmd:.1}%")));
    }
    if let (Some(n), Some(max)) = (
        m.established_connections,
        s.max_connections.filter(|m| *m > 0),
    ) {
        candidates.push((
            100.0 * (1.0 - n as f64 / f64::from(max)),
            format!("{n} of {max} connections"),
        ));
    }
    candidates
        .into_iter()
        .map(|(pct, why)| (pct.clamp(0.0, f64::from(u16::MAX)), why))
        .min_by(|a, b| a.0.total_cmp(&b.0))
}

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite())
}

fn clamp_percent(pct: f64, floor: u16, ceiling: u16) -> u16 {
    let mut rounded = pct.round();
    // Busy is not dead: a sliver of headroom must not read as drain.
    if rounded == 0.0 && pct > 0.0 {
        rounded = 1.0;
    }
    (rounded as u16).clamp(floor, ceiling)
}

#[cfg(test)]
mod report_log_tests {
    use super::*;
    use crate::agent_check::AdminState;

    fn reply(admin: AdminState, percent: u16) -> AgentReply {
        AgentReply {
            weight_percent: Some(percent),
            admin: Some(admin),
            ..AgentReply::default()
        }
    }

    // Caught: the agent logged a line each time the measured CPU moved (its `why` carried the
    // figure): ~86k lines a day per real server.
    #[test]
    fn samples_are_not_logged_state_changes_and_band_crossings_are() {
        let mut log = ReportLog::default();
        assert!(
            log.worth_logging(&reply(AdminState::Ready, 50)),
            "the first report"
        );
        let wandering = [51, 47, 58, 44, 62, 39, 55, 50, 68, 33];
        let logged = wandering
            .iter()
            .filter(|&&p| log.worth_logging(&reply(AdminState::Ready, p)))
            .count();
        assert_eq!(logged, 0, "samples within the band");
        assert!(
            log.worth_logging(&reply(AdminState::Ready, 75)),
            "a band crossing"
        );
        assert!(!log.worth_logging(&reply(AdminState::Ready, 60)));
        assert!(
            log.worth_logging(&reply(AdminState::Drain, 60)),
            "a state change"
        );
        assert!(log.worth_logging(&reply(AdminState::Ready, 60)), "and back");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(idle: f64) -> Measurements {
        Measurements {
            cpu_idle_percent: Some(idle),
            ..Default::default()
        }
    }

    fn weight(m: &Measurements, s: &ReportSettings) -> Option<u16> {
        build(m, &Override::None, s).reply.weight_percent
    }

    fn line(m: &Measurements, ov: &Override, s: &ReportSettings) -> String {
        build(m, ov, s).reply.to_line()
    }

    #[test]
    fn cpu_idle_becomes_weight() {
        let s = ReportSettings::default();
        assert_eq!(line(&cpu(40.0), &Override::None, &s), "ready 40% up\n");
        assert_eq!(line(&cpu(40.4), &Override::None, &s), "ready 40% up\n");
        assert_eq!(line(&cpu(40.5), &Override::None, &s), "ready 41% up\n");
        assert_eq!(line(&cpu(100.0), &Override::None, &s), "ready 100% up\n");
        let r = build(&cpu(40.0), &Override::None, &s);
        assert_eq!(r.why, "cpu idle 40.0% -> 40%");
    }

    #[test]
    fn floor_and_ceiling() {
        let s = ReportSettings::default();
        let r = build(&cpu(0.0), &Override::None, &s);
        assert_eq!(r.reply.weight_percent, Some(10));
        assert_eq!(r.why, "cpu idle 0.0% -> 10%, raised to the 10% floor");
        let s = ReportSettings {
            floor_percent: 0,
            ceiling_percent: 80,
            ..Default::default()
        };
        assert_eq!(
            build(&cpu(0.3), &Override::None, &s).reply.weight_percent,
            Some(1)
        );
        assert_eq!(
            build(&cpu(0.0), &Override::None, &s).reply.weight_percent,
            Some(0)
        );
        let r = build(&cpu(95.0), &Override::None, &s);
        assert_eq!(r.reply.weight_percent, Some(80));
        assert!(r.why.ends_with("capped at 80%"), "{}", r.why);
        // A floor above the ceiling cannot push past the ceiling.
        let s = ReportSettings {
            floor_percent: 90,
            ceiling_percent: 50,
            ..Default::default()
        };
        assert_eq!(
            build(&cpu(0.0), &Override::None, &s).reply.weight_percent,
            Some(50)
        );
    }

    #[test]
    fn smallest_headroom_wins() {
        let s = ReportSettings {
            load_full_per_core: 2.0,
            ..Default::default()
        };
        let m = Measurements {
            cpu_idle_percent: Some(70.0),
            load_per_core: Some(1.0),
            mem_available_percent: Some(50.0),
            command_percent: None,
            established_connections: None,
        };
        let r = build(&m, &Override::None, &s);
        assert_eq!(r.reply.weight_percent, Some(50));
        assert!(r.why.starts_with("load 1.00/core"), "{}", r.why);
        // Memory only counts below the low watermark.
        let m = Measurements {
            mem_available_percent: Some(2.5),
            ..m
        };
        let r = build(&m, &Override::None, &s);
        assert_eq!(r.reply.weight_percent, Some(25));
        assert!(r.why.starts_with("memory available 2.5%"), "{}", r.why);
        let m = Measurements {
            command_percent: Some(15.0),
            ..m
        };
        assert_eq!(
            build(&m, &Override::None, &s).reply.weight_percent,
            Some(15)
        );
        // Overloaded: negative headroom, floored.
        let m = Measurements {
            load_per_core: Some(9.0),
            ..Default::default()
        };
        assert_eq!(
            build(&m, &Override::None, &s).reply.weight_percent,
            Some(10)
        );
        // NaN from a broken command is ignored rather than poisoning min.
        let m = Measurements {
            cpu_idle_percent: Some(60.0),
            command_percent: Some(f64::NAN),
            ..Default::default()
        };
        assert_eq!(
            build(&m, &Override::None, &s).reply.weight_percent,
            Some(60)
        );
    }

    #[test]
    fn connections_become_headroom() {
        let s = ReportSettings {
            max_connections: Some(400),
            ..Default::default()
        };
        let m = Measurements {
            cpu_idle_percent: Some(90.0),
            established_connections: Some(100),
            ..Default::default()
        };
        let r = build(&m, &Override::None, &s);
        assert_eq!(r.reply.weight_percent, Some(75));
        assert_eq!(r.why, "100 of 400 connections -> 75%");
        // Fewer connections than the CPU headroom: CPU decides.
        let m = Measurements {
            established_connections: Some(4),
            ..m
        };
        assert_eq!(weight(&m, &s), Some(90));
        // Over the maximum: floored like any overload, never drained.
        let m = Measurements {
            established_connections: Some(1000),
            ..m
        };
        assert_eq!(weight(&m, &s), Some(10));
        // A count without a configured maximum (or a 0 one) is no signal.
        for max in [None, Some(0)] {
            let s = ReportSettings {
                max_connections: max,
                ..Default::default()
            };
            assert_eq!(weight(&m, &s), Some(90));
        }
    }

    #[test]
    fn no_measurement_no_weight() {
        let r = build(
            &Measurements::default(),
            &Override::None,
            &ReportSettings::default(),
        );
        assert_eq!(r.reply.to_line(), "ready up\n");
        assert_eq!(r.why, "no measurement yet, weight not advertised");
    }

    #[test]
    fn overrides() {
        let s = ReportSettings::default();
        let m = cpu(40.0);
        assert_eq!(line(&m, &Override::Ready, &s), "ready 100% up\n");
        assert_eq!(line(&m, &Override::Drain, &s), "drain 40% up\n");
        assert_eq!(line(&m, &Override::Maint, &s), "maint 40%\n");
        let down = Override::parse("down # disk full\n").unwrap();
        let r = build(&m, &down, &s);
        assert_eq!(r.reply.to_line(), "ready 40% down #disk full\n");
        assert_eq!(r.why, "override down #disk full (cpu idle 40.0% -> 40%)");
        assert_eq!(
            line(&Measurements::default(), &Override::Drain, &s),
            "drain up\n"
        );
    }

    #[test]
    fn replies_parse_back() {
        use crate::agent_check::Packet;
        let s = ReportSettings::default();
        for ov in ["", "ready", "drain", "maint", "stopped", "fail#db gone"] {
            let ov = Override::parse(ov).unwrap();
            for m in [cpu(33.0), Measurements::default()] {
                let r = build(&m, &ov, &s).reply;
                let bytes = r.to_line();
                let back = AgentReply::parse(&Packet::new_checked(bytes.as_bytes()).unwrap());
                assert_eq!(back.as_ref(), Ok(&r), "{bytes:?}");
            }
        }
    }

    #[test]
    fn override_file_parsing() {
        let p = Override::parse;
        assert_eq!(p(""), Ok(Override::None));
        assert_eq!(p("\n  \n# a comment\n"), Ok(Override::None));
        assert_eq!(p("none\n"), Ok(Override::None));
        assert_eq!(p("READY"), Ok(Override::Ready));
        assert_eq!(p("# why: kernel upgrade\ndrain\n"), Ok(Override::Drain));
        assert_eq!(p("  maint  \r\n"), Ok(Override::Maint));
        assert_eq!(
            p("down"),
            Ok(Override::Down {
                state: HealthState::Down,
                reason: None
            })
        );
        let reason = |s: &str| Reason::new(s).unwrap();
        assert_eq!(
            p("down#disk full\n"),
            Ok(Override::Down {
                state: HealthState::Down,
                reason: reason("disk full")
            })
        );
        assert_eq!(
            p("Stopped  #  by ops  \n"),
            Ok(Override::Down {
                state: HealthState::Stopped,
                reason: reason("by ops")
            })
        );
        assert_eq!(
            p("fail #"),
            Ok(Override::Down {
                state: HealthState::Fail,
                reason: None
            })
        );
        assert_eq!(p("dran"), Err(OverrideError::UnknownWord("dran".into())));
        assert_eq!(p("drain maint").unwrap_err().as_str(), "too_many_words");
        assert_eq!(p("drain #why"), Err(OverrideError::ReasonNotAllowed));
        assert_eq!(p("dwn #why").unwrap_err().as_str(), "unknown_word");
        assert_eq!(p("down #caf\u{e9}").unwrap_err().as_str(), "bad_reason");
    }

    #[test]
    fn signal_and_file_overrides_combine_to_the_stronger() {
        let drained = SignalOverride::Drain;
        let p = |t: &str| Override::parse(t).unwrap();
        assert_eq!(effective_override(&p(""), drained), (Override::Drain, true));
        assert_eq!(
            effective_override(&p("ready"), drained),
            (Override::Drain, true)
        );
        assert_eq!(
            effective_override(&p("drain"), drained),
            (Override::Drain, false)
        );
        assert_eq!(
            effective_override(&p("maint"), drained),
            (Override::Maint, false)
        );
        assert_eq!(
            effective_override(&p("down #disk"), drained),
            (p("down #disk"), false)
        );
        // Without a signal the file alone decides.
        for text in ["", "ready", "drain", "maint", "stopped"] {
            assert_eq!(
                effective_override(&p(text), SignalOverride::None),
                (p(text), false)
            );
        }
    }

    #[test]
    fn override_display() {
        for text in ["none", "ready", "drain", "maint", "down", "fail #db gone"] {
            assert_eq!(Override::parse(text).unwrap().to_string(), text);
        }
    }
}
