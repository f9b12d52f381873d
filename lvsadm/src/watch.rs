//! `lvsadm watch`: every daemon's event stream as it happens (VRRP transitions, health
//! changes, reloads, sync role changes), one line per event, until interrupted. A daemon that
//! is away or restarts is followed again when it comes back.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use lvs_control::Followed;

/// The daemons that publish events.
pub const DAEMONS: [&str; 4] = ["vrrpd", "directord", "syncd", "feedbackd"];

/// One line of output.
fn line(daemon: &str, followed: &Followed) -> String {
    match followed {
        Followed::Event(json) => format!("{daemon} {json}"),
        Followed::Following => format!("{daemon} -- following its events"),
        Followed::Lost(why) => format!("{daemon} -- events lost: {why}"),
    }
}

/// Follows every daemon in `socket_dir` ([`lvs_control::follow`], as directord's status page
/// does); prints each line, with `events` it stops after that many events (for scripts
/// waiting for the next one).
pub fn run(socket_dir: &Path, events: Option<usize>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("lvsadm: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        for daemon in DAEMONS {
            let path = lvs_proto::socket_path(socket_dir, daemon);
            tokio::spawn(lvs_control::follow(daemon, path, tx.clone()));
        }
        drop(tx);
        let mut seen = 0;
        let stdout = std::io::stdout();
        while let Some((daemon, followed)) = rx.recv().await {
            if writeln!(stdout.lock(), "{}", line(daemon, &followed)).is_err() {
                // The reader went away (`lvsadm watch | head`).
                return ExitCode::SUCCESS;
            }
            if let Followed::Event(_) = followed {
                seen += 1;
                if events.is_some_and(|n| seen >= n) {
                    return ExitCode::SUCCESS;
                }
            }
        }
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixListener;
    use std::path::PathBuf;
    use std::time::Duration;

    /// A daemon's events arrive in order; when it goes away that is said, and when it is back
    /// (a restart) its events are followed again without the watcher doing anything.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_are_followed_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = lvs_proto::socket_path(dir.path(), "vrrpd");
        let serve = |path: PathBuf, events: &'static [&'static str]| {
            let listener = UnixListener::bind(&path).unwrap();
            std::thread::spawn(move || {
                let (mut stream, _) = listener.accept().unwrap();
                let mut request = String::new();
                BufReader::new(&stream).read_line(&mut request).unwrap();
                assert_eq!(request.trim(), lvs_proto::SUBSCRIBE);
                for event in events {
                    stream.write_all(format!("{event}\n").as_bytes()).unwrap();
                }
                drop(listener);
                let _ = std::fs::remove_file(&path);
            })
        };
        let first = serve(
            path.clone(),
            &[r#"{"state":"MASTER"}"#, r#"{"state":"BACKUP"}"#],
        );
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(lvs_control::follow("vrrpd", path.clone(), tx));
        let mut next = async || {
            let (daemon, followed) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .unwrap()
                .unwrap();
            line(daemon, &followed)
        };
        assert_eq!(next().await, "vrrpd -- following its events");
        assert_eq!(next().await, r#"vrrpd {"state":"MASTER"}"#);
        assert_eq!(next().await, r#"vrrpd {"state":"BACKUP"}"#);
        first.join().unwrap();
        assert!(next().await.starts_with("vrrpd -- events lost: "));
        let second = serve(path, &[r#"{"state":"FAULT"}"#]);
        // Retries while the socket is away report the loss once, not every second.
        let mut line = next().await;
        while line.starts_with("vrrpd -- events lost") {
            line = next().await;
        }
        assert_eq!(line, "vrrpd -- following its events");
        assert_eq!(next().await, r#"vrrpd {"state":"FAULT"}"#);
        second.join().unwrap();
    }
}
