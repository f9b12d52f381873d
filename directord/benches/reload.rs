//! Where a reload's time and memory go at keepalived#2318's size (2,284 services, 37,298
//! real-server entries), on this machine, without a kernel: each step directord runs on SIGHUP
//! timed alone, and the heap it keeps measured with a counting allocator. The UML benchmark
//! (`cargo bench -p lvs-tests --bench scale`) gives the end-to-end figures; this one says
//! which step they come from.
//!
//! Run: `cargo bench -p directord --bench reload`.

use std::time::Instant;

use directord::check;
use directord::reconcile::{Ownership, plan};
use directord::table::{ServerState, configured, desired};
use lvs_tests::heap::{self, Counting};
use lvs_tests::scale::Spec;

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live_mb() -> f64 {
    heap::live() as f64 / 1e6
}

/// Runs `f`, printing how long it took and the heap it left allocated.
fn step<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let before = live_mb();
    let started = Instant::now();
    let out = f();
    println!(
        "{what:<44} {:>8.1} ms {:>+8.2} MB kept",
        started.elapsed().as_secs_f64() * 1000.0,
        live_mb() - before
    );
    out
}

fn main() {
    let base = Spec {
        checks: None,
        ..Spec::full()
    };
    let plain = base.table().director_toml("/run/lvsd");
    let changed = Spec {
        changed_percent: 1,
        ..base.clone()
    }
    .table()
    .director_toml("/run/lvsd");
    let checked = Spec::full().table().director_toml("/run/lvsd");
    println!(
        "sizes: RealServer {} VirtualServer {} Check {} Destination {} Stats {} ServiceKey {} Service {}",
        size_of::<lvs_config::RealServer>(),
        size_of::<lvs_config::VirtualServer>(),
        size_of::<lvs_config::Check>(),
        size_of::<lvs_ipvs::Destination>(),
        size_of::<lvs_ipvs::Stats>(),
        size_of::<lvs_ipvs::ServiceKey>(),
        size_of::<lvs_ipvs::Service>(),
    );
    println!(
        "config {:.1} MB, reload step by step:",
        plain.len() as f64 / 1e6
    );
    step("  of which toml::from_str alone", || {
        toml::from_str::<lvs_config::Config>(&plain).unwrap()
    });
    step("  of which toml DeTable::parse alone", || {
        toml::de::DeTable::parse(&plain).unwrap().into_inner().len()
    });
    let old = step("parse + validate (running config)", || {
        lvs_config::parse(&plain, "plain.toml").unwrap()
    });
    let kernel = step("desired table (= the kernel cache)", || {
        desired(&old, |_| ServerState::UP)
    });
    step("parse + validate (new config, whole file)", || {
        lvs_config::parse(&changed, "changed.toml").unwrap()
    });
    let new = step("reparse (new config, changed blocks only)", || {
        let (config, reparsed) = lvs_config::reparse::reparse(&changed, "changed.toml", &old);
        println!("  {reparsed:?}");
        config.unwrap()
    });
    // What a reload keeps of the old config: the servers the new one drops (none here).
    step("configured() of both configs", || {
        (configured(&old), configured(&new))
    });
    let want = step("desired table (new config)", || {
        desired(&new, |_| ServerState::UP)
    });
    let owned = step("ownership", || Ownership {
        whole_table: false,
        servers: configured(&new),
    });
    let requests = step("plan (diff against the cache)", || {
        plan(&want, &kernel, &owned)
    });
    println!("  {} requests", requests.len());
    drop((old, new, want, owned, kernel));
    let checked = step("parse + validate (checked config)", || {
        lvs_config::parse(&checked, "checked.toml").unwrap()
    });
    let entries: Vec<_> = step("check entries (per entry Server)", || {
        check::dedup::entries(&checked)
            .filter_map(|(id, s)| Some((id, s.ok()?)))
            .collect()
    });
    let mut shared = check::Checks::new();
    let servers = step("shared checks update", || shared.update(entries));
    println!("  {} shared checks", servers.len());
}
