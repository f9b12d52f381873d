//! The operator's forced backups (`lvsadm vrrp force-backup|release NAME`), kept in
//! `<state_dir>/vrrp-forced.json`: a director restarted (or rebooted) during maintenance must
//! not take mastership back before the operator releases it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use lvs_control::state::{self, StateError};

const FILE: &str = "vrrp-forced.json";

/// Why a force-backup or release was refused.
#[derive(Debug, thiserror::Error)]
pub enum ForceError {
    #[error("no VRRP instance or sync group named {0:?}")]
    Unknown(String),
    #[error("not kept, so not applied: {0}")]
    Save(#[from] StateError),
}

#[derive(Debug)]
pub struct Forced {
    path: PathBuf,
    /// Instance names.
    names: BTreeSet<String>,
}

impl Forced {
    /// What `state_dir` holds; a damaged file is reported and nothing is held until the next
    /// change rewrites it.
    pub fn load(state_dir: &Path) -> (Forced, Option<StateError>) {
        let path = state_dir.join(FILE);
        let (names, problem) = match state::load(&path) {
            Ok(names) => (names, None),
            Err(e) => (BTreeSet::new(), Some(e)),
        };
        (Forced { path, names }, problem)
    }

    /// [`Forced::load`], a damaged file logged.
    pub fn load_reporting(state_dir: &Path) -> Forced {
        let (forced, problem) = Forced::load(state_dir);
        if let Some(problem) = problem {
            tracing::warn!("forced backups: {problem}");
        }
        forced
    }

    pub fn contains(&self, instance: &str) -> bool {
        self.names.contains(instance)
    }

    /// The instances `name` stands for: a sync group's members (groups are (name, members)),
    /// or the one instance.
    pub fn resolve(
        name: &str,
        instances: &[&str],
        groups: &[(&str, &[String])],
    ) -> Result<Vec<String>, ForceError> {
        if let Some((_, members)) = groups.iter().find(|(group, _)| *group == name) {
            return Ok(members.to_vec());
        }
        if instances.contains(&name) {
            return Ok(vec![name.to_owned()]);
        }
        Err(ForceError::Unknown(name.to_owned()))
    }

    /// Forces (or releases) `instances` and writes the file before anything is applied, so a
    /// crash right after cannot lose it.
    pub fn set(&mut self, instances: &[String], forced: bool) -> Result<(), ForceError> {
        let mut names = self.names.clone();
        for name in instances {
            if forced {
                names.insert(name.clone());
            } else {
                names.remove(name);
            }
        }
        state::save(&self.path, &names)?;
        self.names = names;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_stand_for_their_members_and_a_restart_reads_the_file_back() {
        let dir = tempfile::tempdir().unwrap();
        let (mut forced, problem) = Forced::load(dir.path());
        assert!(problem.is_none());
        let members = ["VI_1".to_owned(), "VI_2".to_owned()];
        let groups = [("G", &members[..])];
        let members = Forced::resolve("G", &["VI_1", "VI_2", "VI_3"], &groups).unwrap();
        forced.set(&members, true).unwrap();
        let (mut again, _) = Forced::load(dir.path());
        assert!(again.contains("VI_1") && again.contains("VI_2") && !again.contains("VI_3"));
        again.set(&["VI_1".to_owned()], false).unwrap();
        let (again, _) = Forced::load(dir.path());
        assert!(!again.contains("VI_1") && again.contains("VI_2"));
        assert!(matches!(
            Forced::resolve("VI_9", &["VI_1"], &groups),
            Err(ForceError::Unknown(_))
        ));
    }

    #[test]
    fn a_change_that_cannot_be_kept_is_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "").unwrap();
        // The state directory is a regular file: nothing can be written under it.
        let (mut forced, _) = Forced::load(&blocker);
        assert!(forced.set(&["VI_1".to_owned()], true).is_err());
        assert!(!forced.contains("VI_1"));
    }
}
