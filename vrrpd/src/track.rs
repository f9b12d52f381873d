//! Tracking, with keepalived's semantics: each tracked object (interface, script, file,
//! process) moves the instance's priority by its weight, or with weight 0 puts the instance in
//! FAULT while it fails.
//!
//! - interface, process, script: a negative weight is added while the object fails, a positive
//!   one while it is healthy;
//! - file: the integer it holds times the weight is added; with weight 0 a non-zero value is a
//!   fault.
//!
//! Sans-IO: the daemon observes the objects and feeds the results here.

/// What one tracked object currently says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// Interface up, process running, script succeeding (after rise/fall).
    Healthy(bool),
    /// The integer a tracked file holds.
    Value(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracked {
    pub weight: i32,
    pub observation: Observation,
}

/// Effective priority and fault from the configured priority and every tracked object.
/// An address owner (255) keeps its priority; the core clamps everyone else into 1..=254.
pub fn evaluate(base: u8, tracked: &[Tracked]) -> (u8, bool) {
    let mut fault = false;
    let mut delta: i64 = 0;
    for t in tracked {
        let weight = i64::from(t.weight);
        match t.observation {
            Observation::Healthy(healthy) if t.weight == 0 => fault |= !healthy,
            Observation::Healthy(healthy) => {
                if healthy == (weight > 0) {
                    delta += weight;
                }
            }
            Observation::Value(value) if t.weight == 0 => fault |= value != 0,
            Observation::Value(value) => delta = delta.saturating_add(value.saturating_mul(weight)),
        }
    }
    if base == 255 {
        return (255, fault);
    }
    let priority = (i64::from(base) + delta).clamp(1, 254);
    (u8::try_from(priority).unwrap_or(254), fault)
}

/// Consecutive-result hysteresis of a tracked script: `rise` successes to become healthy, `fall`
/// failures to become failing. Starts failing, like keepalived's scripts before their first run.
#[derive(Debug, Clone)]
pub struct RiseFall {
    rise: u32,
    fall: u32,
    healthy: bool,
    streak: u32,
}

impl RiseFall {
    pub fn new(rise: u32, fall: u32) -> Self {
        RiseFall {
            rise: rise.max(1),
            fall: fall.max(1),
            healthy: false,
            streak: 0,
        }
    }

    pub fn healthy(&self) -> bool {
        self.healthy
    }

    /// Records one result; returns true when the state changed.
    pub fn record(&mut self, success: bool) -> bool {
        if success == self.healthy {
            self.streak = 0;
            return false;
        }
        self.streak += 1;
        let needed = if success { self.rise } else { self.fall };
        if self.streak >= needed {
            self.healthy = success;
            self.streak = 0;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy(weight: i32, up: bool) -> Tracked {
        Tracked {
            weight,
            observation: Observation::Healthy(up),
        }
    }

    #[test]
    fn negative_weights_apply_while_failing_positive_while_healthy() {
        assert_eq!(evaluate(150, &[healthy(-60, true)]), (150, false));
        assert_eq!(evaluate(150, &[healthy(-60, false)]), (90, false));
        assert_eq!(evaluate(100, &[healthy(20, true)]), (120, false));
        assert_eq!(evaluate(100, &[healthy(20, false)]), (100, false));
        assert_eq!(
            evaluate(150, &[healthy(-60, false), healthy(-60, false)]),
            (30, false)
        );
    }

    #[test]
    fn weight_zero_means_fault() {
        assert_eq!(evaluate(150, &[healthy(0, false)]), (150, true));
        assert_eq!(evaluate(150, &[healthy(0, true)]), (150, false));
        assert_eq!(
            evaluate(
                150,
                &[Tracked {
                    weight: 0,
                    observation: Observation::Value(3)
                }]
            ),
            (150, true)
        );
    }

    #[test]
    fn files_multiply_and_priorities_stay_in_range() {
        let file = |v| Tracked {
            weight: 10,
            observation: Observation::Value(v),
        };
        assert_eq!(evaluate(100, &[file(-3)]), (70, false));
        assert_eq!(evaluate(100, &[file(50)]), (254, false));
        assert_eq!(evaluate(100, &[file(-50)]), (1, false));
        assert_eq!(evaluate(255, &[file(-50)]), (255, false));
    }

    #[test]
    fn scripts_rise_and_fall() {
        let mut script = RiseFall::new(2, 3);
        assert!(!script.healthy());
        assert!(!script.record(true));
        assert!(script.record(true));
        assert!(script.healthy());
        assert!(!script.record(false));
        assert!(!script.record(true));
        assert!(!script.record(false));
        assert!(!script.record(false));
        assert!(script.record(false));
        assert!(!script.healthy());
    }
}
