//! What a daemon keeps in `[control] state_dir` so it outlives restarts (the operator's
//! drains and maintenance in directord, forced backups in vrrpd): one JSON file each, written
//! whole and renamed into place, so a crash mid-write leaves the old file, never half of one.

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a state file could not be read or kept.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {source} (left as it is; the next change rewrites it)")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The file's value; a missing file is `T::default()`. On an error the caller starts from the
/// default and reports it: a damaged file is left untouched for the operator to look at.
pub fn load<T: DeserializeOwned + Default>(path: &Path) -> Result<T, StateError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(T::default()),
        Err(source) => {
            return Err(StateError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    serde_json::from_str(&text).map_err(|source| StateError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Writes `value` to `path` (creating its directory), through a `.partial` file renamed over it.
pub fn save<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    let failed = |source| StateError::Io {
        path: path.to_owned(),
        source,
    };
    let text = serde_json::to_string_pretty(value)
        .map_err(io::Error::from)
        .map_err(failed)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    std::fs::write(&partial, text).map_err(failed)?;
    std::fs::rename(&partial, path).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_value_loads_back_and_a_missing_file_is_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        assert_eq!(load::<Vec<String>>(&path).unwrap(), Vec::<String>::new());
        save(&path, &vec!["VI_1".to_owned()]).unwrap();
        assert_eq!(load::<Vec<String>>(&path).unwrap(), vec!["VI_1"]);
        assert!(!dir.path().join("sub/state.json.partial").exists());
    }

    #[test]
    fn a_damaged_file_is_an_error_and_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "{not json").unwrap();
        let e = load::<Vec<String>>(&path).unwrap_err();
        assert!(matches!(e, StateError::Parse { .. }), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{not json");
    }
}
