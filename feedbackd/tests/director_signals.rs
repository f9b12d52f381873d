//! A director's feedbackd outlives the drain signals meant for agents, across reloads.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
}

/// SIGTERM, then SIGKILL after 5 s: a wedged daemon must not hang the test.
fn stop(child: &mut Child) -> Option<std::process::ExitStatus> {
    signal(child, libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Some(exit) = child.try_wait().unwrap() {
            return Some(exit);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// A director's config in `dir`: one real server, its agent at `agent`, `feedback` lines
/// added to [feedback].
fn director_config(dir: &Path, agent: &str, feedback: &str) -> PathBuf {
    let config = dir.join("director.toml");
    std::fs::write(
        &config,
        format!(
            "[control]\nsocket_dir = {:?}\n\n[[virtual_server]]\naddress = \"192.0.2.100:80\"\n\
             forwarding = \"dr\"\n\n[[virtual_server.real]]\naddress = \"192.0.2.10:80\"\n\
             weight = 100\n\n[feedback]\n{feedback}\n\n[[feedback.agent]]\n\
             real = \"192.0.2.10:80\"\naddress = \"{agent}\"\n",
            dir.display().to_string()
        ),
    )
    .unwrap();
    config
}

fn spawn_feedbackd(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_feedbackd"))
        .arg("--config")
        .arg(config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn status_of(
    socket: &Path,
    within: Duration,
) -> Result<serde_json::Value, lvs_control::ControlError> {
    lvs_control::call(socket, &json!({"cmd": "status"}), within)
}

/// Until `socket` answers, at most 10 s.
fn wait_for_status(socket: &Path) {
    let started = Instant::now();
    while status_of(socket, Duration::from_secs(1)).is_err()
        && started.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigusr1_and_sigusr2_do_not_stop_a_director() {
    let dir = tempfile::tempdir().unwrap();
    // The agent's port on loopback is closed: this feedbackd only has to be running.
    let config = director_config(dir.path(), "127.0.0.1:9", "");
    let mut feedbackd = spawn_feedbackd(&config);
    let socket = dir.path().join("feedbackd.sock");
    let status = || status_of(&socket, Duration::from_secs(2));
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

// Caught: feedbackd awaited directord's answer with no deadline, in its own loop: a directord
// stopped (SIGSTOP) or wedged stalled polling, status and the watchdog pings until systemd
// killed feedbackd. Here directord's socket accepts and never answers.
#[test]
fn a_wedged_directord_does_not_stall_the_loop() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let wedged = std::os::unix::net::UnixListener::bind(dir.path().join("directord.sock")).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok((stream, _)) = wedged.accept() {
            held.push(stream);
        }
    });
    let agent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let agent_addr = agent.local_addr().unwrap();
    std::thread::spawn(move || {
        while let Ok((mut stream, _)) = agent.accept() {
            let _ = stream.write_all(b"ready 50% up\n");
        }
    });
    let config = director_config(dir.path(), &agent_addr.to_string(), "interval = \"200ms\"");
    let mut feedbackd = spawn_feedbackd(&config);
    let socket = dir.path().join("feedbackd.sock");
    let status = || status_of(&socket, Duration::from_secs(1));
    wait_for_status(&socket);
    // Long enough for several hand-overs to time out (2 s each).
    let mut answers = Vec::new();
    let watching = Instant::now();
    while watching.elapsed() < Duration::from_secs(5) {
        answers.push(status());
        std::thread::sleep(Duration::from_millis(250));
    }
    let stopped = stop(&mut feedbackd);
    let mut log = String::new();
    std::io::Read::read_to_string(feedbackd.stderr.as_mut().unwrap(), &mut log).unwrap();

    let unanswered = answers.iter().filter(|a| a.is_err()).count();
    assert_eq!(
        unanswered,
        0,
        "{unanswered} of {} status calls unanswered while directord was wedged: {:?}\n{log}",
        answers.len(),
        answers.iter().find(|a| a.is_err())
    );
    let last = answers.last().unwrap().as_ref().unwrap();
    assert_eq!(
        last["agents"][0]["replies"].as_u64().map(|n| n > 5),
        Some(true),
        "{last}"
    );
    let timeouts = last["directord_failures"]["timeout"].as_u64().unwrap_or(0);
    assert!(
        timeouts >= 1,
        "no hand-over counted as timed out: {last}\n{log}"
    );
    assert!(
        stopped.is_some(),
        "feedbackd did not stop on SIGTERM\n{log}"
    );
}

// Caught: a second feedbackd on the same socket directory removed the first one's control
// socket and bound its own, leaving the first running and unreachable.
#[test]
fn a_second_feedbackd_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = director_config(dir.path(), "127.0.0.1:9", "");
    let spawn = || spawn_feedbackd(&config);
    let mut first = spawn();
    let socket = dir.path().join("feedbackd.sock");
    let status = || status_of(&socket, Duration::from_secs(2));
    wait_for_status(&socket);
    let first_inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&socket).unwrap());
    let mut second = spawn();
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = second.try_wait().unwrap() {
            break Some(exit);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if exit.is_none() {
        let _ = second.kill();
        let _ = second.wait();
    }
    let mut log = String::new();
    std::io::Read::read_to_string(second.stderr.as_mut().unwrap(), &mut log).unwrap();
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&socket).unwrap());
    let answered = status();
    stop(&mut first);

    let exit = exit.unwrap_or_else(|| panic!("the second feedbackd kept running\n{log}"));
    assert!(!exit.success(), "{exit:?}\n{log}");
    assert!(log.contains("another feedbackd is running"), "{log}");
    assert_eq!(inode, first_inode, "the first one's socket was replaced");
    answered.unwrap_or_else(|e| panic!("the first feedbackd no longer answers: {e}"));
}

