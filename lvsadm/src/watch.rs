//! `lvsadm watch`: every daemon's event stream as it happens (VRRP transitions, health
//! changes, reloads, sync role changes), one line per event, until interrupted. A daemon that
//! is away or restarts is followed again when it comes back.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

/// How soon a daemon that is away is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// What a follower reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Event { daemon: &'static str, json: String },
    Followed { daemon: &'static str },
    Lost { daemon: &'static str, why: String },
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Line::Event { daemon, json } => write!(f, "{daemon} {json}"),
            Line::Followed { daemon } => write!(f, "{daemon} -- following its events"),
            Line::Lost { daemon, why } => write!(f, "{daemon} -- events lost: {why}"),
        }
    }
}

/// One daemon's events: subscribes, reads lines until the stream ends, and tries again.
fn follow(daemon: &'static str, path: &Path, out: &mpsc::Sender<Line>) {
    let mut lost_reported = false;
    loop {
        match subscribe(path) {
            Ok(stream) => {
                lost_reported = false;
                if out.send(Line::Followed { daemon }).is_err() {
                    return;
                }
                let why = read_events(daemon, stream, out);
                if out.send(Line::Lost { daemon, why }).is_err() {
                    return;
                }
            }
            Err(e) if !lost_reported => {
                lost_reported = true;
                let why = format!("{}: {e}", path.display());
                if out.send(Line::Lost { daemon, why }).is_err() {
                    return;
                }
            }
            Err(_) => {}
        }
        std::thread::sleep(RETRY);
    }
}

fn subscribe(path: &Path) -> std::io::Result<UnixStream> {
    let mut stream = UnixStream::connect(path)?;
    stream.write_all(format!("{}\n", lvs_proto::SUBSCRIBE).as_bytes())?;
    Ok(stream)
}

/// Sends each event line on; returns why the stream ended.
fn read_events(daemon: &'static str, stream: UnixStream, out: &mpsc::Sender<Line>) -> String {
    for line in BufReader::new(stream).lines() {
        match line {
            Ok(json) if json.trim().is_empty() => {}
            Ok(json) => {
                if out.send(Line::Event { daemon, json }).is_err() {
                    return "stopped".to_owned();
                }
            }
            Err(e) => return e.to_string(),
        }
    }
    "the daemon closed the stream".to_owned()
}

/// Follows every daemon in `socket_dir`; prints each line, with `events` it stops after that
/// many events (for scripts waiting for the next one).
pub fn run(socket_dir: &Path, events: Option<usize>) -> ExitCode {
    let (tx, rx) = mpsc::channel();
    for daemon in lvs_proto::EVENT_DAEMONS {
        let path = lvs_proto::socket_path(socket_dir, daemon);
        let tx = tx.clone();
        std::thread::spawn(move || follow(daemon, &path, &tx));
    }
    drop(tx);
    let mut seen = 0;
    let stdout = std::io::stdout();
    for line in rx {
        if writeln!(stdout.lock(), "{line}").is_err() {
            // The reader went away (`lvsadm watch | head`).
            return ExitCode::SUCCESS;
        }
        if let Line::Event { .. } = line {
            seen += 1;
            if events.is_some_and(|n| seen >= n) {
                return ExitCode::SUCCESS;
            }
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::path::PathBuf;

    /// A daemon's events arrive in order; when it goes away that is said, and when it is back
    /// (a restart) its events are followed again without the watcher doing anything.
    #[test]
    fn events_are_followed_across_a_restart() {
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
        let (tx, rx) = mpsc::channel();
        let follower_path = path.clone();
        std::thread::spawn(move || follow("vrrpd", &follower_path, &tx));
        let next = || rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(next(), Line::Followed { daemon: "vrrpd" });
        assert_eq!(
            next(),
            Line::Event {
                daemon: "vrrpd",
                json: r#"{"state":"MASTER"}"#.to_owned()
            }
        );
        assert_eq!(
            next(),
            Line::Event {
                daemon: "vrrpd",
                json: r#"{"state":"BACKUP"}"#.to_owned()
            }
        );
        first.join().unwrap();
        assert!(matches!(
            next(),
            Line::Lost {
                daemon: "vrrpd",
                ..
            }
        ));
        let second = serve(path, &[r#"{"state":"FAULT"}"#]);
        // Retries while the socket is away report the loss once, not every second.
        let mut line = next();
        while matches!(line, Line::Lost { .. }) {
            line = next();
        }
        assert_eq!(line, Line::Followed { daemon: "vrrpd" });
        assert_eq!(
            next(),
            Line::Event {
                daemon: "vrrpd",
                json: r#"{"state":"FAULT"}"#.to_owned()
            }
        );
        second.join().unwrap();
    }
}
