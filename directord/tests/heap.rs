//! What directord keeps per real-server entry for the daemon's life, counted by a counting
//! allocator on a generated table in keepalived#2318's proportions (each real server in about
//! 16 services), a quarter of its size so the test stays quick. The figures are the ones the
//! RSS goal rests on (directord at or below keepalived's resident memory at 37,298 entries):
//! the kernel table cache, and the shared checks' entry lists and entry-to-check index. The
//! bounds sit between what the compact forms take (measured here: ~100 and ~150 bytes an
//! entry) and what the maps they replaced took (heaptrack at 37,298 entries: B-tree nodes per
//! service, 162 bytes an entry; a HashMap index, grown Vecs and the same checks, 214).
//! One test, so no other test's allocations are counted meanwhile.

use directord::check;
use directord::table::{ServerState, desired};
use lvs_tests::heap::{self, Counting};
use lvs_tests::scale::Spec;

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The bytes `make` leaves allocated (what it returns, and what it put elsewhere), per entry.
fn kept_per_entry<T>(entries: usize, make: impl FnOnce() -> T) -> (T, f64) {
    let before = heap::live();
    let kept = make();
    let bytes = heap::live() - before;
    (kept, bytes as f64 / entries as f64)
}

#[test]
fn the_cache_and_the_shared_checks_keep_little_per_entry() {
    let spec = Spec {
        checks: None,
        ..Spec::services(600)
    };
    let config = lvs_config::parse(&spec.table().director_toml("/run/lvsd"), "scale.toml")
        .expect("the generated config is valid");
    let entries: usize = config.virtual_servers.iter().map(|vs| vs.real.len()).sum();
    assert!(entries > 9_000, "{entries} entries");

    // What the kernel cache holds: services and their destinations, as a reconcile leaves it.
    let (table, cache) = kept_per_entry(entries, || desired(&config, |_| ServerState::UP));
    println!("kernel cache: {cache:.0} bytes per entry");
    assert!(cache < 130.0, "kernel cache: {cache:.0} bytes per entry");

    // Entries without a check share an always-on probe per real server; what the dedup keeps
    // is every entry twice (in its check's list and in the index, 56 bytes of key each) and
    // each probe's check (a share of it per entry). The
    // entries it is given are consumed, and the probes it returns dropped, before counting.
    let mut shared = check::Checks::new();
    let ((), checks) = kept_per_entry(entries, || {
        let servers: Vec<_> = check::dedup::entries(&config)
            .map(|(id, server)| (id, server.expect("runnable")))
            .collect();
        drop(shared.update(servers));
    });
    println!("shared checks: {checks:.0} bytes per entry");
    assert!(checks < 180.0, "shared checks: {checks:.0} bytes per entry");
    assert_eq!(shared.len(), spec.reals, "one probe per real server");
    drop(table);
}
