//! What `lvsadm import` makes of each directive family, checked value by value on the parsed
//! result, plus malformed input and strict mode.

use lvsadm::import;

use std::path::{Path, PathBuf};
use std::time::Duration as Std;

use import::{ErrorKind, Options, Source, import, import_with};
use lvs_config::{
    Auth, CheckType, Config, Family, Forwarding, InitialState, OnFailure, Protocol, Scheduler,
    ServiceFlag, SyncRole,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/import-fixtures")
        .join(name)
}

fn load(source: Source, name: &str) -> (Config, Vec<String>) {
    let imported = import(source, &fixture(name), false).unwrap_or_else(|e| panic!("{name}: {e}"));
    let config = lvs_config::parse(&imported.toml, name)
        .unwrap_or_else(|e| panic!("{name}: {e}\n{}", imported.toml));
    let notes = imported
        .unsupported
        .iter()
        .map(ToString::to_string)
        .collect();
    (config, notes)
}

fn secs(n: u64) -> Option<lvs_config::Duration> {
    Some(lvs_config::Duration(Std::from_secs(n)))
}

fn sample(name: &str) -> (Config, Vec<String>) {
    load(
        Source::Keepalived,
        &format!("keepalived-samples/keepalived.conf.{name}"),
    )
}

#[test]
fn http_get_becomes_an_http_check_with_keepalived_timing() {
    let (config, notes) = sample("sample");
    let vs = &config.virtual_servers[0];
    assert_eq!(vs.address, Some("10.10.10.2:1358".parse().unwrap()));
    assert_eq!(vs.scheduler, Scheduler::Rr);
    assert_eq!(vs.forwarding, Forwarding::Nat);
    assert_eq!(vs.persistence, secs(50));
    assert_eq!(
        vs.on_failure,
        OnFailure::Remove,
        "keepalived removes failed servers"
    );
    assert_eq!(vs.fallback, Some("192.168.200.200:1358".parse().unwrap()));
    let check = vs.check.as_ref().unwrap();
    assert_eq!(check.kind, Some(CheckType::Http));
    assert_eq!(check.path.as_deref(), Some("/testurl3/test.jsp"));
    assert_eq!(check.expect_status, Some(vec!["200-299".to_owned()]));
    assert_eq!(check.interval, secs(6));
    assert_eq!(check.timeout, secs(3));
    assert_eq!(
        (check.rise, check.fall),
        (Some(1), Some(4)),
        "retry 3 = 4 attempts"
    );
    assert_eq!(check.retry_delay, secs(3));
    assert_eq!(check.initial, Some(InitialState::Up));
    assert_eq!(vs.real[0].weight, 1);
    // keepalived's digest is compared, as it was written.
    assert_eq!(
        check.digest.as_deref(),
        Some("640205b7b0fc66c1ea91c463fac6334d")
    );
    assert!(notes.iter().all(|n| !n.contains("digest")), "{notes:#?}");
    let vrrp = &config.vrrp.instance[0];
    assert_eq!((vrrp.vrid, vrrp.priority, vrrp.preempt), (50, 100, false));
}

#[test]
fn nopreempt_is_cleared_for_state_master_as_keepalived_does() {
    let (config, _) = load(
        Source::Keepalived,
        "keepalived-features/master-nopreempt.conf",
    );
    let preempt: Vec<bool> = config.vrrp.instance.iter().map(|i| i.preempt).collect();
    assert_eq!(preempt, [true, false]);
}

#[test]
fn ssl_get_status_codes_and_connect_port() {
    let (config, _) = sample("status_code");
    let check = config.virtual_servers[0].check.as_ref().unwrap();
    assert_eq!(check.kind, Some(CheckType::Https));
    assert_eq!(
        check.tls_verify,
        Some(false),
        "keepalived does not verify certificates"
    );
    // Two url blocks: both pages are checked, each with its own status codes and digest.
    let urls = check.url.as_deref().unwrap();
    assert_eq!(
        urls[0].expect_status.as_deref().unwrap(),
        ["200-299", "400-499", "503", "505"]
    );
    assert_eq!(urls[1].path.as_deref(), Some("/mrtg/"));
    assert_eq!(
        urls[1].digest.as_deref(),
        Some("9b3a0c85a887a256d6939da88aabd8cd")
    );
    assert_eq!(urls[1].expect_status.as_deref().unwrap(), ["200"]);
    let (config, notes) = sample("HTTP_GET.port");
    assert_eq!(
        config.virtual_servers[0].check.as_ref().unwrap().port,
        Some(444)
    );
    assert!(notes.iter().all(|n| !n.contains("connect_port")));
    let (config, _) = sample("virtualhost");
    let check = config.virtual_servers[0].check.as_ref().unwrap();
    assert_eq!(check.host.as_deref(), Some("www.firewall.loc"));
}

