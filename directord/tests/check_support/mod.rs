//! Shared by the check_* integration tests: loopback ports, child processes that die with the
//! test, and specs with short timing.

#![allow(dead_code)]

pub mod peers;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use directord::check::spec::{CheckSpec, DEFAULT_MAX_BYTES, Kind, Timing};

pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub fn spec(kind: Kind) -> CheckSpec {
    CheckSpec {
        timing: Timing {
            interval: Duration::from_millis(200),
            timeout: Duration::from_secs(2),
            rise: 1,
            fall: 1,
            retry_delay: Duration::from_millis(100),
            initial_up: true,
        },
        port: None,
        address: None,
        bind: Default::default(),
        max_bytes: DEFAULT_MAX_BYTES,
        kind,
    }
}

/// A child process in a process group of its own, stopped when the test ends, pass or fail:
/// SIGTERM first, so a master process (dovecot, postgres) reaps its workers itself, then
/// SIGKILL to the whole group (by the child's pid) for anything still there after 3 s.
pub struct Daemon(pub Child);

impl Daemon {
    pub fn spawn(command: &mut Command) -> Daemon {
        Daemon(
            command
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("spawning {command:?}: {e}")),
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, kill, killpg};
        use nix::unistd::Pid;
        let Ok(pid) = i32::try_from(self.0.id()) else {
            return;
        };
        let pid = Pid::from_raw(pid);
        if kill(pid, Signal::SIGTERM).is_ok() {
            let deadline = Instant::now() + Duration::from_secs(3);
            while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = killpg(pid, Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// Whether something accepts TCP connections on `port` within `wait`; gives up at once when
/// `alive` says the server has gone.
fn listens(port: u16, wait: Duration, mut alive: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + wait;
    while TcpStream::connect(local(port)).is_err() {
        if !alive() || Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Waits until something accepts TCP connections on `port`; false if `daemon` exits first
/// or nothing listens within 30 s.
pub fn listens_while_running(port: u16, daemon: &mut Daemon) -> bool {
    listens(port, Duration::from_secs(30), || {
        matches!(daemon.0.try_wait(), Ok(None))
    })
}

/// Waits until something accepts TCP connections on `port`.
pub fn wait_for_tcp(port: u16) {
    let listening = listens(port, Duration::from_secs(10), || true);
    assert!(listening, "nothing listens on port {port}");
}
