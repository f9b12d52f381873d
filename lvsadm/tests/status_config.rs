//! `lvsadm status` while the operator's config is broken: it says so, and still asks the
//! daemons where the broken file says their sockets are.

use std::process::Command;

#[test]
fn a_broken_config_is_reported_and_its_socket_dir_still_used() {
    let dir = tempfile::tempdir().unwrap();
    let sockets = dir.path().join("sockets");
    let config = dir.path().join("director.toml");
    std::fs::write(
        &config,
        format!(
            "[control]\nsocket_dir = {:?}\n\n[bogus]\n",
            sockets.display().to_string()
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_lvsadm"))
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stderr.contains(&format!("{}:4:2: unknown field `bogus`", config.display())),
        "{stderr}"
    );
    assert!(stderr.contains(&sockets.display().to_string()), "{stderr}");
    assert!(
        stdout.contains(&format!("no {}", sockets.join("directord.sock").display())),
        "{stdout}"
    );
}