// Caught: the agent logged a line each time its measurement moved (~86k lines a day per real
// server), and under journald its lines had a timestamp of their own and no priority.
// Here the load wanders within one weight band: one line at start, none per sample; and with
// stderr as the journal's stream (JOURNAL_STREAM naming its device:inode), lines start with
// their priority and carry no timestamp.
#[test]
fn the_agent_logs_state_changes_not_samples() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let load = dir.path().join("load.sh");
    // 40..59 % busy, a different figure each second.
    std::fs::write(&load, "echo $(( 40 + $(date +%s) % 20 ))\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // An override file that does not parse, read every second: said once.
    let broken = dir.path().join("override");
    std::fs::write(&broken, "sideways 42\n").unwrap();
    let config = dir.path().join("director.toml");
    std::fs::write(
        &config,
        format!(
            "[control]\nsocket_dir = {:?}\n\n[agent]\nlisten = \"127.0.0.1:{port}\"\n\
             report = \"command\"\ncommand = \"/bin/sh {}\"\noverride_file = {:?}\n",
            dir.path().display().to_string(),
            load.display(),
            broken.display().to_string()
        ),
    )
    .unwrap();
    let log_path = dir.path().join("stderr");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let meta = log_file.metadata().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_feedbackd"));
    command
        .arg("--agent")
        .arg("--config")
        .arg(&config)
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stderr(log_file);
    // Started as systemd would without LimitNOFILE: a soft limit far below the hard one.
    // SAFETY: getrlimit and setrlimit are async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
            limit.rlim_cur = 256;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut agent = command.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(4500));
    let stopped = stop(&mut agent);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(stopped.is_some_and(|s| s.success()), "{stopped:?}\n{log}");
    let reporting = log.lines().filter(|l| l.contains("reporting")).count();
    assert_eq!(reporting, 1, "a line per sample:\n{log}");
    // Caught: feedbackd did not raise its descriptor limit (it has a main of its own).
    assert!(log.contains("(raised from 256)"), "{log}");
    let broken_override = log.matches("keeping the previous override").count();
    assert_eq!(
        broken_override, 1,
        "a line per read of a broken file:\n{log}"
    );
    for line in log.lines() {
        assert!(
            line.starts_with("<6>") || line.starts_with("<4>") || line.starts_with("<3>"),
            "no priority prefix: {line:?}"
        );
        assert!(
            !line.contains("Z  INFO") && !line.contains("2026-"),
            "a timestamp: {line:?}"
        );
    }
}

/// One HTTP GET on loopback, the whole reply (the listener closes after one request).
fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}

// Caught: with `control.metrics` set, a SIGHUP made feedbackd run again and bind its HTTP port
// while the previous run's listener still held it: "Address already in use", and feedbackd
// exited (seen in the director pair). Also: /status.json is the control socket's status.
#[test]
fn a_reload_serves_http_again() {
    let dir = tempfile::tempdir().unwrap();
    // feedbackd's port is the base + 3: a free one, found by binding it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = director_config(dir.path(), "127.0.0.1:9", "");
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "[control]\n",
        &format!("[control]\nmetrics = \"127.0.0.1:{}\"\n", port - 3),
        1,
    );
    std::fs::write(&config, text).unwrap();
    let mut feedbackd = spawn_feedbackd(&config);
    let socket = dir.path().join("feedbackd.sock");
    wait_for_status(&socket);
    for round in 0..3 {
        if round > 0 {
            signal(&feedbackd, libc::SIGHUP);
            std::thread::sleep(Duration::from_millis(300));
            wait_for_status(&socket);
        }
        let reply = http_get(port, "/status.json");
        let alive = feedbackd.try_wait().unwrap();
        if alive.is_some() || reply.is_err() {
            stop(&mut feedbackd);
            let mut log = String::new();
            std::io::Read::read_to_string(feedbackd.stderr.as_mut().unwrap(), &mut log).unwrap();
            panic!("round {round}: exited {alive:?}, reply {reply:?}\n{log}");
        }
        let reply = reply.unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        let body = reply.split_once("\r\n\r\n").unwrap().1;
        let status: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(status["agents"][0]["real"], "192.0.2.10:80", "{status}");
        let metrics = http_get(port, "/metrics").unwrap();
        assert!(metrics.contains("lvs_director_build_info{"), "{metrics}");
    }
    assert!(stop(&mut feedbackd).is_some_and(|exit| exit.success()));
}
