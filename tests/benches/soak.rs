//! The fault soak: the end-to-end pair in a real IPVS kernel (UML), with the release binaries,
//! 1,000 established flows and a new connection every 20 ms, while for 10 minutes faults are
//! injected at random (kill -9 and SIGSTOP of any daemon, link down, loss and delay, good and
//! broken reloads, fd limits). Prints the faults by kind and the violations by invariant
//! (each must be 0); see [`lvs_tests::soak`].
//!
//! Run: `cargo build --release --bins && cargo bench -p lvs-tests --bench soak`
//! (`LVS_SOAK_SECS`, `LVS_SOAK_FLOWS`, `LVS_SOAK_SEED`; `LVS_BIN_DIR` names another folder of
//! binaries).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use lvs_tests::soak::{self, Settings};
use lvs_tests::uml::{self, Case};

fn main() -> ExitCode {
    uml::bench(&[Case::new("soak", soak_bench).with_timeout(Duration::from_secs(3600))])
}

fn soak_bench() -> Result<(), String> {
    let bins =
        std::env::var_os("LVS_BIN_DIR").map_or_else(lvs_tests::workspace_bin_dir, PathBuf::from);
    let settings = Settings::from_env(600, 1000);
    let report = soak::run(&bins, &settings)?;
    println!("{}", report.render());
    match report.violation_count() {
        0 => Ok(()),
        n => Err(format!("{n} invariant violations (seed {})", settings.seed)),
    }
}
