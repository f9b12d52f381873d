//! keepalived's `virtual_routes` and `virtual_rules`, with keepalived as the oracle: on
//! director A, keepalived and then vrrpd (on what `lvsadm import --strict` makes of the same
//! file) must leave the same `ip -d route show table all` and `ip rule` while MASTER (gateway,
//! device, source, table, metric, scope, blackhole and unreachable routes; rules by source,
//! destination, table and priority, keepalived's 16384 for one that names none), and take
//! them all away when they stop. Then the crash: vrrpd is killed (-9) as master, leaving its
//! routes and rules; B takes over (keepalived, higher priority), and vrrpd restarted on A
//! comes up as BACKUP and removes the stale ones; when B goes, A puts them back. Killed
//! again, `vrrpd --release-vips` (the unit's ExecStopPost=) removes them and every VIP.

use std::time::Duration;

use lvs_tests::keepalived::Keepalived;
use lvs_tests::netns::Netns;
use lvs_tests::process::wait_for;

const CONFIG: &str = concat!(
    vi1_master_head!(),
    r#"    198.51.100.1/24 dev eth1
  }
  virtual_routes {
    src 192.0.2.100 203.0.113.0/26 via 192.0.2.254 dev eth0
    203.0.113.64/26 via 198.51.100.254
    203.0.113.128/27 dev eth1 scope link
    to 203.0.113.160/27 dev eth1 metric 50 table 100
    blackhole 203.0.113.192/27
    unreachable 203.0.113.224/27 table 100
    0.0.0.0/0 gw 192.0.2.254 table 100
  }
  virtual_rules {
    from 203.0.113.0/24 table 100
    to 198.51.100.128/25 table 100 priority 200
    from 192.0.2.100 to 203.0.113.64/26 table 101 priority 201
  }
}
"#
);

/// Routes (every table, the kernel's own local and multicast ones left out) and rules.
#[derive(Debug, PartialEq)]
struct Tables {
    routes: Vec<String>,
    rules: Vec<String>,
}

fn tables(host: &Netns) -> Result<Tables, String> {
    let routes = host
        .stdout(&["ip", "-d", "route", "show", "table", "all"])?
        .lines()
        .filter(|l| {
            !["local ", "multicast ", "anycast ", "broadcast "]
                .iter()
                .any(|k| l.starts_with(k))
                && !l.contains("fe80::")
                && !l.contains("ff00::")
        })
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let rules = host
        .stdout(&["ip", "rule"])?
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    Ok(Tables { routes, rules })
}

/// The tables once the master's routes are in (and nothing changed for 300 ms).
fn settled_with_routes(host: &Netns) -> Result<Tables, String> {
    let has = || {
        tables(host)
            .ok()
            .filter(|t| t.routes.iter().any(|r| r.contains("203.0.113.0/26")))
            .filter(|t| t.rules.iter().any(|r| r.starts_with("201:")))
    };
    wait_for(Duration::from_secs(10), has).ok_or("the routes never came")?;
    std::thread::sleep(Duration::from_millis(300));
    tables(host)
}

fn back_to(host: &Netns, baseline: &Tables, what: &str) -> Result<(), String> {
    wait_for(Duration::from_secs(10), || {
        (tables(host).ok().as_ref() == Some(baseline)).then_some(())
    })
    .ok_or_else(|| format!("{what}: {:#?} is not {baseline:#?}", tables(host)))
}

#[test]
fn virtual_routes_and_rules_are_keepalived_s_and_a_restart_sweeps_stale_ones() -> Result<(), String>
{
    let Some((dir, lan)) = super::scratch_lan(&[("ra", "192.0.2.1/24"), ("rb", "192.0.2.2/24")])?
    else {
        return Ok(());
    };
    let dir = dir.path();
    let (a, b) = (lan.host(0), lan.host(1));
    // B is the same router at a higher priority: the same addresses, or A would drop its
    // adverts (another address list) and take over.
    for (host, cidr) in [(a, "198.51.100.2/24"), (b, "198.51.100.3/24")] {
        host.ip(&[
            "link", "add", "eth1", "type", "veth", "peer", "name", "peer1",
        ])?;
        host.ip(&["link", "set", "peer1", "up"])?;
        host.addr("eth1", cidr)?;
    }
    let config = dir.join("a.conf");
    std::fs::write(&config, CONFIG).map_err(|e| e.to_string())?;
    let peer = dir.join("b.conf");
    std::fs::write(&peer, CONFIG.replace("priority 150", "priority 200"))
        .map_err(|e| e.to_string())?;
    let baseline = tables(a)?;

    let keepalived = Keepalived::start(a, dir, &config)?;
    let expected = settled_with_routes(a)?;
    keepalived.leave();
    back_to(a, &baseline, "after keepalived stopped")?;
    drop(keepalived);
    // Not two empty tables: the blackhole and the default priority are keepalived's.
    assert!(
        expected.routes.contains(
            &"blackhole 203.0.113.192/27 table main proto keepalived scope global".to_owned()
        ),
        "{expected:#?}"
    );
    assert!(
        expected
            .rules
            .contains(&"16384: from 203.0.113.0/24 lookup 100 proto keepalived".to_owned()),
        "{expected:#?}"
    );

    let vrrpd = super::imported_vrrpd(a, dir, &config, "a")?;
    let got = settled_with_routes(a)?;
    assert_eq!(got, expected, "vrrpd (left) and keepalived (right) differ");
    vrrpd.signal(libc::SIGTERM);
    back_to(a, &baseline, "after vrrpd stopped")?;
    drop(vrrpd);

    // A crash leaves them; a restart next to a better master takes them away.
    let vrrpd = super::imported_vrrpd(a, dir, &config, "a")?;
    settled_with_routes(a)?;
    vrrpd.signal(libc::SIGKILL);
    drop(vrrpd);
    assert_eq!(tables(a)?, expected, "kill -9 leaves the routes");
    let keepalived_b = Keepalived::start(b, dir, &peer)?;
    wait_for(Duration::from_secs(10), || {
        lvs_tests::lan::holds(b, "192.0.2.100").then_some(())
    })
    .ok_or("B never became master")?;
    let vrrpd = super::imported_vrrpd(a, dir, &config, "a")?;
    back_to(a, &baseline, "the restarted backup")?;
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(tables(a)?, baseline, "the restarted backup stays backup");
    keepalived_b.leave();
    let again = settled_with_routes(a)?;
    assert_eq!(again, expected, "A took over again");

    // What the unit's ExecStopPost= runs after a crash: routes, rules and every VIP go, the
    // one on eth1 included.
    vrrpd.signal(libc::SIGKILL);
    drop(vrrpd);
    let binary = lvs_tests::workspace_bin("vrrpd");
    let toml = dir.join("a.toml");
    let mut release = a.command(&[
        binary.as_os_str(),
        "--release-vips".as_ref(),
        "--config".as_ref(),
        toml.as_os_str(),
    ]);
    release.env("SERVICE_RESULT", "signal");
    lvs_tests::process::run(&mut release)?;
    assert_eq!(tables(a)?, baseline, "--release-vips after kill -9");
    let held = a.stdout(&["ip", "-o", "addr", "show"])?;
    assert!(
        !held.contains("192.0.2.100/") && !held.contains("198.51.100.1/"),
        "{held}"
    );
    Ok(())
}
