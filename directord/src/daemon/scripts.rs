//! keepalived's checker notify scripts: a real server's `notify_up` / `notify_down` when its
//! check changes its state, a service's `quorum_up` / `quorum_down` when it gains or loses
//! quorum. Each runs as `/bin/sh -c COMMAND` with the words the operator wrote (keepalived
//! adds no arguments to these), in the background: the table never waits for a script.

use std::collections::HashMap;
use std::process::Stdio;

use lvs_config::Config;
use tracing::{info, warn};

use directord::table::{ServerId, service_key};

/// The scripts of one real-server entry.
#[derive(Debug, Clone, Default)]
pub struct RealScripts {
    pub up: Option<String>,
    pub down: Option<String>,
}

/// Every entry that has a script, so a health change costs one lookup.
pub fn real_scripts(config: &Config) -> HashMap<ServerId, RealScripts> {
    let mut scripts = HashMap::new();
    for vs in &config.virtual_servers {
        let Some(key) = service_key(vs) else { continue };
        for real in &vs.real {
            if real.notify_up.is_some() || real.notify_down.is_some() {
                scripts.insert(
                    (key, real.address),
                    RealScripts {
                        up: real.notify_up.clone(),
                        down: real.notify_down.clone(),
                    },
                );
            }
        }
    }
    scripts
}

/// Starts `command` and logs how it ended; `why` names the event in the log.
pub fn run(command: &str, why: String) {
    let command = command.to_owned();
    tokio::spawn(async move {
        let status = tokio::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&command)
            .stdin(Stdio::null())
            .status()
            .await;
        match status {
            Ok(status) if status.success() => info!("{why}: ran {command:?}"),
            Ok(status) => warn!("{why}: {command:?} ended with {status}"),
            Err(e) => warn!("{why}: cannot run {command:?}: {e}"),
        }
    });
}

/// How long a script run at shutdown may take: keepalived gives each one a second too.
pub const AT_SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs `command` to its end or `timeout` (then it is killed), for the scripts at shutdown,
/// which must have run before the daemon exits.
pub async fn run_within(command: &str, why: &str, timeout: std::time::Duration) {
    let child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .status();
    match tokio::time::timeout(timeout, child).await {
        Ok(Ok(status)) if status.success() => info!("{why}: ran {command:?}"),
        Ok(Ok(status)) => warn!("{why}: {command:?} ended with {status}"),
        Ok(Err(e)) => warn!("{why}: cannot run {command:?}: {e}"),
        Err(_) => warn!("{why}: {command:?} still running after {timeout:?}, killed"),
    }
}
