//! The checker out of file descriptors. A test binary of its own: it lowers this process's
//! RLIMIT_NOFILE, which would starve any test running beside it.
//!
//! Caught: a probe whose socket (or an external check's spawn) failed with EMFILE counted as
//! the server failing, so a director short of descriptors quiesced every healthy server.

mod check_support;

use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use check_support::spec;
use directord::check::spec::{External, Kind, Target};
use directord::check::{Exhausted, ProbeContext, Scheduler, Server};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use tokio::sync::mpsc;

/// The lowest free descriptor number: with the soft limit there, the next socket, pipe or
/// epoll fails with EMFILE, as long as no descriptor below it is closed. Taken before the
/// first probe: probes' own descriptors, freed as they finish, would let later probes
/// through the limit one at a time, so that no probe or every probe met EMFILE by timing.
fn lowest_free_fd() -> u64 {
    let fd = nix::unistd::dup(std::io::stdin()).expect("dup");
    let n = fd.as_raw_fd();
    drop(fd);
    n as u64
}

/// std's listen backlog is 128, and probes in flight when the limit falls queue there while
/// accept cannot run; a full queue drops SYNs and times out a connect check, which would be
/// the listener failing and not the checker.
fn listener_with_room_for_the_starved_window() -> TcpListener {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.listen(4096).unwrap();
    socket.into()
}

#[tokio::test(flavor = "current_thread")]
async fn probes_out_of_descriptors_leave_health_alone() {
    let listener = listener_with_room_for_the_starved_window();
    let addr = listener.local_addr().unwrap();
    // Accepts and drops; under the limit, accept fails too and the kernel's backlog holds
    // the connections meanwhile, which is all a connect check needs.
    let serving = listener.try_clone().unwrap();
    std::thread::spawn(move || {
        loop {
            if serving.accept().is_err() {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });

    let no_new_descriptor = lowest_free_fd();
    let (tx, mut events) = mpsc::channel(4096);
    let mut scheduler = Scheduler::new(ProbeContext::system(), tx, tokio::time::Instant::now());
    let fast = |kind: Kind| {
        let mut spec = spec(kind);
        spec.timing.interval = Duration::from_millis(50);
        spec.timing.retry_delay = Duration::from_millis(50);
        spec.timing.timeout = Duration::from_millis(500);
        // fall 1: a single probe counted as failed takes the server down.
        spec.timing.fall = 1;
        Server::new(spec, Target::new(addr))
    };
    let connects = (0..200u32).map(|i| (i, fast(Kind::Connect)));
    let externals = (200..210u32).map(|i| {
        (
            i,
            fast(Kind::External(External {
                command: "exit 0".into(),
                dynamic_weight: false,
            })),
        )
    });
    scheduler.update(connects.chain(externals), tokio::time::Instant::now());

    // Healthy first: every server probed and up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(events.try_recv().is_err(), "a server changed state");

    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, no_new_descriptor, hard).unwrap();
    let starved = Instant::now();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let starved_for = starved.elapsed();
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();
    // Probes started under the limit finish now.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut downs = Vec::new();
    while let Ok(event) = events.try_recv() {
        downs.push(event);
    }
    assert!(
        downs.is_empty(),
        "{} healthy server(s) reported down while out of descriptors for {starved_for:?}: {:?}",
        downs.len(),
        downs.first()
    );
    let unknown = scheduler.unknown_probes();
    let emfile = unknown.get(&Exhausted::Emfile).copied().unwrap_or(0);
    assert!(emfile > 0, "no probe counted unknown: {unknown:?}");
    for id in 0..210u32 {
        assert!(scheduler.health(&id).unwrap().up, "server {id} is down");
    }
    // The limit is back: probes have results again.
    let before = scheduler.health(&0).unwrap().probes;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = scheduler.health(&0).unwrap();
    assert!(after.probes > before, "probes stopped");
    assert_eq!(after.detail, "connected");
    let external = scheduler.health(&205).unwrap();
    assert_eq!(external.detail, "exit 0");
}