#[test]
fn tcp_smtp_ping_udp_misc_checks() {
    let (config, _) = sample("fwmark");
    let vs = &config.virtual_servers[0];
    assert_eq!(vs.fwmark, Some(1));
    let check = vs.check.as_ref().unwrap();
    assert_eq!(
        (check.kind, check.port, check.interval),
        (Some(CheckType::Connect), Some(80), secs(6))
    );
    assert_eq!(check.fall, Some(2), "TCP_CHECK retries once by default");

    let (config, notes) = sample("SMTP_CHECK");
    let vs = &config.virtual_servers[0];
    let first = vs.real[0].check.as_ref().unwrap();
    assert_eq!(first.kind, Some(CheckType::Smtp));
    assert_eq!(
        (first.timeout, first.fall, first.retry_delay),
        (secs(30), Some(3), secs(5))
    );
    assert_eq!(first.interval, secs(60));
    assert_eq!(first.helo_name.as_deref(), Some("foo.bar.com"));
    // Every host block is a server the check must find up, with its own address, port and
    // source; and, as keepalived 2.2.7 does when the SMTP_CHECK block sets connect_timeout,
    // the real server itself first.
    let all = vs.real[2].check.as_ref().unwrap().hosts.as_deref().unwrap();
    assert_eq!(all[0], lvs_config::CheckHost::default());
    let hosts = &all[1..];
    let host = |i: usize| {
        (
            hosts[i].address.map(|a| a.to_string()),
            hosts[i].port,
            hosts[i].bind_address.map(|a| a.to_string()),
        )
    };
    assert_eq!(hosts.len(), 3);
    assert_eq!(host(0), (None, Some(25), Some("172.16.1.2".into())));
    assert_eq!(
        host(1),
        (
            Some("192.168.155.11".into()),
            Some(25),
            Some("192.168.155.2".into())
        )
    );
    assert_eq!(host(2), (Some("64.233.167.100".into()), Some(587), None));
    assert!(
        notes
            .iter()
            .all(|n| !n.contains("helo_name") && !n.contains("host {") && !n.contains("bindto")),
        "{notes:#?}"
    );

    let (config, _) = sample("PING_CHECK");
    let vs = &config.virtual_servers[0];
    assert_eq!(vs.protocol, Protocol::Udp);
    assert_eq!(vs.check.as_ref().unwrap().kind, Some(CheckType::Ping));
    assert_eq!(vs.check.as_ref().unwrap().fall, Some(5));

    let (config, _) = sample("UDP_CHECK");
    assert_eq!(
        config.virtual_servers[0].check.as_ref().unwrap().kind,
        Some(CheckType::Udp)
    );

    let (config, _) = sample("misc_check_arg");
    let check = config.virtual_servers[0].check.as_ref().unwrap();
    assert_eq!(check.kind, Some(CheckType::External));
    assert_eq!(
        check.command.as_deref(),
        Some("/usr/local/bin/script.sh arg1 arg2")
    );
    assert_eq!(check.fall, Some(1), "MISC_CHECK does not retry by default");
    assert_eq!(
        check.timeout,
        secs(6),
        "misc_timeout defaults to delay_loop"
    );
}

#[test]
fn inhibit_quorum_and_groups() {
    let (config, _) = sample("inhibit");
    assert_eq!(config.virtual_servers[0].on_failure, OnFailure::Quiescent);

    let (config, notes) = sample("quorum");
    assert_eq!(config.virtual_servers[0].real.len(), 10);
    assert_eq!(config.virtual_servers[0].scheduler, Scheduler::Wrr);
    assert_eq!(
        (
            config.virtual_servers[0].quorum,
            config.virtual_servers[0].hysteresis
        ),
        (7, 2),
        "quorum and hysteresis are imported one to one"
    );
    assert!(!notes.iter().any(|n| n.contains("quorum 7")), "{notes:?}");
    assert_eq!(
        (
            config.virtual_servers[0].quorum_up.as_deref(),
            config.virtual_servers[0].quorum_down.as_deref()
        ),
        (
            Some("/usr/local/sbin/quorum-up.sh"),
            Some("/usr/local/sbin/quorum-down.sh")
        ),
        "quorum scripts are imported as keepalived runs them"
    );
    assert!(config.virtual_servers[0].omega, "omega is imported");
    assert!(!notes.iter().any(|n| n.contains("omega")), "{notes:?}");
    assert_eq!(
        config.virtual_servers[0].check.as_ref().unwrap().initial,
        Some(InitialState::Down),
        "alpha: servers start down"
    );

    let (config, _) = sample("virtual_server_group");
    let keys: Vec<String> = config.virtual_servers.iter().map(|vs| vs.label()).collect();
    assert_eq!(keys.len(), 13, "{keys:?}");
    assert!(keys.contains(&"tcp 192.168.200.7:80".to_owned()));
    assert!(keys.contains(&"fwmark 2".to_owned()));
    assert!(config.virtual_servers.iter().all(|vs| vs.real.len() == 2));
    // The group stays one block (one set of checks): every service it loads to comes from it.
    assert!(
        config
            .virtual_servers
            .iter()
            .all(|vs| vs.group_of == Some(0))
    );
    let imported = import(
        Source::Keepalived,
        &fixture("keepalived-samples/keepalived.conf.virtual_server_group"),
        false,
    )
    .unwrap();
    assert_eq!(imported.toml.matches("[[virtual_server]]").count(), 1);
    assert!(
        imported.toml.contains(
            r#"group = ["10.0.0.1:8080", "10.0.0.2:80", "192.168.200.1:1358", "192.168.200.3-10:80", "fwmark 1", "fwmark 2"]"#
        ),
        "{}",
        imported.toml
    );
}

