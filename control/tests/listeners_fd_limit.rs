//! Listeners out of file descriptors. A test binary of its own: it lowers this process's
//! RLIMIT_NOFILE, which would starve any test running beside it.
//!
//! Caught: the metrics listener retried a failed accept at once; with a connection waiting
//! and no descriptor free, accept fails with EMFILE immediately, so the loop spun a CPU at
//! 100 % (and logged a warning per turn) for as long as the shortage lasted.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

fn cpu_time() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct passed.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn nofile() -> libc::rlimit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct passed.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    limit
}

fn set_nofile(limit: libc::rlimit) {
    // SAFETY: setrlimit reads the struct passed.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
}

/// The lowest free descriptor number: with the soft limit there, the next accept fails with
/// EMFILE.
fn lowest_free_fd() -> u64 {
    // SAFETY: dup of stdin and close of the copy touch no other descriptor.
    let fd = unsafe { libc::dup(0) };
    assert!(fd >= 0);
    unsafe { libc::close(fd) };
    fd as u64
}

/// One test: the steps change this process's limits and must not run beside each other.
#[test]
fn descriptor_limits() {
    daemons_raise_the_soft_limit_to_the_hard_one();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(accept_under_emfile_does_not_spin());
}

// Caught: no daemon raised its soft limit, and systemd starts services at a soft 1024.
fn daemons_raise_the_soft_limit_to_the_hard_one() {
    let hard = nofile().rlim_max;
    set_nofile(libc::rlimit {
        rlim_cur: 256.min(hard),
        rlim_max: hard,
    });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("director.toml");
    std::fs::write(
        &config,
        format!("[control]\nsocket_dir = {:?}\n", dir.path().join("run")),
    )
    .unwrap();
    let args = lvs_config::ConfigArgs { path: config };
    let seen = Arc::new(Mutex::new(None));
    let code = lvs_control::daemon::main("feedbackd", &args, false, {
        let seen = Arc::clone(&seen);
        |_, _| async move {
            *seen.lock().unwrap() = Some(nofile().rlim_cur);
            Ok::<(), std::convert::Infallible>(())
        }
    });
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    assert_eq!(*seen.lock().unwrap(), Some(hard));
}

async fn accept_under_emfile_does_not_spin() {
    let shutdown = CancellationToken::new();
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = metrics.local_addr().unwrap();
    tokio::spawn(lvs_control::metrics::serve(
        metrics,
        Arc::new(Mutex::new(Registry::default())),
        shutdown.clone(),
    ));
    // Waiting in the backlog before the limit drops: every accept from then on fails.
    let _waiting: Vec<std::net::TcpStream> = (0..4)
        .map(|_| std::net::TcpStream::connect(metrics_addr).unwrap())
        .collect();

    let normal = nofile();
    set_nofile(libc::rlimit {
        rlim_cur: lowest_free_fd(),
        rlim_max: normal.rlim_max,
    });
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
    set_nofile(normal);

    let share = cpu.as_secs_f64() / wall.as_secs_f64();
    eprintln!(
        "CPU while out of descriptors: {cpu:?} in {wall:?} ({:.1} %)",
        share * 100.0
    );
    assert!(
        share < 0.05,
        "accept loop spins: {:.0} % of a CPU",
        share * 100.0
    );

    // Descriptors back: the waiting clients are served.
    let reply = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut client = std::net::TcpStream::connect(metrics_addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut reply = String::new();
        client.read_to_string(&mut reply).unwrap();
        reply
    })
    .await
    .unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    shutdown.cancel();
}
