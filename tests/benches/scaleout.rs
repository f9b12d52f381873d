//! The active-active proof (issue 18) next to the active/standby pair, in one UML boot: the
//! cases of [`lvs_tests::activeactive`] (3 directors announced over BGP, ECMP, `mh`, syncd in
//! full mesh; with FRR, then BIRD) print what the proof measures (spread over the directors,
//! the router's reaction to a dead director, flows kept, new connections answered, a
//! return, a drain, a real server's removal), then the pair's bench (`pair_failover`, its
//! code, not a copy) prints its failover figures for the same 1,000 long-lived flows.
//!
//! Run: `cargo build --release --bins && cargo bench -p lvs-tests --bench scaleout`
//! (`LVS_BIN_DIR` names another folder of binaries).

use std::process::ExitCode;
use std::time::Duration;

use lvs_tests::activeactive;
use lvs_tests::uml::{self, Case};

// The pair's bench, reused whole: only its case function is called here, not its main.
#[allow(dead_code)]
#[path = "pair_failover.rs"]
mod pair_failover;

fn main() -> ExitCode {
    let [frr, bird] = activeactive::CASES;
    uml::bench(&[
        frr,
        bird,
        Case::new("pair_failover", pair_failover::pair_failover)
            .with_timeout(Duration::from_secs(1800)),
    ])
}
