//! Writes the scale generator's files: `scale_config [SERVICES] [DIR] [--broken]` writes
//! DIR/director.toml and DIR/keepalived.conf for SERVICES services (default: keepalived#2318's
//! 2,284), e.g. to time `lvsadm check-config` at that size. `--broken` gives every real-server
//! entry an invalid weight (one error per entry); `--no-checks` leaves checks out and
//! `--changed` changes 1 % of the weights, as the benchmark's reload does (e.g. to profile
//! directord's memory on the two files the benchmark measures).

use std::path::PathBuf;

use lvs_tests::scale::Spec;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let broken = flag("--broken");
    let mut plain = args.iter().filter(|a| !a.starts_with("--"));
    let services = match plain.next() {
        Some(n) => n.parse().map_err(|e| format!("services {n:?}: {e}"))?,
        None => lvs_tests::scale::FULL_SERVICES,
    };
    let dir = PathBuf::from(plain.next().map_or(".", String::as_str));
    let base = Spec::services(services);
    let table = Spec {
        broken,
        checks: base.checks.filter(|_| !flag("--no-checks")),
        changed_percent: if flag("--changed") { 1 } else { 0 },
        ..base
    }
    .table();
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    write("director.toml", table.director_toml("/run/lvs-director"))?;
    write("keepalived.conf", table.keepalived_conf())?;
    println!(
        "{}: {} services, {} real-server entries, {} real servers",
        dir.display(),
        table.services.len(),
        table.entry_count(),
        table.distinct_reals()
    );
    Ok(())
}
