//! Benchmark: the daemons other than directord at issue 20's scale, each against its reference
//! in the same run.
//!
//! - vrrpd: 255 VRRP instances of 20 VIPs each, a pair in network namespaces on this machine's
//!   kernel (VRRP needs no IPVS), the master killed with SIGKILL; then keepalived 2.2.7 on the
//!   same instances (`lvs_tests::scale_vrrp`).
//!
//! Run as root: `cargo build --release --bins && cargo bench -p lvs-tests --bench scale_peers`.
//! `LVS_SCALE_VRRP_INSTANCES=20` for a quick look at fewer instances.

use std::process::ExitCode;

use lvs_tests::scale_vrrp::{self, Daemon, Spec};

fn main() -> ExitCode {
    if !lvs_tests::lane_available("netns", lvs_tests::netns_missing()) {
        return ExitCode::SUCCESS;
    }
    match vrrp() {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("scale_peers: {e}");
            ExitCode::FAILURE
        }
    }
}

fn vrrp() -> Result<String, String> {
    let instances = std::env::var("LVS_SCALE_VRRP_INSTANCES")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=scale_vrrp::FULL_INSTANCES).contains(n))
        .unwrap_or(scale_vrrp::FULL_INSTANCES);
    let spec = Spec {
        instances,
        vips: scale_vrrp::FULL_VIPS_PER_INSTANCE,
    };
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ours = scale_vrrp::run(Daemon::Vrrpd, spec, dir.path())?;
    let theirs = scale_vrrp::run(Daemon::Keepalived, spec, dir.path())?;
    Ok(scale_vrrp::report(&ours, &theirs))
}
