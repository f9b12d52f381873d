//! Starting our daemons inside a test's namespaces and talking to their control sockets.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::netns::Netns;
use crate::process::{Guarded, wait_for};

/// One request on a daemon's control socket, errors as text for the test's report.
pub fn control(socket: &Path, request: &Value) -> Result<Value, String> {
    lvs_control::call(socket, request, Duration::from_secs(5)).map_err(|e| e.to_string())
}

/// Starts the workspace daemon `name` in `netns` on `config`, and returns once it answers a
/// status request on `socket`: from then on the test may rely on it serving.
pub fn start(netns: &Netns, name: &str, config: &Path, socket: &Path) -> Result<Guarded, String> {
    start_logged(netns, name, config, socket, None)
}

/// [`start`], with the daemon's log (its stderr) written to `log` when given, for a test that
/// asserts on what it logs; otherwise it goes to the test's own output.
pub fn start_logged(
    netns: &Netns,
    name: &str,
    config: &Path,
    socket: &Path,
    log: Option<&Path>,
) -> Result<Guarded, String> {
    let binary = crate::workspace_bin(name);
    let mut command = netns.command(&[binary.as_os_str(), "--config".as_ref(), config.as_os_str()]);
    if let Some(log) = log {
        let file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        command.stderr(file);
    }
    let process = Guarded::spawn(&mut command)?;
    wait_for(Duration::from_secs(10), || {
        control(socket, &json!({"cmd": "status"})).ok()
    })
    .ok_or(format!("{name} did not answer on {}", socket.display()))?;
    Ok(process)
}

/// Writes `text` as `dir/director.toml` and starts `name` on it; the config is expected to put
/// the control sockets in `dir` (`[control] socket_dir`). Returns the process and its socket.
pub fn start_with_config(
    netns: &Netns,
    name: &str,
    dir: &Path,
    text: &str,
) -> Result<(Guarded, std::path::PathBuf), String> {
    let config = dir.join("director.toml");
    std::fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
    let socket = dir.join(format!("{name}.sock"));
    let process = start(netns, name, &config, &socket)?;
    Ok((process, socket))
}