#[test]
fn vrrp_instances_auth_tracking_and_sync() {
    let (config, notes) = sample("vrrp");
    let vi1 = &config.vrrp.instance[0];
    assert_eq!(
        vi1.auth,
        Some(Auth::Pass {
            password: "1111".into()
        })
    );
    assert_eq!(vi1.garp.delay, lvs_config::Duration::from_secs(10));
    assert_eq!(
        vi1.virtual_addresses.len(),
        3,
        "the labelled duplicate is added once"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("label eth0:1 not supported"))
    );
    assert_eq!(config.vrrp.instance[1].priority, 50);

    let (config, _) = sample("vrrp.localcheck");
    let vi1 = &config.vrrp.instance[0];
    assert_eq!(
        vi1.priority, 100,
        "positive weights stay tracking weights, as vrrpd adds them while healthy"
    );
    let weights: Vec<i32> = vi1.track_interfaces.iter().map(|t| t.weight).collect();
    assert_eq!(weights, [2, -2, 0]);
    let scripts: Vec<i32> = vi1.track_scripts.iter().map(|t| t.weight).collect();
    assert_eq!(
        scripts,
        [-4, 2, -2, -2, -2],
        "chk_haproxy weight 2 overrides 0"
    );
    let sshd = &vi1.track_scripts[0];
    assert_eq!(sshd.command, "killall -0 sshd");
    assert_eq!(
        (sshd.interval, sshd.weight, sshd.rise, sshd.fall),
        (lvs_config::Duration::from_secs(2), -4, 2, 2)
    );

    let (config, notes) = sample("vrrp.lvs_syncd");
    let sync = config.sync.as_ref().unwrap();
    assert_eq!(sync.interface, "eth1");
    assert_eq!(sync.role, SyncRole::Follow("VI_1".into()));
    assert_eq!(sync.syncid, 51);
    assert!(config.vrrp.sync_group.is_empty());
    assert!(notes.iter().any(|n| n.contains("VI_2 not supported")));

    let (config, _) = sample("vrrp.sync");
    assert_eq!(config.vrrp.sync_group[0].instances.len(), 7);
    assert_eq!(config.vrrp.sync_group[1].instances, ["VI_3", "VI_4"]);
}

#[test]
fn conditionals_follow_the_config_id() {
    let path = fixture("keepalived-samples/keepalived.conf.conditional_conf");
    let without = import(Source::Keepalived, &path, false).unwrap();
    let config = lvs_config::parse(&without.toml, "x").unwrap();
    let vi0 = &config.vrrp.instance[0];
    assert_eq!(vi0.priority, 100, "no @ line kept: BACKUP default 100");
    assert_eq!(vi0.track_interfaces[1].weight, 20, "eth2 adds 20 while up");
    assert!(
        vi0.track_scripts.is_empty(),
        "the script line was conditional"
    );
    assert!(
        without
            .unsupported
            .iter()
            .any(|u| u.line == 19 && u.directive == "@high priority 170")
    );
    assert_eq!(
        (vi0.version, vi0.advert_interval),
        (3, lvs_config::Duration::from_secs(12))
    );
    assert!(vi0.virtual_mac);
    assert_eq!(
        vi0.virtual_mac_interface, None,
        "vrrpd names it vrrp.<vrid> as keepalived"
    );

    let high = Options {
        config_id: Some("high".into()),
    };
    let with = import_with(Source::Keepalived, &path, false, &high).unwrap();
    let config = lvs_config::parse(&with.toml, "x").unwrap();
    let vi0 = &config.vrrp.instance[0];
    assert_eq!(vi0.priority, 170);
    assert_eq!(
        vi0.track_scripts[0].command,
        "/etc/keepalived/scripts/check_high_VI_0.sh"
    );
    assert!(
        with.unsupported
            .iter()
            .all(|u| !u.directive.starts_with('@'))
    );
}

