//! Benchmark: the daemons other than directord at issue 20's scale, each against its reference
//! in the same run.
//!
//! - vrrpd: 255 VRRP instances of 20 VIPs each, a pair in network namespaces on this machine's
//!   kernel (VRRP needs no IPVS), the master killed with SIGKILL; then keepalived 2.2.7 on the
//!   same instances (`lvs_tests::scale_vrrp`).
//! - syncd: 4 M connections learned from kernel-format sync messages through the group
//!   socket into syncd's engine, then a paced resync of them to a late backup, against the
//!   configured `resync_rate` (`lvs_tests::scale_sync`, which says what runs and why).
//!
//! Run as root: `cargo build --release --bins && cargo bench -p lvs-tests --bench scale_peers`
//! (about 8 minutes on an idle machine; most of it is the kernel adding 5,100 IPv6
//! addresses, twice per daemon). For a quick look: `LVS_SCALE_VRRP_INSTANCES=20`,
//! `LVS_SCALE_SYNC_ENTRIES=100000`; `LVS_SCALE_SYNC_RATE` sets the resync rate (default
//! syncd's 100,000/s); `LVS_SCALE_ONLY=vrrp|sync` runs one part.

use std::process::ExitCode;

use lvs_tests::scale_sync;
use lvs_tests::scale_vrrp::{self, Daemon, Spec};

/// One part of the benchmark: its printed report.
type Part = fn() -> Result<String, String>;

fn main() -> ExitCode {
    if !lvs_tests::lane_available("netns", lvs_tests::netns_missing()) {
        return ExitCode::SUCCESS;
    }
    let only = std::env::var("LVS_SCALE_ONLY").unwrap_or_default();
    let mut failed = false;
    let parts: [(&str, Part); 2] = [("vrrp", vrrp), ("sync", sync)];
    for (name, part) in parts {
        if !only.is_empty() && only != name {
            continue;
        }
        match part() {
            Ok(report) => println!("{report}\n"),
            Err(e) => {
                eprintln!("scale_peers {name}: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn env_number(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|n| n.parse().ok())
}

fn vrrp() -> Result<String, String> {
    let instances = env_number("LVS_SCALE_VRRP_INSTANCES")
        .filter(|n| (1..=scale_vrrp::FULL_INSTANCES).contains(n))
        .unwrap_or(scale_vrrp::FULL_INSTANCES);
    let spec = Spec {
        instances,
        ..Spec::FULL
    };
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ours = scale_vrrp::run(Daemon::Vrrpd, spec, dir.path())?;
    let theirs = scale_vrrp::run(Daemon::Keepalived, spec, dir.path())?;
    Ok(scale_vrrp::report(&ours, &theirs))
}

fn sync() -> Result<String, String> {
    let entries = env_number("LVS_SCALE_SYNC_ENTRIES")
        .filter(|&n| n > 0)
        .unwrap_or(scale_sync::FULL_ENTRIES);
    let rate = env_number("LVS_SCALE_SYNC_RATE")
        .and_then(|n| u32::try_from(n).ok())
        .filter(|&n| n > 0)
        .unwrap_or(scale_sync::DEFAULT_RATE);
    scale_sync::run(entries, rate).map(|figures| scale_sync::report(&figures))
}
