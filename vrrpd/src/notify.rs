//! What keepalived tells its notify scripts and FIFO, so its users' scripts and FIFO readers
//! run unchanged: the per-state scripts get no argument, `notify` (our `notify_state`) gets
//! `INSTANCE|GROUP <name> <STATE> <priority>`, and the FIFO a line
//! `INSTANCE|GROUP "<name>" <STATE> <priority>` (keepalived's vrrp/vrrp_notify.c). A group's
//! priority is always 0.
//!
//! Sans-IO: the daemon spawns the commands and writes the lines.

use crate::instance::State;

/// Who changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Instance,
    Group,
}

impl Subject {
    fn word(self) -> &'static str {
        match self {
            Subject::Instance => "INSTANCE",
            Subject::Group => "GROUP",
        }
    }
}

/// keepalived's name for the state entered. An instance only returns to Initialize when it
/// stops, which keepalived reports as STOP.
pub fn state_word(state: State) -> &'static str {
    match state {
        State::Master => "MASTER",
        State::Backup => "BACKUP",
        State::Fault => "FAULT",
        State::Initialize => "STOP",
    }
}

/// One state change as keepalived reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice<'a> {
    pub subject: Subject,
    pub name: &'a str,
    pub state: State,
    /// The instance's effective priority (tracking included); 0 for a group.
    pub priority: u8,
}

impl Notice<'_> {
    /// The arguments added to the `notify_state` command's own words.
    pub fn arguments(&self) -> [String; 4] {
        [
            self.subject.word().to_owned(),
            self.name.to_owned(),
            state_word(self.state).to_owned(),
            self.priority.to_string(),
        ]
    }

    /// The FIFO line, newline included.
    pub fn fifo_line(&self) -> String {
        format!(
            "{} \"{}\" {} {}\n",
            self.subject.word(),
            self.name,
            state_word(self.state),
            self.priority
        )
    }
}

/// A sync group's state from its members', as keepalived's vrrp_sync.c moves it: FAULT as
/// soon as one member is in fault, MASTER once all are master, BACKUP when any member is
/// backup otherwise; `None` while every member is still initialising.
pub fn group_state(members: &[State]) -> Option<State> {
    if members.contains(&State::Fault) {
        Some(State::Fault)
    } else if !members.is_empty() && members.iter().all(|s| *s == State::Master) {
        Some(State::Master)
    } else if members.contains(&State::Backup) {
        Some(State::Backup)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact strings keepalived 2.2.7 wrote for these changes (recorded from its
    /// notify script and FIFO).
    #[test]
    fn arguments_and_fifo_lines_are_keepalived_s() {
        let instance = Notice {
            subject: Subject::Instance,
            name: "VI_1",
            state: State::Master,
            priority: 150,
        };
        assert_eq!(instance.arguments(), ["INSTANCE", "VI_1", "MASTER", "150"]);
        assert_eq!(instance.fifo_line(), "INSTANCE \"VI_1\" MASTER 150\n");
        let group = Notice {
            subject: Subject::Group,
            name: "G1",
            state: State::Initialize,
            priority: 0,
        };
        assert_eq!(group.arguments(), ["GROUP", "G1", "STOP", "0"]);
        assert_eq!(group.fifo_line(), "GROUP \"G1\" STOP 0\n");
    }

    #[test]
    fn a_group_is_in_fault_with_one_member_master_with_all_backup_otherwise() {
        use State::{Backup, Fault, Initialize, Master};
        assert_eq!(group_state(&[Initialize, Initialize]), None);
        assert_eq!(group_state(&[Backup, Initialize]), Some(Backup));
        assert_eq!(group_state(&[Master, Backup]), Some(Backup));
        assert_eq!(group_state(&[Master, Master]), Some(Master));
        assert_eq!(group_state(&[Master, Fault]), Some(Fault));
        assert_eq!(group_state(&[Backup, Fault]), Some(Fault));
        assert_eq!(group_state(&[]), None);
    }
}