#[test]
fn parameters_includes_and_service_options() {
    let (config, notes) = load(Source::Keepalived, "keepalived-features/main.conf");
    let vi = &config.vrrp.instance[0];
    assert_eq!(vi.interface, "eth0");
    assert_eq!(vi.virtual_addresses[0].to_string(), "192.0.2.10/24");
    assert_eq!(vi.priority, 50, "@^node1 kept");
    assert_eq!(
        vi.track_scripts[0].weight, 10,
        "added while the script succeeds"
    );
    assert_eq!(
        (vi.version, vi.advert_interval),
        (3, lvs_config::Duration::from_millis(500))
    );
    assert_eq!(vi.garp.delay, lvs_config::Duration::from_secs(2));
    assert_eq!(
        (
            config.vrrp.rt_priority,
            config.vrrp.rlimit_rttime,
            config.vrrp.no_swap
        ),
        (Some(50), lvs_config::Duration::from_millis(20), true),
        "vrrp_rt_priority, vrrp_rlimit_rttime (microseconds) and vrrp_no_swap"
    );
    assert!(
        notes.iter().all(|n| !n.contains("vrrp_rt_priority")
            && !n.contains("vrrp_rlimit_rttime")
            && !n.contains("vrrp_no_swap")),
        "{notes:#?}"
    );
    assert_eq!(
        vi.unicast_peers,
        ["192.0.2.3".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(vi.source_address, Some("192.0.2.2".parse().unwrap()));
    assert_eq!(
        (vi.notify.as_deref(), vi.notify_state.as_deref()),
        (None, Some("/usr/local/bin/notify")),
        "keepalived's notify, called with its own arguments"
    );
    assert!(vi.virtual_mac);
    assert_eq!(vi.virtual_mac_interface.as_deref(), Some("vmac42"));
    assert!(
        notes.iter().all(|n| !n.contains("promote_secondaries")),
        "vrrpd always promotes secondaries: nothing to report"
    );
    assert!(
        notes.iter().all(|n| !n.contains("notify")),
        "notify carries over: {notes:#?}"
    );
    let sync = config.sync.as_ref().unwrap();
    assert_eq!((sync.syncid, sync.group.port()), (7, 8850));

    let web = &config.virtual_servers[0];
    assert_eq!(
        web.address,
        Some("192.0.2.10:443".parse().unwrap()),
        "included file, $VIP"
    );
    assert_eq!(
        (web.scheduler, web.forwarding),
        (Scheduler::Sh, Forwarding::Dr)
    );
    assert_eq!(web.flags, [ServiceFlag::ShPort]);
    assert_eq!(
        web.persistence,
        secs(360),
        "bare persistence_timeout is 6 minutes"
    );
    assert_eq!(web.netmask.unwrap().prefix_len, 24);
    assert_eq!(web.on_failure, OnFailure::Quiescent);
    let tls = web.real[0].check.as_ref().unwrap();
    assert_eq!(tls.kind, Some(CheckType::Https));
    assert_eq!(tls.sni.as_deref(), Some("www.example.com"));
    assert_eq!(tls.expect_status.as_deref().unwrap(), ["200", "204"]);
    assert_eq!(
        (tls.timeout, tls.fall, tls.interval),
        (secs(2), Some(3), secs(10))
    );
    assert_eq!(tls.initial, Some(InitialState::Down));
    let dns = web.real[1].check.as_ref().unwrap();
    assert_eq!(
        (dns.query.as_deref(), dns.record_type.as_deref()),
        (Some("example.com"), Some("A"))
    );
    assert_eq!(
        (dns.fall, dns.retry_delay),
        (Some(4), secs(10)),
        "DNS: retry 3, delay = delay_loop"
    );
    assert_eq!(web.real[1].weight, 0);

    let misc = &config.virtual_servers[1];
    assert_eq!(
        (misc.fwmark, misc.scheduler, misc.forwarding),
        (Some(5), Scheduler::Lc, Forwarding::Nat)
    );
    let check = misc.check.as_ref().unwrap();
    assert_eq!(check.dynamic_weight, Some(true));
    assert_eq!(check.timeout, secs(4));
    assert_eq!(
        check.command.as_deref(),
        Some("/usr/local/bin/load --dynamic")
    );
}

#[test]
fn ldirectord_options() {
    let (config, _) = load(Source::Ldirectord, "ldirectord/ldirectord.cf");
    let web = &config.virtual_servers[0];
    assert_eq!(web.name.as_deref(), Some("Web Site"));
    assert_eq!(
        (web.scheduler, web.forwarding, web.on_failure),
        (Scheduler::Rr, Forwarding::Dr, OnFailure::Remove)
    );
    let check = web.check.as_ref().unwrap();
    assert_eq!(
        (
            check.kind,
            check.path.as_deref(),
            check.expect_body.as_deref()
        ),
        (
            Some(CheckType::Http),
            Some("/index.html"),
            Some("Test Page")
        )
    );
    assert_eq!(
        (check.interval, check.timeout, check.fall),
        (secs(1), secs(3), Some(1))
    );
    assert_eq!(web.fallback, Some("127.0.0.1:80".parse().unwrap()));

    let (config, notes) = load(Source::Ldirectord, "ldirectord/options.cf");
    let http = &config.virtual_servers[0];
    assert_eq!(http.real.len(), 4, "a range of three plus one");
    assert_eq!(http.real[0].weight, 20);
    assert_eq!(
        http.on_failure,
        OnFailure::Remove,
        "quiescent=no in the block beats the global yes"
    );
    assert_eq!(
        (http.scheduler, http.persistence),
        (Scheduler::Wlc, secs(600))
    );
    assert_eq!(http.netmask.unwrap().prefix_len, 24);
    assert_eq!(http.fallback, Some("192.0.2.250:80".parse().unwrap()));
    let check = http.check.as_ref().unwrap();
    assert_eq!(
        (
            check.method.as_deref(),
            check.host.as_deref(),
            check.path.as_deref()
        ),
        (Some("HEAD"), Some("www.example.org"), Some("/status"))
    );
    assert_eq!(
        (check.interval, check.timeout, check.fall),
        (secs(5), secs(20), Some(3))
    );
    let own = &http.real[3];
    assert_eq!(
        (
            own.forwarding,
            own.weight,
            own.lower_threshold,
            own.upper_threshold
        ),
        (Some(Forwarding::Nat), 5, 10, 100)
    );
    assert_eq!(
        own.check.as_ref().unwrap().path.as_deref(),
        Some("/alive.html")
    );
    assert_eq!(
        own.check.as_ref().unwrap().expect_body.as_deref(),
        Some("ok")
    );

    let dns = &config.virtual_servers[1];
    assert_eq!(
        (dns.protocol, dns.forwarding, dns.on_failure),
        (Protocol::Udp, Forwarding::Tun, OnFailure::Quiescent)
    );
    assert_eq!(dns.flags, [ServiceFlag::OnePacket]);
    assert_eq!(
        dns.check.as_ref().unwrap().query.as_deref(),
        Some("example.org")
    );

    let sql = config.virtual_servers[2].check.as_ref().unwrap();
    assert_eq!(
        (sql.kind, sql.port, sql.timeout),
        (Some(CheckType::Connect), Some(3307), secs(4))
    );

    let mark = &config.virtual_servers[4];
    assert_eq!(
        (mark.fwmark, mark.flags.as_slice()),
        (Some(7), [ServiceFlag::ShPort].as_slice())
    );
    // ldirectord runs `checkcommand VIP VPORT RIP RPORT`, the fwmark in place of the VIP and no
    // port for a fwmark service; the command passes directord's LVS_* variables on in that order.
    assert_eq!(
        mark.check.as_ref().unwrap().command.as_deref(),
        Some(r#"/usr/local/bin/check 7 "" "$LVS_REAL_IP" "$LVS_REAL_PORT""#)
    );

    let v6 = &config.virtual_servers[5];
    assert_eq!(v6.check.as_ref().unwrap().kind, Some(CheckType::Off));
    assert_eq!(v6.fallback, Some("[2001:db8::1:99]:443".parse().unwrap()));
    assert!(
        notes
            .iter()
            .any(|n| n.contains("logfile=\"local0\" not supported"))
    );
}

// ldirectord's request on a pgsql negotiate check is the query run after the login, and
// fork=yes is not needed, for the reason it is not.
#[test]
fn ldirectord_sql_request_and_fork() {
    let (config, notes) = load(Source::Ldirectord, "ldirectord/options.cf");
    let pg = config.virtual_servers[3].check.as_ref().unwrap();
    assert_eq!(
        (pg.kind, pg.user.as_deref(), pg.database.as_deref()),
        (Some(CheckType::Pgsql), Some("monitor"), Some("app"))
    );
    assert_eq!(
        pg.query.as_deref(),
        Some("SELECT 1 FROM pool WHERE enabled")
    );
    assert!(notes.iter().all(|n| !n.contains("SQL")), "{notes:#?}");
    assert!(
        notes.iter().any(|n| n.contains(
            "fork=yes not supported: not needed: directord probes every real server concurrently"
        )),
        "{notes:#?}"
    );
}

#[test]
fn ipvsadm_save_reproduces_the_table_without_checks() {
    let (config, notes) = load(Source::Ipvsadm, "ipvsadm/uml-6.1-every-option.save");
    assert!(config.virtual_servers.iter().all(|vs| vs.check.is_none()));
    let dns = config
        .virtual_servers
        .iter()
        .find(|vs| vs.label() == "udp 192.0.2.1:53")
        .unwrap();
    assert_eq!(
        dns.flags,
        [
            ServiceFlag::OnePacket,
            ServiceFlag::ShFallback,
            ServiceFlag::ShPort
        ]
    );
    assert_eq!(
        (dns.persistence, dns.forwarding),
        (secs(300), Forwarding::Tun)
    );
    assert_eq!(dns.netmask.unwrap().to_string(), "255.255.255.0");
    let web = &config.virtual_servers[0];
    assert_eq!(web.scheduler, Scheduler::Wlc);
    assert_eq!((web.real[0].weight, web.real[1].weight), (3, 0));
    let sip = config
        .virtual_servers
        .iter()
        .find(|vs| vs.persistence_engine.is_some())
        .unwrap();
    assert_eq!(sip.persistence_engine.as_deref(), Some("sip"));
    let v6mark = config
        .virtual_servers
        .iter()
        .find(|vs| vs.fwmark == Some(8))
        .unwrap();
    assert_eq!(
        (v6mark.family, v6mark.netmask.unwrap().prefix_len),
        (Some(Family::Inet6), 64)
    );
    assert_eq!(
        config
            .virtual_servers
            .iter()
            .find(|vs| vs.protocol == Protocol::Sctp)
            .unwrap()
            .scheduler,
        Scheduler::Nq
    );
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].ends_with(":7: --tun-type gue --tun-port 6080 --tun-nocsum not supported: the real server is reached over a plain IPIP tunnel"));

    let (config, notes) = load(Source::Ipvsadm, "ipvsadm/handwritten-thresholds.save");
    assert!(notes.is_empty());
    let web = &config.virtual_servers[0];
    assert_eq!(
        (web.persistence, web.forwarding),
        (secs(300), Forwarding::Dr)
    );
    assert_eq!(
        (web.real[0].upper_threshold, web.real[0].lower_threshold),
        (200, 100)
    );
    assert_eq!(web.real[2].forwarding, Some(Forwarding::Nat));
    assert_eq!(
        config.virtual_servers[1].flags,
        [ServiceFlag::ShFallback, ServiceFlag::ShPort]
    );
}

fn error(source: Source, name: &str) -> import::ImportError {
    import(source, &fixture(name), false).expect_err(name)
}

#[test]
fn malformed_input_is_located() {
    let e = error(Source::Keepalived, "malformed/unbalanced-open.conf");
    assert_eq!((e.line, e.kind), (6, ErrorKind::Syntax));
    assert!(
        e.to_string().contains(
            "unbalanced-open.conf:6: unbalanced '{': the block \"vrrp_instance VI_1\" opened at "
        ),
        "{e}"
    );
    assert!(
        e.message.contains("unbalanced-open.conf:1 is never closed"),
        "{e}"
    );

    let e = error(Source::Keepalived, "malformed/unbalanced-close.conf");
    assert_eq!((e.line, e.kind), (4, ErrorKind::Syntax));
    assert!(
        e.to_string()
            .ends_with("unbalanced-close.conf:4: unbalanced '}': no block is open here"),
        "{e}"
    );

    let e = error(Source::Keepalived, "malformed/unknown-block.conf");
    assert_eq!((e.line, e.kind), (2, ErrorKind::UnknownBlock));
    assert!(e.message.contains("vrrp_instanse"), "{e}");

    let e = error(Source::Keepalived, "malformed/bad-address.conf");
    assert_eq!((e.line, e.kind), (1, ErrorKind::BadAddress));
    assert!(
        e.to_string()
            .ends_with("bad-address.conf:1: invalid IP address \"192.0.2.300\""),
        "{e}"
    );

    let e = error(Source::Ldirectord, "malformed/bad-address.cf");
    assert_eq!((e.line, e.kind), (2, ErrorKind::BadAddress));

    let e = error(Source::Ipvsadm, "malformed/bad-option.save");
    assert_eq!((e.line, e.kind), (2, ErrorKind::BadValue));
    assert!(e.message.contains("--bogus"));

    let e = error(Source::Keepalived, "malformed/does-not-exist.conf");
    assert_eq!(e.kind, ErrorKind::Read);
}

#[test]
fn strict_mode_fails_on_the_first_unsupported_directive() {
    let path = fixture("ipvsadm/uml-6.1-every-option.save");
    let e = import(Source::Ipvsadm, &path, true).unwrap_err();
    assert_eq!(e.line, 7);
    assert!(e.message.contains("--tun-type gue"), "{e}");
    import(
        Source::Ipvsadm,
        &fixture("ipvsadm/handwritten-thresholds.save"),
        true,
    )
    .expect("nothing unsupported, so strict passes");
    let e = import(
        Source::Keepalived,
        &fixture("keepalived-samples/keepalived.conf.sample"),
        true,
    )
    .unwrap_err();
    assert_eq!(e.line, 4, "notification_email is the first");
}

#[test]
fn unsupported_entries_display_as_file_line_directive() {
    let imported = import(
        Source::Ldirectord,
        &fixture("ldirectord/ldirectord.cf"),
        false,
    )
    .unwrap();
    let first = imported.unsupported[0].to_string();
    assert!(first.ends_with("ldirectord.cf:16: autoreload=yes not supported: directord reloads on SIGHUP (systemctl reload), not by watching the file"), "{first}");
    assert!(
        imported.toml.contains("# from "),
        "blocks carry their origin"
    );
    assert!(imported.toml.contains("ldirectord.cf:25\n"));
}

/// keepalived's virtual_routes and virtual_rules carry over: each option of the Debian
/// samples, the multipath route (`or`) and the malformed rule reported and left out, and a
/// rule without a priority numbered as keepalived numbers it (16384 down, the static rules'
/// numbers taken first: `keepalived -t` says 16383 for this one).
#[test]
fn virtual_routes_and_rules() {
    let (config, notes) = sample("vrrp.routes");
    let routes = &config.vrrp.instance[0].routes;
    let shown: Vec<String> = routes
        .iter()
        .map(|r| {
            format!(
                "{} {} via {:?} dev {:?} src {:?} table {:?}",
                r.kind, r.to, r.via, r.dev, r.src, r.table
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            "unicast 192.168.109.0/24 via Some(192.168.200.254) dev Some(\"eth1\") src Some(192.168.100.1) table None",
            "unicast 192.168.110.0/24 via Some(192.168.200.254) dev Some(\"eth1\") src None table None",
            "unicast 192.168.111.0/24 via None dev Some(\"eth2\") src None table None",
            "unicast 192.168.112.0/24 via Some(192.168.100.254) dev None src None table None",
            "blackhole 192.168.113.1/32 via None dev None src None table None",
            "unicast 0.0.0.0/0 via Some(192.168.0.1) dev None src None table Some(100)",
        ]
    );
    assert!(
        notes.iter().any(|n| n.contains("route option \"or\"")),
        "{notes:#?}"
    );
    let (config, notes) = sample("vrrp.rules");
    let rules = &config.vrrp.instance[0].rules;
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(
        (
            rules[0].from.map(|n| n.to_string()),
            rules[0].table,
            rules[0].priority
        ),
        (Some("192.168.200.0/24".to_owned()), 2, Some(16383))
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("invalid address \"192.168.200./24\"")),
        "{notes:#?}"
    );
}

// keepalived's inhibit_on_failure is per real server: the service takes the majority's and
// the others keep their own (it used to make the whole service one or the other); and
// ha_suspend is taken as it is.
#[test]
fn inhibit_on_failure_stays_per_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keepalived.conf");
    std::fs::write(
        &path,
        "virtual_server 192.0.2.100 80 {\n  lb_kind DR\n  protocol TCP\n  ha_suspend\n\
         real_server 198.51.100.1 80 {\n    inhibit_on_failure\n    TCP_CHECK {\n    }\n  }\n\
         real_server 198.51.100.2 80 {\n    inhibit_on_failure\n    TCP_CHECK {\n    }\n  }\n\
         real_server 198.51.100.3 80 {\n    TCP_CHECK {\n    }\n  }\n}\n",
    )
    .unwrap();
    let imported = import(Source::Keepalived, &path, false).unwrap();
    let config = lvs_config::parse(&imported.toml, "k.toml").unwrap();
    let vs = &config.virtual_servers[0];
    assert_eq!(vs.on_failure, OnFailure::Quiescent);
    assert!(vs.ha_suspend, "ha_suspend is imported");
    let own: Vec<Option<OnFailure>> = vs.real.iter().map(|r| r.on_failure).collect();
    assert_eq!(own, [None, None, Some(OnFailure::Remove)]);
    assert!(
        !imported
            .unsupported
            .iter()
            .any(|n| n.to_string().contains("inhibit_on_failure")),
        "{:?}",
        imported.unsupported
    );
}

