//! netns lane: hosts as namespaces on the running kernel.

#[path = "netns/bgp.rs"]
mod bgp;

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use lvs_tests::netns::{Netns, veth};
use lvs_tests::process::wait_for;
use lvs_tests::{lane_available, netns_missing, workspace_bin};

fn available() -> bool {
    lane_available("netns", netns_missing())
}

#[test]
fn two_namespaces_exchange_a_packet() -> Result<(), String> {
    if !available() {
        return Ok(());
    }
    let a = Netns::new("a")?;
    let b = Netns::new("b")?;
    veth(&a, "a0", &b, "b0")?;
    a.addr("a0", "192.0.2.1/24")?;
    b.addr("b0", "192.0.2.2/24")?;

    let mut command = a.command(&["busybox", "nc", "-l", "-p", "7777"]);
    command.stdout(Stdio::piped());
    let mut server = lvs_tests::process::Guarded::spawn(&mut command)?;
    let payload = format!("hello-from-b-{}", std::process::id());
    // The listener may not be bound yet; retry the send until it connects.
    wait_for(Duration::from_secs(5), || {
        b.sh(&format!("echo {payload} | busybox nc -w 2 192.0.2.1 7777"))
            .ok()
    })
    .ok_or("b could not connect to a")?;
    server.wait_timeout(Duration::from_secs(5))?;
    let mut received = String::new();
    server
        .child_mut()
        .stdout
        .take()
        .ok_or("no stdout")?
        .read_to_string(&mut received)
        .map_err(|e| e.to_string())?;
    assert_eq!(received.trim(), payload);
    Ok(())
}

#[test]
fn namespaces_are_isolated_and_removed() -> Result<(), String> {
    if !available() {
        return Ok(());
    }
    let name = {
        let a = Netns::new("iso")?;
        let links = a.stdout(&["ip", "-o", "link"])?;
        assert_eq!(
            links.lines().count(),
            1,
            "a new namespace has only lo: {links}"
        );
        a.name().to_owned()
    };
    let listed =
        lvs_tests::process::run_stdout(std::process::Command::new("ip").args(["netns", "list"]))?;
    assert!(
        !listed
            .lines()
            .any(|l| l.split_whitespace().next() == Some(name.as_str())),
        "{name} left behind"
    );
    Ok(())
}

#[test]
fn a_workspace_binary_runs_inside_a_namespace() -> Result<(), String> {
    if !available() {
        return Ok(());
    }
    let ns = Netns::new("bin")?;
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/examples/director.toml"
    );
    let lvsadm = workspace_bin("lvsadm");
    let out = ns.stdout(&[
        lvsadm.as_os_str(),
        "check-config".as_ref(),
        "--config".as_ref(),
        example.as_ref(),
    ])?;
    assert!(out.contains(": valid"), "{out}");
    Ok(())
}

/// syncd's engine learns every connection sent to the group through real sockets, and a
/// late backup's resync of them keeps to the configured `resync_rate`: 150,000 entries at
/// 100,000/s must take about 1.5 s (the first tenth of a second's tokens go at once), not
/// burst out unpaced nor crawl. A small run of what `cargo bench --bench scale_peers` does
/// with 4 M connections.
#[test]
fn syncd_engine_learns_every_entry_from_the_group_and_paces_the_resync() -> Result<(), String> {
    if !available() {
        return Ok(());
    }
    let figures = lvs_tests::scale_sync::run(150_000, 100_000)?;
    println!("{}", lvs_tests::scale_sync::report(&figures));
    assert_eq!(figures.learned, 150_000);
    assert_eq!(figures.resync_received, 150_000);
    assert_eq!(figures.resync_announced, 150_000);
    let rate = figures.resync_rate();
    assert!(
        (90_000.0..=115_000.0).contains(&rate),
        "resync at {rate:.0} entries/s, configured 100,000"
    );
    Ok(())
}
