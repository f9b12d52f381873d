//! keepalived's virtual address options, with keepalived as the oracle: the LVS-NAT layout,
//! where VRRP runs on the outside interface (eth0) and the real servers' gateway VIP sits on
//! the inside one (eth1, `dev eth1`), with `label`, `scope`, `brd` and
//! `virtual_ipaddress_excluded` (an IPv6 one in an IPv4 instance among them).
//!
//! On director A, keepalived and then vrrpd (on what `lvsadm import --strict` makes of the
//! same file) must leave the same `ip -d addr` and send adverts listing the same addresses
//! (the excluded ones not), and both go to FAULT while the inside link is down (keepalived
//! tracks a VIP's device) and back when it returns. Then B runs vrrpd as backup; when A leaves, B takes the inside VIP
//! over on its eth1, with its label, and the real server's neighbour entry for the gateway
//! moves to B's inside MAC by B's gratuitous ARP on eth1 alone.

use std::time::Duration;

use lvs_tests::keepalived::Keepalived;
use lvs_tests::lan::holds;
use lvs_tests::netns::{Netns, veth};
use lvs_tests::process::wait_for;

const CONFIG: &str = concat!(
    vi1_master_head!(),
    r#"    198.51.100.1/24 dev eth1 label eth1:gw
    203.0.113.20/28 brd 203.0.113.31 scope link
    192.0.2.102 label eth0:x
    203.0.113.40/29 dev eth1 scope host
  }
  virtual_ipaddress_excluded {
    203.0.113.10/32 dev eth1
    203.0.113.130/25 dev eth1 brd 203.0.113.255 label eth1:ex
    2001:db8::10/64 dev eth1
  }
}
"#
);

/// The real servers' gateway, on the inside.
const GATEWAY: &str = "198.51.100.1";

#[test]
fn vips_on_another_device_with_options_are_keepalived_s_and_move_on_takeover() -> Result<(), String>
{
    let Some((dir, outside)) =
        super::scratch_lan(&[("va", "192.0.2.1/24"), ("vb", "192.0.2.2/24")])?
    else {
        return Ok(());
    };
    let dir = dir.path();
    let (a, b) = (outside.host(0), outside.host(1));
    let inside = Netns::new("vin")?;
    inside.bridge("br0")?;
    let real = Netns::new("vrs")?;
    for (i, (host, ifname, cidr)) in [
        (a, "eth1", "198.51.100.2/24"),
        (b, "eth1", "198.51.100.3/24"),
        (&real, "eth0", "198.51.100.50/24"),
    ]
    .into_iter()
    .enumerate()
    {
        let port = format!("q{i}");
        veth(host, ifname, &inside, &port)?;
        inside.attach(&port, "br0")?;
        host.addr(ifname, cidr)?;
    }
    for host in [a, b] {
        host.sysctl("net.ipv6.conf.all.accept_dad=0")?;
    }
    let config = dir.join("a.conf");
    std::fs::write(&config, CONFIG).map_err(|e| e.to_string())?;

    let keepalived = Keepalived::start(a, dir, &config)?;
    let expected = snapshot(a)?;
    // Not two empty snapshots: keepalived listed the advertised addresses, not the excluded.
    assert_eq!(
        expected.1, "192.0.2.100,198.51.100.1,203.0.113.20,192.0.2.102,203.0.113.40",
        "{expected:#?}"
    );
    keepalived.leave();
    wait_for(Duration::from_secs(10), || {
        (!holds(a, GATEWAY)).then_some(())
    })
    .ok_or("keepalived left its VIPs behind")?;
    drop(keepalived);

    let vrrpd_a = super::imported_vrrpd(a, dir, &config, "a")?;
    let got = snapshot(a)?;
    assert_eq!(got, expected, "vrrpd (left) and keepalived (right) differ");
    // Its status lists every address it holds, those on eth1 and the excluded ones too.
    let status: serde_json::Value = lvs_control::call(
        &dir.join("a").join("vrrpd.sock"),
        &serde_json::json!({"cmd": "status"}),
        Duration::from_secs(2),
    )
    .map_err(|e| e.to_string())?;
    let listed = &status["instances"][0]["virtual_addresses"];
    for vip in ["192.0.2.100/24", "198.51.100.1/24", "2001:db8::10/64"] {
        assert!(
            listed
                .as_array()
                .is_some_and(|l| l.iter().any(|v| v == vip)),
            "{vip} not in {listed}"
        );
    }
    faults_with_the_inside_link(a, &inside, "vrrpd")?;

    let backup = dir.join("b.conf");
    let backup_text = CONFIG
        .replace("state MASTER", "state BACKUP")
        .replace("priority 150", "priority 100");
    std::fs::write(&backup, backup_text).map_err(|e| e.to_string())?;
    let _vrrpd_b = super::imported_vrrpd(b, dir, &backup, "b")?;
    std::thread::sleep(Duration::from_secs(1));
    assert!(!holds(b, GATEWAY), "B took the gateway from a live master");
    let mac = |host: &Netns| {
        host.stdout(&["cat", "/sys/class/net/eth1/address"])
            .map(|m| m.trim().to_owned())
    };
    real.run(&["ping", "-c", "1", "-W", "1", GATEWAY])?;
    assert_eq!(gateway_mac(&real), Some(mac(a)?), "before: A answers");

    vrrpd_a.signal(libc::SIGTERM);
    wait_for(Duration::from_secs(10), || holds(b, GATEWAY).then_some(()))
        .ok_or("B never took the gateway over")?;
    let on_b = b.stdout(&["ip", "-o", "addr", "show", "dev", "eth1"])?;
    assert!(
        on_b.contains(&format!("inet {GATEWAY}/24 scope global secondary eth1:gw")),
        "{on_b}"
    );
    let b_mac = mac(b)?;
    wait_for(Duration::from_secs(5), || {
        (gateway_mac(&real).as_deref() == Some(b_mac.as_str())).then_some(())
    })
    .ok_or_else(|| {
        format!(
            "the real server still sends to {:?}, not B's {b_mac}",
            gateway_mac(&real)
        )
    })?;
    Ok(())
}

