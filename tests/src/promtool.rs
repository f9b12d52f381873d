//! Prometheus's own checker, `promtool` (Debian `prometheus`), over what the daemons serve and
//! over monitoring/'s alert rules.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The repository's monitoring/ folder: the Grafana dashboard and the alert rules.
pub fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitoring")
}

fn promtool() -> Result<Command, String> {
    let found = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        return Err(
            "promtool is missing: scripts/install-deps installs it (Debian prometheus)".into(),
        );
    }
    Ok(Command::new("promtool"))
}

/// `promtool check metrics` on a scrape: exposition errors and lint problems (names, types,
/// units, help) come back as the error.
pub fn check_metrics(scrape: &str) -> Result<(), String> {
    let mut child = promtool()?
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("promtool: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("promtool: no stdin")?
        .write_all(scrape.as_bytes())
        .map_err(|e| format!("promtool stdin: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("promtool: {e}"))?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && said.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("promtool check metrics: {said}\non:\n{scrape}"))
    }
}

/// Runs `promtool ARGS...` and returns its output, or the output as the error when it fails.
pub fn run(args: &[&str]) -> Result<String, String> {
    let out = promtool()?
        .args(args)
        .output()
        .map_err(|e| format!("promtool: {e}"))?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(said)
    } else {
        Err(format!("promtool {}: {said}", args.join(" ")))
    }
}
