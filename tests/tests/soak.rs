//! The fault soak in CI: 60 s of faults injected at random into the end-to-end pair in a real
//! IPVS kernel (UML), every invariant of [`lvs_tests::soak`] checked; the 10-minute version is
//! `cargo bench -p lvs-tests --bench soak`.
//!
//! Run before issue 15's fixes, it caught: a restarted master's vrrpd keeping its VIPs beside
//! the new master's (two holders), healthy real servers quiesced while directord ran out of file
//! descriptors (table), and a master keeping the VIP over a dead directord.

use std::process::ExitCode;
use std::time::Duration;

use lvs_tests::soak::{self, Settings};
use lvs_tests::uml::{self, Case};

fn main() -> ExitCode {
    uml::main(&[Case::new("soak_faults_keep_every_invariant", soak_ci)
        .with_timeout(Duration::from_secs(420))])
}

fn soak_ci() -> Result<(), String> {
    let settings = Settings::from_env(60, 1000);
    let report = soak::run(&lvs_tests::workspace_bin_dir(), &settings)?;
    println!("{}", report.render());
    match report.violation_count() {
        0 => Ok(()),
        n => Err(format!("{n} invariant violations (seed {})", settings.seed)),
    }
}
