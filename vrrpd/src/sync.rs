//! Sync groups with keepalived's `vrrp_sync_group` semantics: instances that must be master
//! on the same router (say, the outside and inside VIPs of a NAT director) change state
//! together.
//!
//! - FAULT spreads: while any member's own tracking says fault, every member is in FAULT.
//! - Leaving MASTER spreads: when one member drops to BACKUP (a better peer appeared), the
//!   members still MASTER yield too, announcing priority 0 so the peer takes them over after
//!   its skew time rather than its full Master_Down_Interval.
//! - Tracking weights do not apply inside a group (keepalived ignores them too): a weight
//!   would move one member's priority alone and split the group between routers, so every
//!   tracked object of a member counts as weight 0, a fault while it fails.
//!
//! Sans-IO: the daemon feeds member states and faults in and carries the answers out.

use crate::instance::State;
use crate::track::Tracked;

/// A member's effective fault: its own, or any other member's.
pub fn group_fault(own_faults: impl IntoIterator<Item = bool>) -> bool {
    own_faults.into_iter().any(|fault| fault)
}

/// Tracked objects of a group member, with weights turned into faults.
pub fn member_tracking(tracked: &[Tracked]) -> Vec<Tracked> {
    tracked
        .iter()
        .map(|t| Tracked {
            weight: 0,
            observation: t.observation,
        })
        .collect()
}

/// After a member went from `old` to `new`: the indices in `states` (the members' current
/// states, the changed one included) of those that must now yield mastership.
pub fn must_yield(old: State, new: State, states: &[State]) -> Vec<usize> {
    if old != State::Master || new != State::Backup {
        return Vec::new();
    }
    states
        .iter()
        .enumerate()
        .filter(|(_, state)| **state == State::Master)
        .map(|(index, _)| index)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::track::{Observation, evaluate};

    #[test]
    fn a_fault_anywhere_is_a_fault_everywhere() {
        assert!(group_fault([false, true, false]));
        assert!(!group_fault([false, false]));
    }

    #[test]
    fn weights_become_faults_inside_a_group() {
        let tracked = [
            Tracked {
                weight: -60,
                observation: Observation::Healthy(false),
            },
            Tracked {
                weight: 10,
                observation: Observation::Healthy(true),
            },
        ];
        assert_eq!(evaluate(150, &tracked), (90 + 10, false));
        assert_eq!(evaluate(150, &member_tracking(&tracked)), (150, true));
    }

    #[test]
    fn only_a_master_dropping_to_backup_pulls_the_other_masters_along() {
        let states = [State::Backup, State::Master, State::Master, State::Fault];
        assert_eq!(
            must_yield(State::Master, State::Backup, &states),
            vec![1, 2]
        );
        assert!(must_yield(State::Backup, State::Master, &states).is_empty());
        // Into FAULT is handled by group_fault, and INIT is a shutdown.
        assert!(must_yield(State::Master, State::Fault, &states).is_empty());
        assert!(must_yield(State::Master, State::Initialize, &states).is_empty());
    }
}