// Each checker option keepalived keeps per check arrives one to one, and directord's probe
// spec resolves it to the same meaning: the check's virtualhost as the Host header, a url's
// own virtualhost over it, each url's digest and status codes, connect_ip / connect_port as
// where the probe goes, bindto / bind_port as where it comes from, and every SMTP host block
// as one more server the check talks to, greeting with helo_name. keepalived itself accepts
// the file (`keepalived --config-test`), so it is a configuration keepalived runs.
#[test]
fn checker_options_keep_their_meaning() {
    use lvs_checks::spec::{Bind, CheckSpec, Endpoint, Kind};
    let path = fixture("keepalived-features/checks.conf");
    if let Ok(status) = std::process::Command::new("keepalived")
        .arg("--config-test")
        .arg("-f")
        .arg(&path)
        .status()
    {
        assert!(status.success(), "keepalived refuses {}", path.display());
    }
    let (config, notes) = load(Source::Keepalived, "keepalived-features/checks.conf");
    assert!(notes.is_empty(), "{notes:#?}");
    let web = &config.virtual_servers[0];
    let spec = CheckSpec::resolve(web, &web.real[0]).unwrap();
    let target = CheckSpec::target(web, &web.real[0]);
    let route = target.route(&spec);
    assert_eq!(route.to, "198.51.100.21:8080".parse().unwrap());
    assert_eq!(route.from, Some("198.51.100.2:40001".parse().unwrap()));
    let Kind::Http(http) = spec.kind else {
        panic!("{:?}", spec.kind)
    };
    assert_eq!(http.host.as_deref(), Some("www.example.com"));
    let pages: Vec<_> = http
        .urls
        .iter()
        .map(|u| (u.path.as_str(), u.host.as_deref(), u.statuses.clone()))
        .collect();
    assert_eq!(
        pages,
        [
            ("/health", None, vec![(200, 299)]),
            (
                "/status",
                Some("status.example.com"),
                vec![(200, 200), (204, 204)]
            ),
        ]
    );
    assert_eq!(
        http.urls[1].digest.map(|d| d[0]),
        Some(0x64),
        "upper-case hex reads as keepalived reads it"
    );
    let one = CheckSpec::resolve(web, &web.real[1]).unwrap();
    let Kind::Http(one) = one.kind else { panic!() };
    assert_eq!(one.urls.len(), 1);
    assert_eq!(one.urls[0].path, "/only");
    assert!(one.urls[0].digest.is_some());

    let mail = &config.virtual_servers[1];
    let spec = CheckSpec::resolve(mail, &mail.real[0]).unwrap();
    assert_eq!(
        spec.timing.timeout,
        std::time::Duration::from_secs(4),
        "the host blocks' connect_timeout"
    );
    let Kind::Smtp(smtp) = spec.kind else {
        panic!()
    };
    assert_eq!(smtp.helo.as_deref(), Some("mx-check.example.com"));
    assert_eq!(
        smtp.hosts,
        [
            Endpoint {
                address: None,
                port: None,
                bind: Bind {
                    address: Some("198.51.100.2".parse().unwrap()),
                    port: None
                }
            },
            Endpoint {
                address: Some("198.51.100.31".parse().unwrap()),
                port: Some(587),
                bind: Bind::default()
            },
        ]
    );
}