/// keepalived tracks the devices of VIPs on another device: A's inside link down puts it in
/// FAULT (its outside VIP goes too), and its return brings it back to MASTER.
fn faults_with_the_inside_link(a: &Netns, inside: &Netns, who: &str) -> Result<(), String> {
    inside.ip(&["link", "set", "q0", "down"])?;
    wait_for(Duration::from_secs(5), || {
        (!holds(a, "192.0.2.100")).then_some(())
    })
    .ok_or_else(|| format!("{who} kept its VIPs with the inside link down"))?;
    inside.ip(&["link", "set", "q0", "up"])?;
    wait_for(Duration::from_secs(10), || holds(a, GATEWAY).then_some(()))
        .ok_or_else(|| format!("{who} did not come back when the inside link did"))?;
    Ok(())
}

/// The real server's neighbour entry for the gateway.
fn gateway_mac(real: &Netns) -> Option<String> {
    let out = real
        .stdout(&["ip", "neigh", "show", GATEWAY, "dev", "eth0"])
        .ok()?;
    let words: Vec<&str> = out.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "lladdr")?;
    words.get(at + 1).map(|mac| (*mac).to_owned())
}

/// Once the gateway is up: every address of the host but the link-local ones (`ip -d -o
/// addr`, sorted), and the addresses one advert lists (tcpdump's decoding).
fn snapshot(host: &Netns) -> Result<(Vec<String>, String), String> {
    wait_for(Duration::from_secs(10), || {
        holds(host, GATEWAY).then_some(())
    })
    .ok_or("the gateway VIP never came")?;
    // Settled: every address is added in one go after the transition.
    std::thread::sleep(Duration::from_millis(500));
    let mut addresses: Vec<String> = host
        .stdout(&["ip", "-d", "-o", "addr", "show"])?
        .lines()
        .filter(|l| !l.contains("inet6 fe80"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    addresses.sort();
    let advert = host.stdout(&[
        "timeout", "5", "tcpdump", "-c", "1", "-vv", "-n", "-i", "eth0", "vrrp",
    ])?;
    let listed = advert
        .split_whitespace()
        .skip_while(|w| !w.starts_with("addrs("))
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    Ok((addresses, listed))
}
