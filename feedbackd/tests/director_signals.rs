//! A director's feedbackd outlives the drain signals meant for agents, across reloads.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
}

#[test]
fn sigusr1_and_sigusr2_do_not_stop_a_director() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("director.toml");
    // The agent's port on loopback is closed: this feedbackd only has to be running.
    std::fs::write(
        &config,
        format!(
            "[control]\nsocket_dir = {:?}\n\n[[virtual_server]]\naddress = \"192.0.2.100:80\"\n\
             forwarding = \"dr\"\n\n[[virtual_server.real]]\naddress = \"192.0.2.10:80\"\n\n\
             [feedback]\n\n[[feedback.agent]]\nreal = \"192.0.2.10:80\"\n\
             address = \"127.0.0.1:9\"\n",
            dir.path().display().to_string()
        ),
    )
    .unwrap();
    let mut feedbackd = Command::new(env!("CARGO_BIN_EXE_feedbackd"))
        .arg("--config")
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let socket = dir.path().join("feedbackd.sock");
    let status = || {
        lvs_control::call::<_, serde_json::Value>(
            &socket,
            &json!({"cmd": "status"}),
            Duration::from_secs(2),
        )
    };
    let started = Instant::now();
    while status().is_err() {
        assert!(
            feedbackd.try_wait().unwrap().is_none(),
            "feedbackd exited at start"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no control socket"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // After reloads, still one handler per signal: a run must not add its own.
    for _ in 0..2 {
        signal(&feedbackd, libc::SIGHUP);
        std::thread::sleep(Duration::from_millis(300));
        while status().is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no socket after SIGHUP"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    signal(&feedbackd, libc::SIGUSR1);
    signal(&feedbackd, libc::SIGUSR2);
    std::thread::sleep(Duration::from_millis(300));
    let alive = feedbackd.try_wait().unwrap();
    let answered = status();
    signal(&feedbackd, libc::SIGTERM);
    let exit = feedbackd.wait().unwrap();
    let mut log = String::new();
    std::io::Read::read_to_string(feedbackd.stderr.as_mut().unwrap(), &mut log).unwrap();

    assert!(
        alive.is_none(),
        "feedbackd died of a drain signal: {alive:?}\n{log}"
    );
    answered.unwrap_or_else(|e| panic!("no status after the signals: {e}\n{log}"));
    assert!(exit.success(), "{exit:?}\n{log}");
    assert_eq!(log.matches("SIGUSR1 ignored").count(), 1, "{log}");
    assert_eq!(log.matches("SIGUSR2 ignored").count(), 1, "{log}");
}