/// keepalived's `bfd_instance` becomes `[[bfd.session]]` with keepalived's timers written out
/// (ours differ: 10 ms, not 100 ms; multiplier 5, not 3) and `track_bfd` the instance's
/// tracking with its weights. keepalived itself (`keepalived -t`) checks the same file: it
/// reports the same unknown session the import notes, and nothing else.
#[test]
fn bfd_instance_and_track_bfd() {
    let (config, notes) = load(Source::Keepalived, "keepalived-bfd.conf");
    let sessions = &config.bfd.session;
    assert_eq!(sessions.len(), 2);
    let router = &sessions[0];
    assert_eq!(router.name, "router");
    assert_eq!(
        router.peer,
        "192.0.2.2".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(router.local_address, Some("192.0.2.1".parse().unwrap()));
    assert_eq!(router.interval.get(), Std::from_millis(20));
    assert_eq!(router.required_min_rx(), Std::from_millis(30));
    assert_eq!(router.multiplier, 3);
    assert!(router.passive && !router.multihop);
    let far = &sessions[1];
    assert!(far.multihop);
    assert_eq!(far.interval.get(), Std::from_millis(10));
    assert_eq!(far.required_min_rx(), Std::from_millis(10));
    assert_eq!(far.multiplier, 5);
    let tracked: Vec<(&str, i32)> = config.vrrp.instance[0]
        .track_bfd
        .iter()
        .map(|t| (t.name.as_str(), t.weight))
        .collect();
    // router's weight comes from its bfd_instance, far's from the track_bfd entry.
    assert_eq!(tracked, [("router", -30), ("far", -20)]);
    let notes = notes.join("\n");
    assert!(notes.contains("idle_tx 2000 not supported"), "{notes}");
    assert!(
        notes.contains("missing not supported: no bfd_instance of this name"),
        "{notes}"
    );
    assert!(!notes.contains("there is no BFD"), "{notes}");

    if lvs_tests_keepalived_available() {
        let out = std::process::Command::new("keepalived")
            .args(["-t", "-f"])
            .arg(fixture("keepalived-bfd.conf"))
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(said.contains("track bfd missing not found"), "{said}");
        assert_eq!(
            said.lines().filter(|l| !l.trim().is_empty()).count(),
            1,
            "{said}"
        );
    }
}

fn lvs_tests_keepalived_available() -> bool {
    std::process::Command::new("keepalived")
        .arg("-v")
        .output()
        .is_ok()
}
