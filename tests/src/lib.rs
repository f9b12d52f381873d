//! The test lanes of lvs-director.
//!
//! - [`netns`]: hosts as network namespaces on whatever kernel runs the test (the host, or the
//!   UML guest), torn down when their guards drop.
//! - [`lan`]: hosts on a bridge, and what VRRP tests ask of them (addresses, neighbours).
//! - [`keepalived`]: keepalived's VRRP side as a peer, crashed or stopped as a test means.
//! - [`nlmon`]: netlink captures of a namespace, decoded into the IPVS requests they hold.
//! - [`vrrp_capture`]: VRRP and ARP captured on a LAN, and takeovers timed from the capture.
//! - [`pcap`]: tcpdump in a namespace, and the pcap reader both captures decode with.
//! - [`promtool`]: Prometheus's checker over the daemons' scrapes and the alert rules.
//! - [`browser`]: headless Chromium over the DevTools protocol, for the status page.
//! - [`heap`]: a counting allocator, for the heap a structure keeps.
//! - [`procstat`]: CPU time, context switches and process trees from /proc, for benchmarks.
//! - [`scale`]: a generated table at keepalived#2318's size, as director.toml and keepalived.conf.
//! - [`scale_vrrp`], [`scale_sync`]: vrrpd (255 instances of 20 VIPs, against keepalived) and
//!   syncd's engine (4 M connections, a paced resync) at issue 20's sizes.
//! - [`uml`]: a real Linux kernel with IPVS, booted as a User-Mode Linux process over the host's
//!   root filesystem, running many test cases per boot.
//!
//! A lane whose capability is missing is skipped with a printed reason, unless
//! `LVS_REQUIRE_LANES=1` (set by the project's test command) makes that a failure.

pub mod activeactive;
pub mod bird;
pub mod browser;
pub mod check_targets;
pub mod daemon;
pub mod frr;
pub mod heap;
pub mod keepalived;
pub mod lan;
pub mod netns;
pub mod nlmon;
pub mod pair;
pub mod pcap;
pub mod process;
pub mod procstat;
pub mod promtool;
pub mod scale;
pub mod scale_sync;
pub mod scale_vrrp;
pub mod soak;
pub mod uml;
pub mod vrrp_capture;

use std::path::PathBuf;

/// Set to 1 to turn a missing lane capability into a failure instead of a skip.
pub const REQUIRE_LANES_VAR: &str = "LVS_REQUIRE_LANES";

pub fn lanes_required() -> bool {
    std::env::var(REQUIRE_LANES_VAR).is_ok_and(|v| v == "1")
}

/// Decides what a test does when its lane cannot run here: `true` means go on. Without the
/// capability it prints why and returns `false` (skip), or panics when lanes are required.
pub fn lane_available(lane: &str, missing: Option<String>) -> bool {
    let Some(reason) = missing else { return true };
    if lanes_required() {
        panic!("{lane} lane required ({REQUIRE_LANES_VAR}=1) but unavailable: {reason}");
    }
    eprintln!("SKIPPED ({lane} lane): {reason}");
    false
}

/// Why network namespaces cannot be made here, if they cannot.
pub fn netns_missing() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root".to_owned());
    }
    if process::which("ip").is_none() {
        return Some("iproute2's `ip` is not installed".to_owned());
    }
    None
}

/// Path of a binary built from this workspace, next to the test executable's `deps/` folder.
pub fn workspace_bin(name: &str) -> PathBuf {
    built(name)
}

/// Path of an example program built from this workspace (`cargo build --all-targets`).
pub fn workspace_example(name: &str) -> PathBuf {
    built(&format!("examples/{name}"))
}

/// The folder of the workspace's binaries built with the same profile as this executable:
/// `target/debug` for tests, `target/release` for benchmarks.
pub fn workspace_bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .to_owned()
}

fn built(relative: &str) -> PathBuf {
    let path = workspace_bin_dir().join(relative);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace --all-targets` first",
        path.display()
    );
    path
}
