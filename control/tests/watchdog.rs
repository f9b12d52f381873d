//! The watchdog speaks systemd's notify protocol: a datagram `WATCHDOG=1` on `$NOTIFY_SOCKET`
//! at half of `$WATCHDOG_USEC`, and nothing at all when systemd asked for no watchdog.
//! One test per process: it sets the environment systemd would.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use lvs_control::daemon::Watchdog;

#[test]
fn pings_at_half_the_period_systemd_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let systemd = UnixDatagram::bind(&path).unwrap();
    systemd
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();

    // SAFETY: this test binary has one test and sets the environment before any other thread
    // (the runtime below) exists.
    unsafe {
        std::env::remove_var("WATCHDOG_USEC");
        std::env::set_var("NOTIFY_SOCKET", &path);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let never = runtime.block_on(async {
        let mut disabled = Watchdog::from_env();
        tokio::time::timeout(Duration::from_millis(300), disabled.ping_when_due()).await
    });
    assert!(never.is_err(), "without WATCHDOG_USEC nothing is due");

    // SAFETY: as above; the runtime is idle between block_on calls.
    unsafe {
        std::env::set_var("WATCHDOG_USEC", "400000");
        std::env::set_var("WATCHDOG_PID", std::process::id().to_string());
    }
    let started = Instant::now();
    runtime.block_on(async {
        let mut watchdog = Watchdog::from_env();
        for _ in 0..3 {
            watchdog.ping_when_due().await;
        }
    });
    let mut buf = [0u8; 64];
    for _ in 0..3 {
        let n = systemd.recv(&mut buf).unwrap();
        let message = String::from_utf8_lossy(&buf[..n]);
        assert_eq!(message.trim_end(), "WATCHDOG=1");
    }
    // The first tick is immediate, the next two 200 ms apart.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(390), "{elapsed:?}");
}
