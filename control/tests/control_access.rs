//! `control.group`: members read status through the control socket, changes stay root's.
//! The client runs as `nobody` (this test binary run again, setuid in pre_exec), so the
//! server sees a real non-root peer through SO_PEERCRED.
//!
//! Caught: monitoring had no way to read status but as root (the socket was 0600), and
//! nothing looked at who the peer was.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use lvs_control::directord::{Request, Response};
use nix::unistd::{Group, User};

const SOCKET_ENV: &str = "LVS_CONTROL_ACCESS_SOCKET";

/// The client half: does nothing unless the server half ran it.
#[test]
fn client_as_nobody() {
    let Some(path) = std::env::var_os(SOCKET_ENV) else {
        return;
    };
    let path = PathBuf::from(path);
    assert_ne!(
        nix::unistd::geteuid().as_raw(),
        0,
        "the client must not be root"
    );
    let status = lvs_control::call::<_, Response>(&path, &Request::STATUS, Duration::from_secs(5));
    assert!(status.is_ok(), "status refused: {:?}", status.err());
    let reload = lvs_control::call::<_, Response>(&path, &Request::Reload, Duration::from_secs(5));
    let error = reload.expect_err("a non-root peer reloaded").to_string();
    assert!(error.contains("permission denied"), "{error}");
    println!("client: status read, reload refused");
}

#[test]
fn a_group_member_reads_status_but_changes_nothing() {
    if std::env::var_os(SOCKET_ENV).is_some() {
        return;
    }
    let nobody = User::from_name("nobody").unwrap().expect("a nobody user");
    let group = Group::from_gid(nobody.gid)
        .unwrap()
        .expect("nobody's group");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let control = lvs_config::Control {
        socket_dir: dir.path().join("run"),
        group: Some(group.name.clone()),
        ..lvs_config::Control::default()
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (events, _) = tokio::sync::broadcast::channel::<()>(1);
        let socket = lvs_control::daemon::serve_control::<Request, Response, _>(
            &control,
            "directord",
            events,
        )
        .unwrap();
        std::fs::set_permissions(&control.socket_dir, std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let meta = std::fs::metadata(&socket.path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        assert_eq!(meta.gid(), nobody.gid.as_raw());

        let mut requests = socket.requests;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let served = tokio::spawn({
            let seen = std::sync::Arc::clone(&seen);
            async move {
                while let Some(incoming) = requests.recv().await {
                    seen.lock().unwrap().push(format!("{:?}", incoming.request));
                    incoming.reply_ok(Response::Done {});
                }
            }
        });

        let path = socket.path.clone();
        let (uid, gid) = (nobody.uid, nobody.gid);
        let output = tokio::task::spawn_blocking(move || {
            let mut client = Command::new(std::env::current_exe().unwrap());
            client
                .args(["--exact", "client_as_nobody", "--nocapture"])
                .env(SOCKET_ENV, &path);
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                client.pre_exec(move || {
                    nix::unistd::setgroups(&[]).map_err(std::io::Error::from)?;
                    nix::unistd::setgid(gid).map_err(std::io::Error::from)?;
                    nix::unistd::setuid(uid).map_err(std::io::Error::from)?;
                    Ok(())
                });
            }
            client.output().unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("client: status read, reload refused"),
            "client as nobody failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        socket.shutdown.cancel();
        served.abort();
        let seen = seen.lock().unwrap();
        assert!(seen.iter().any(|r| r.contains("Status")), "{seen:?}");
        assert!(
            !seen.iter().any(|r| r.contains("Reload")),
            "the reload reached the daemon: {seen:?}"
        );
    });
}
