//! Every class of bad input yields its message at the line and column of the offending value.

use lvs_config::{Config, ConfigError, parse};

fn parse_ok(text: &str) -> Config {
    match parse(text, "t.toml") {
        Ok(config) => config,
        Err(e) => panic!("expected valid config, got:\n{e}"),
    }
}

/// The diagnostics as "line:col: message".
fn errors(text: &str) -> Vec<String> {
    match parse(text, "t.toml") {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(ConfigError::Invalid(diagnostics)) => diagnostics
            .iter()
            .map(|d| {
                assert_eq!(d.file, "t.toml");
                format!("{}:{}: {}", d.line, d.column, d.message)
            })
            .collect(),
        Err(other) => panic!("unexpected error {other}"),
    }
}

#[track_caller]
fn assert_error(text: &str, position: &str, fragment: &str) {
    let found = errors(text);
    assert!(
        found
            .iter()
            .any(|e| e.starts_with(&format!("{position}: ")) && e.contains(fragment)),
        "expected {position}: ...{fragment}... in {found:#?}"
    );
}

const INSTANCE: &str = r#"
[[vrrp.instance]]
name = "VI_1"
interface = "eth0"
vrid = 51
virtual_addresses = ["192.0.2.100/24"]
"#;

const SERVICE: &str = r#"
[[virtual_server]]
address = "192.0.2.100:80"

[[virtual_server.real]]
address = "198.51.100.11:80"
"#;

#[test]
fn the_shipped_examples_are_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            let config = lvs_config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!config.virtual_servers.is_empty(), "{}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 1, "no example found in {dir}");
}

#[test]
fn defaults_are_what_keepalived_and_ldirectord_users_expect() {
    let config = parse_ok(&format!("{INSTANCE}{SERVICE}"));
    let instance = &config.vrrp.instance[0];
    assert_eq!(instance.priority, 100);
    assert_eq!(instance.version, 2);
    assert_eq!(
        instance.advert_interval.get(),
        std::time::Duration::from_secs(1)
    );
    assert!(instance.preempt);
    assert_eq!(instance.garp.repeat, 5);
    assert_eq!(instance.garp.delay.get(), std::time::Duration::from_secs(5));
    let service = &config.virtual_servers[0];
    assert_eq!(service.scheduler, lvs_config::Scheduler::Wrr);
    assert_eq!(service.forwarding, lvs_config::Forwarding::Dr);
    assert_eq!(service.protocol, lvs_config::Protocol::Tcp);
    assert_eq!(service.on_failure, lvs_config::OnFailure::Quiescent);
    assert_eq!(service.real[0].weight, 1);
    assert_eq!(
        config.control.socket_dir,
        std::path::Path::new("/run/lvs-director")
    );
}

#[test]
fn an_empty_file_is_a_valid_director_with_nothing_to_do() {
    let config = parse_ok("");
    assert!(config.vrrp.instance.is_empty() && config.virtual_servers.is_empty());
}

#[test]
fn syntax_errors_point_at_the_broken_spot() {
    assert_error("[control]\nsocket_dir = = \"/run\"\n", "2:14", "");
    assert_error("[control\n", "1:9", "");
}

#[test]
fn unknown_keys_are_refused_where_they_are_written() {
    assert_error(
        "[control]\nsocket_dri = \"/run\"\n",
        "2:1",
        "unknown field `socket_dri`",
    );
    let text = INSTANCE.replace("vrid = 51", "vrid = 51\nprio = 100");
    assert_error(&text, "6:1", "unknown field `prio`");
    assert_error(
        &format!("{SERVICE}wieght = 5\n"),
        "7:1",
        "unknown field `wieght`",
    );
}

#[test]
fn wrong_types_are_refused_at_the_value() {
    assert_error(
        &INSTANCE.replace("vrid = 51", "vrid = \"51\""),
        "5:8",
        "invalid type",
    );
    assert_error(&INSTANCE.replace("vrid = 51", "vrid = 300"), "5:8", "");
    assert_error(
        &INSTANCE.replace("vrid = 51", "vrid = 51\nadvert_interval = 1"),
        "6:19",
        "no unit",
    );
    assert_error(
        &SERVICE.replace("192.0.2.100:80", "192.0.2.100"),
        "3:11",
        "socket address",
    );
    assert_error(
        &SERVICE.replacen(":80\"\n", ":80\"\nscheduler = \"wrrr\"\n", 1),
        "4:13",
        "unknown scheduler \"wrrr\"",
    );
}

#[test]
fn vrrp_numbers() {
    assert_error(
        &INSTANCE.replace("vrid = 51", "vrid = 0"),
        "5:8",
        "vrid must be between 1 and 255",
    );
    assert_error(
        &INSTANCE.replace("vrid = 51", "vrid = 51\npriority = 0"),
        "6:12",
        "priority 0 is reserved",
    );
    assert_error(
        &INSTANCE.replace("vrid = 51", "vrid = 51\npriority = 255\npreempt = false"),
        "7:11",
        "address owner",
    );
    assert_error(
        &INSTANCE.replace("vrid = 51", "vrid = 51\nversion = 4"),
        "6:11",
        "version 4 does not exist",
    );
    assert_error(
        &INSTANCE.replace("vrid = 51", "vrid = 51\nadvert_interval = \"500ms\""),
        "6:19",
        "VRRPv2 advert_interval is whole seconds",
    );
    assert_error(
        &INSTANCE.replace(
            "vrid = 51",
            "vrid = 51\nversion = 3\nadvert_interval = \"105ms\"",
        ),
        "7:19",
        "multiple of 10ms",
    );
    parse_ok(&INSTANCE.replace(
        "vrid = 51",
        "vrid = 51\nversion = 3\nadvert_interval = \"100ms\"",
    ));
}

#[test]
fn vrrp_scheduling_is_keepalived_s_off_by_default_and_checked_when_on() {
    let config = parse_ok(INSTANCE);
    assert_eq!(config.vrrp.rt_priority, None);
    assert!(!config.vrrp.no_swap);
    assert_eq!(
        config.vrrp.rlimit_rttime.get(),
        std::time::Duration::from_millis(10)
    );
    let on = parse_ok(&format!(
        "[vrrp]\nrt_priority = 50\nno_swap = true\nrlimit_rttime = \"50ms\"\n{INSTANCE}"
    ));
    assert_eq!(on.vrrp.rt_priority, Some(50));
    assert!(on.vrrp.no_swap);
    assert_error(
        &format!("[vrrp]\nrt_priority = 100\n{INSTANCE}"),
        "2:15",
        "1..99",
    );
    assert_error(
        &format!("[vrrp]\nrt_priority = 0\n{INSTANCE}"),
        "2:15",
        "1..99",
    );
}

#[test]
fn track_directord_is_on_with_virtual_servers_and_checked() {
    assert!(!parse_ok(INSTANCE).tracks_directord());
    let with_services = parse_ok(&format!("{INSTANCE}{SERVICE}"));
    assert!(with_services.tracks_directord());
    assert_eq!(
        with_services.vrrp.track_directord.weight, 0,
        "FAULT by default"
    );
    let off = parse_ok(&format!(
        "[vrrp]\ntrack_directord = {{ enabled = false }}\n{INSTANCE}{SERVICE}"
    ));
    assert!(!off.tracks_directord());
    let weighted = parse_ok(&format!(
        "[vrrp]\ntrack_directord = {{ weight = -60, interval = \"500ms\" }}\n{INSTANCE}"
    ));
    assert_eq!(weighted.vrrp.track_directord.weight, -60);
    assert!(
        !weighted.tracks_directord(),
        "no virtual servers, not enabled"
    );
    assert_error(
        &format!("[vrrp]\ntrack_directord = {{ weight = 10 }}\n{INSTANCE}"),
        "2:30",
        "-254..-1",
    );
    assert_error(
        &format!("[vrrp]\ntrack_directord = {{ timeout = \"1ms\" }}\n{INSTANCE}"),
        "2:31",
        "at least 10ms",
    );
    assert_error(
        &format!("[vrrp]\ntrack_directord = {{ wait = \"1s\" }}\n{INSTANCE}"),
        "2:21",
        "unknown field `wait`",
    );
}

#[test]
fn vrrp_auth() {
    let text = INSTANCE.replace(
        "vrid = 51",
        "vrid = 51\nauth = { type = \"pass\", password = \"toolongpass\" }",
    );
    assert_error(&text, "6:36", "1 to 8 bytes");
    let text = INSTANCE.replace(
        "vrid = 51",
        "vrid = 51\nversion = 3\nauth = { type = \"pass\", password = \"x\" }",
    );
    assert_error(&text, "7:8", "VRRPv3 has no authentication");
}

#[test]
fn vrrp_address_families() {
    let text = INSTANCE.replace(
        "[\"192.0.2.100/24\"]",
        "[\"192.0.2.100/24\", \"2001:db8::1/64\"]",
    );
    assert_error(&text, "6:40", "IPv4 addresses only");
    let text = INSTANCE
        .replace("vrid = 51", "vrid = 51\nversion = 3")
        .replace(
            "[\"192.0.2.100/24\"]",
            "[\"192.0.2.100/24\", \"2001:db8::1/64\"]",
        );
    assert_error(&text, "7:40", "all be IPv4 or all IPv6");
    let text = INSTANCE.replace("vrid = 51", "vrid = 51\nunicast_peers = [\"2001:db8::2\"]");
    assert_error(&text, "6:18", "unicast peer 2001:db8::2 is not IPv4");
}

#[test]
fn duplicate_vips_and_routers() {
    let second = INSTANCE
        .replace("VI_1", "VI_2")
        .replace("vrid = 51", "vrid = 52");
    assert_error(
        &format!("{INSTANCE}{second}"),
        "12:22",
        "also held by instance \"VI_1\"",
    );
    let second = INSTANCE
        .replace("VI_1", "VI_2")
        .replace("192.0.2.100", "192.0.2.101");
    assert_error(
        &format!("{INSTANCE}{second}"),
        "11:8",
        "already used by instance \"VI_1\"",
    );
    let twice = INSTANCE
        .replace("vrid = 51", "vrid = 53")
        .replace("192.0.2.100", "192.0.2.102");
    assert_error(
        &format!("{INSTANCE}{twice}"),
        "9:8",
        "duplicate VRRP instance name",
    );
}

#[test]
fn sync_groups_name_real_instances() {
    let text = format!(
        "{INSTANCE}\n[[vrrp.sync_group]]\nname = \"G1\"\ninstances = [\"VI_1\", \"VI_9\"]\n"
    );
    assert_error(&text, "10:22", "unknown VRRP instance \"VI_9\"");
}

/// keepalived's notify scripts: a command line whose quotes do not close (which keepalived
/// would run cut short) and a FIFO script without a FIFO are refused at their value.
#[test]
fn notify_scripts_are_command_lines_and_the_fifo_script_needs_a_fifo() {
    let good = format!(
        "[vrrp]\nnotify_fifo = \"/run/vrrp.fifo\"\nnotify_fifo_script = \"/bin/reader -v\"\n{INSTANCE}notify_fault = \"/bin/x 'a b'\"\nnotify_state = \"/bin/y\"\n"
    );
    let config = parse_ok(&good);
    assert_eq!(
        config.vrrp.instance[0].notify_fault.as_deref(),
        Some("/bin/x 'a b'")
    );
    assert_eq!(
        lvs_config::command_words("/bin/x 'a b'"),
        Some(vec!["/bin/x".to_owned(), "a b".to_owned()])
    );
    assert_error(
        &good.replace("/bin/x 'a b'", "/bin/x 'a b"),
        "10:16",
        "is not a command line",
    );
    assert_error(
        &good.replace("notify_fifo = \"/run/vrrp.fifo\"\n", ""),
        "2:22",
        "needs notify_fifo",
    );
    assert_error(
        &good.replace("/run/vrrp.fifo", "vrrp.fifo"),
        "2:15",
        "absolute path",
    );
    let group = format!(
        "{INSTANCE}\n[[vrrp.sync_group]]\nname = \"G1\"\ninstances = [\"VI_1\"]\nnotify_master = \"\"\n"
    );
    assert_error(&group, "11:17", "is not a command line");
}

/// keepalived's address options: a label the kernel would refuse for the device, a broadcast
/// on IPv6, an advertised address of the other family are refused at their value; an excluded
/// one may be of either family.
#[test]
fn vips_options_are_checked() {
    let vip = |options: &str| {
        format!("{INSTANCE}\n[[vrrp.instance.vips]]\naddress = \"198.51.100.1/24\"\n{options}\n")
    };
    parse_ok(&vip(
        "dev = \"eth1\"\nlabel = \"eth1:gw\"\nscope = \"link\"\nbroadcast = \"198.51.100.255\"",
    ));
    parse_ok(&format!(
        "{INSTANCE}\n[[vrrp.instance.vips]]\naddress = \"2001:db8::1/64\"\nadvertised = false\n"
    ));
    assert_error(
        &vip("dev = \"eth1\"\nlabel = \"eth0:gw\""),
        "11:9",
        "must be \"eth1\" or start with",
    );
    assert_error(&vip("scope = \"planet\""), "10:9", "unknown scope");
    assert_error(
        &format!("{INSTANCE}\n[[vrrp.instance.vips]]\naddress = \"2001:db8::1/64\"\n"),
        "9:11",
        "VRRPv2 carries IPv4 addresses only",
    );
    assert_error(
        &format!(
            "{INSTANCE}\n[[vrrp.instance.vips]]\naddress = \"2001:db8::1/64\"\nadvertised = false\nbroadcast = \"192.0.2.255\"\n"
        ),
        "11:13",
        "broadcast is for IPv4",
    );
    assert_error(
        &format!("{INSTANCE}\n[[vrrp.instance.vips]]\naddress = \"192.0.2.100/24\"\n"),
        "9:11",
        "listed twice",
    );
}

/// keepalived's virtual routes and rules: one family per route, no gateway on a blackhole,
/// no table 0 or 255 (none, and the kernel's local table), each refused at its value.
#[test]
fn virtual_routes_and_rules_are_checked() {
    let route = |body: &str| format!("{INSTANCE}\n[[vrrp.instance.routes]]\n{body}\n");
    let config = parse_ok(&route(
        "to = \"203.0.113.0/26\"\nvia = \"192.0.2.254\"\ndev = \"eth0\"\nsrc = \"192.0.2.100\"\ntable = 100\nmetric = 5\nscope = \"link\"",
    ));
    assert_eq!(
        config.vrrp.instance[0].routes[0].kind,
        lvs_config::RouteType::Unicast
    );
    assert_error(
        &route("to = \"203.0.113.0/26\"\nvia = \"2001:db8::1\""),
        "10:7",
        "via must be IPv4",
    );
    assert_error(
        &route("to = \"203.0.113.0/26\"\ntype = \"blackhole\"\nvia = \"192.0.2.254\""),
        "10:8",
        "a blackhole route has no via or dev",
    );
    assert_error(
        &route("to = \"203.0.113.0/26\"\ntype = \"throw\""),
        "10:8",
        "unknown routetype",
    );
    assert_error(
        &route("to = \"203.0.113.0/26\"\ntable = 255"),
        "10:9",
        "local table",
    );
    let rule = |body: &str| format!("{INSTANCE}\n[[vrrp.instance.rules]]\n{body}\n");
    parse_ok(&rule(
        "from = \"203.0.113.0/24\"\ntable = 100\npriority = 200",
    ));
    assert_error(
        &rule("from = \"203.0.113.0/24\"\nto = \"2001:db8::/64\"\ntable = 100"),
        "10:6",
        "one family",
    );
    assert_error(&rule("table = 0"), "9:9", "table 0 is none");
}

#[test]
fn virtual_server_identity() {
    assert_error(
        &SERVICE.replace("address = \"192.0.2.100:80\"", "name = \"x\""),
        "2:1",
        "needs address",
    );
    assert_error(
        &SERVICE.replace(":80\"\n\n", ":80\"\nfwmark = 3\n\n"),
        "4:10",
        "either address or fwmark",
    );
    assert_error(
        &SERVICE.replace("192.0.2.100:80", "192.0.2.100:0"),
        "3:11",
        "port 0",
    );
    let twice = format!("{SERVICE}{SERVICE}").replacen("198.51.100.11", "198.51.100.12", 1);
    assert_error(&twice, "9:11", "already defined by virtual_server[0]");
}

#[test]
fn real_servers_match_their_service() {
    assert_error(
        &SERVICE.replace("198.51.100.11:80", "[2001:db8::11]:80"),
        "6:11",
        "is IPv6 but the service is IPv4",
    );
    assert_error(
        &SERVICE.replace("198.51.100.11:80", "198.51.100.11:8080"),
        "6:11",
        "cannot change the port",
    );
    parse_ok(
        &SERVICE
            .replace("198.51.100.11:80", "198.51.100.11:8080")
            .replace(":80\"\n", ":80\"\nforwarding = \"nat\"\n"),
    );
    assert_error(
        &format!("{SERVICE}weight = 70000\n"),
        "7:10",
        "between 0 and 65535",
    );
    let twice = format!("{SERVICE}\n[[virtual_server.real]]\naddress = \"198.51.100.11:80\"\n");
    assert_error(&twice, "9:11", "already listed as real[0]");
}

#[test]
fn service_options_fit_the_scheduler() {
    let text = SERVICE.replacen(":80\"\n", ":80\"\nflags = [\"sh-port\"]\n", 1);
    assert_error(&text, "4:10", "only applies to the sh scheduler");
    let text = SERVICE.replacen(":80\"\n", ":80\"\nnetmask = \"255.255.255.0\"\n", 1);
    assert_error(&text, "4:11", "only applies to a persistent service");
    let text = SERVICE.replacen(
        ":80\"\n",
        ":80\"\npersistence = \"300s\"\npersistence_engine = \"rtsp\"\n",
        1,
    );
    assert_error(&text, "5:22", "unknown persistence engine");
    let text = SERVICE.replacen(":80\"\n", ":80\"\nfallback = \"[2001:db8::9]:80\"\n", 1);
    assert_error(&text, "4:12", "not IPv4 like the service");
}

#[test]
fn checks_take_only_their_own_keys() {
    let text = SERVICE.replace(
        ":80\"\n\n",
        ":80\"\ncheck = { type = \"connect\", path = \"/\" }\n\n",
    );
    assert_error(&text, "4:36", "path does not apply to a connect check");
    let text = SERVICE.replace(":80\"\n\n", ":80\"\ncheck = { interval = \"1s\" }\n\n");
    assert_error(&text, "4:9", "needs a type");
    let text = SERVICE.replace(
        ":80\"\n\n",
        ":80\"\ncheck = { type = \"http\", expect_status = [\"200-99\"] }\n\n",
    );
    assert_error(&text, "4:43", "not a code or range");
    let text = SERVICE.replace(
        ":80\"\n\n",
        ":80\"\ncheck = { type = \"http\", expect_body = \"(\" }\n\n",
    );
    assert_error(&text, "4:40", "invalid regular expression");
    let text = SERVICE.replace(":80\"\n\n", ":80\"\ncheck = { type = \"external\" }\n\n");
    assert_error(&text, "4:9", "needs command");
    let text = SERVICE.replace(":80\"\n\n", ":80\"\ncheck = { type = \"fancy\" }\n\n");
    assert_error(&text, "4:18", "unknown checktype \"fancy\"");
}

// keepalived's digest, url blocks, SMTP host blocks and connection options: each shaped
// where it is written, and only on the checks that have them.
#[test]
fn keepalived_checker_options_are_checked() {
    let with = |check: &str| SERVICE.replace(":80\"\n\n", &format!(":80\"\ncheck = {check}\n\n"));
    parse_ok(&with(
        r#"{ type = "http", digest = "9B3A0C85A887A256D6939DA88AABD8CD", address = "192.0.2.9", bind_address = "192.0.2.1", bind_port = 4000, url = [{ path = "/a", digest = "9b3a0c85a887a256d6939da88aabd8cd" }, { path = "/b", host = "b.example", expect_status = ["204"] }] }"#,
    ));
    parse_ok(&with(
        r#"{ type = "smtp", helo_name = "mx.example", hosts = [{}, { address = "192.0.2.9", port = 587, bind_address = "192.0.2.1" }] }"#,
    ));
    assert_error(
        &with(r#"{ type = "http", digest = "abc" }"#),
        "4:35",
        "digest is an MD5 of 32 hex digits",
    );
    assert_error(
        &with(r#"{ type = "http", url = [{ path = "/a" }, { path = "b", digest = "xyz" }] }"#),
        "4:59",
        "an HTTP path starts with '/'",
    );
    assert_error(
        &with(r#"{ type = "http", url = [{ path = "/a" }, { path = "/b", digest = "xyz" }] }"#),
        "4:74",
        "digest is an MD5",
    );
    assert_error(
        &with(r#"{ type = "http", url = [] }"#),
        "4:32",
        "at least one page",
    );
    assert_error(
        &with(r#"{ type = "http", url = [{ path = "/", code = 1 }] }"#),
        "4:47",
        "unknown field `code`",
    );
    assert_error(
        &with(r#"{ type = "connect", hosts = [{}] }"#),
        "4:37",
        "hosts does not apply to a connect check",
    );
    parse_ok(&with(
        r#"{ type = "dns", query = "a.example", bind_address = "192.0.2.1" }"#,
    ));
    assert_error(
        &with(r#"{ type = "ping", bind_address = "192.0.2.1" }"#),
        "4:41",
        "bind_address does not apply to a ping check",
    );
    assert_error(
        &with(r#"{ type = "connect", address = "192.0.2.9", bind_address = "2001:db8::1" }"#),
        "4:67",
        "not of the same family",
    );
    assert_error(
        &with(r#"{ type = "smtp", hosts = [{ port = 0 }] }"#),
        "4:44",
        "check port must not be 0",
    );
    parse_ok(&with(
        r#"{ type = "pgsql", user = "monitor", query = "SELECT 1" }"#,
    ));
    assert_error(
        &with(r#"{ type = "mysql", query = "SELECT 1" }"#),
        "4:9",
        "a query runs after a login: set user too",
    );
    assert_error(
        &with(r#"{ type = "connect", bind_port = 0 }"#),
        "4:41",
        "bind_port must not be 0",
    );
}

#[test]
fn a_real_servers_check_inherits_the_type() {
    let text = SERVICE.replace(
        ":80\"\n\n",
        ":80\"\ncheck = { type = \"http\", path = \"/a\" }\n\n",
    );
    parse_ok(&format!("{text}check = {{ path = \"/b\" }}\n"));
    assert_error(
        &format!("{text}check = {{ type = \"connect\", path = \"/b\" }}\n"),
        "8:36",
        "path does not apply",
    );
}

#[test]
fn sync_section() {
    let base = "[sync]\ninterface = \"eth1\"\nrole = \"backup\"\n";
    parse_ok(base);
    assert_error(
        &base.replace("\"backup\"", "{ follow = \"VI_9\" }"),
        "3:8",
        "unknown VRRP instance \"VI_9\"",
    );
    assert_error(
        &base.replace("\"backup\"", "\"boss\""),
        "3:8",
        "unknown role",
    );
    assert_error(
        &format!("{base}group = \"192.0.2.1:8848\"\n"),
        "4:9",
        "not a multicast address",
    );
    assert_error(&format!("{base}maxlen = 10\n"), "4:10", "64 to 65507");
}

/// Caught (issue 15, defect 13): the example's `peers = ["192.0.2.12:8849"]` beside the
/// group at port 8848 passed check-config, while every syncd reading it receives unicast on
/// 8848: no resync, and no word about it.
#[test]
fn sync_peers_are_reached_where_syncd_listens() {
    let base = "[sync]\ninterface = \"eth1\"\nrole = \"backup\"\n";
    assert_error(
        &format!("{base}group = \"224.0.0.81:8848\"\npeers = [\"192.0.2.12:8849\"]\n"),
        "5:10",
        "no syncd listens on port 8849",
    );
    // Without a port a peer is reached at unicast_port, by default the group's port.
    let sync = parse_ok(&format!(
        "{base}group = \"224.0.0.81:8850\"\npeers = [\"192.0.2.12\", \"192.0.2.13:8850\"]\n"
    ))
    .sync
    .unwrap();
    let addrs: Vec<String> = sync.peer_addrs().iter().map(ToString::to_string).collect();
    assert_eq!(addrs, ["192.0.2.12:8850", "192.0.2.13:8850"]);
    let sync = parse_ok(&format!(
        "{base}unicast_port = 8849\npeers = [\"192.0.2.12\", \"192.0.2.13:8849\"]\n"
    ))
    .sync
    .unwrap();
    assert_eq!(sync.unicast_port(), 8849);
    assert!(sync.peer_addrs().iter().all(|p| p.port() == 8849));
    assert_error(
        &format!("{base}unicast_port = 8849\npeers = [\"192.0.2.12:8848\"]\n"),
        "5:10",
        "set unicast_port = 8848",
    );
    assert_error(
        &format!("{base}peers = [\"2001:db8::12\"]\n"),
        "4:10",
        "not of the sync group",
    );
    assert_error(
        &format!("{base}peers = [\"eth0\"]\n"),
        "4:9",
        "not an address",
    );
    assert_error(
        &format!("{base}unicast_port = 0\n"),
        "4:16",
        "must not be 0",
    );

    // The example's peers line, uncommented, is valid and reaches the group's port.
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/director.toml"
    ))
    .unwrap();
    let peers_line = example
        .lines()
        .find(|l| l.starts_with("# peers = "))
        .expect("the example shows peers");
    let uncommented = example.replace(peers_line, &peers_line[2..]);
    let sync = parse_ok(&uncommented).sync.unwrap();
    assert!(!sync.peers.is_empty());
    assert!(
        sync.peer_addrs()
            .iter()
            .all(|p| p.port() == sync.group.port())
    );
}

#[test]
fn sync_trust_keys_are_checked() {
    let base = "[sync]\ninterface = \"eth1\"\nrole = \"backup\"\n";
    let sync = parse_ok(base).sync.unwrap();
    assert_eq!(
        (sync.group_sources, sync.max_entries, sync.key_file),
        (None, 2_000_000, None)
    );
    let sync = parse_ok(&format!(
        "{base}group_sources = [\"203.0.113.0/24\"]\nmax_entries = 10\nkey_file = \"/etc/lvs-director/sync.key\"\n"
    ))
    .sync
    .unwrap();
    assert_eq!(sync.group_sources.unwrap()[0].to_string(), "203.0.113.0/24");
    assert_error(
        &format!("{base}group_sources = [\"2001:db8::/32\"]\n"),
        "4:18",
        "not of the sync group",
    );
    assert_error(&format!("{base}max_entries = 0\n"), "4:15", "at least 1");
    assert_error(
        &format!("{base}key_file = \"sync.key\"\n"),
        "4:12",
        "absolute path",
    );
}

#[test]
fn feedback_agents_name_real_servers_of_a_service() {
    let text = format!(
        "{SERVICE}\n[feedback]\n[[feedback.agent]]\nreal = \"198.51.100.99:80\"\naddress = \"198.51.100.99:3333\"\n"
    );
    assert_error(&text, "10:8", "not a real server of any virtual_server");
    let text = format!("{SERVICE}\n[feedback]\nsmoothing = 0.0\n");
    assert_error(&text, "9:13", "EWMA factor");
}

#[test]
fn agent_connection_load_is_shaped() {
    let base = "[agent]\nconnections = { ports = [80, 443], max_connections = 500 }\n";
    let connections = parse_ok(base).agent.unwrap().connections.unwrap();
    assert_eq!(connections.ports, [80, 443]);
    assert_eq!(connections.max_connections, 500);
    assert_error(
        "[agent.connections]\nports = []\nmax_connections = 5\n",
        "2:9",
        "at least one local port",
    );
    assert_error(
        "[agent.connections]\nports = [80, 0, 80]\nmax_connections = 5\n",
        "2:14",
        "must not be 0",
    );
    assert_error(
        "[agent.connections]\nports = [80, 0, 80]\nmax_connections = 5\n",
        "2:17",
        "port 80 is listed twice",
    );
    assert_error(
        "[agent.connections]\nports = [80]\nmax_connections = 0\n",
        "3:19",
        "must be above 0",
    );
    assert_error(
        "[agent.connections]\nports = [80]\nmax_connections = 5\nmax = 3\n",
        "4:1",
        "unknown field",
    );
    assert_error(
        "[agent.connections]\nports = [80]\n",
        "1:1",
        "max_connections",
    );
}

#[test]
fn sysctls_are_known_and_shaped() {
    assert_error(
        "[ipvs.sysctl]\nexpire_nodest_con = 1\n",
        "2:21",
        "unknown IPVS sysctl",
    );
    assert_error("[ipvs.sysctl]\nsync_threshold = 3\n", "2:18", "two numbers");
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = INSTANCE.replace("vrid = 51", "vrid = 0\npriority = 0");
    assert_eq!(errors(&text).len(), 2);
}

#[test]
fn read_errors_name_the_file() {
    let error = lvs_config::load(std::path::Path::new("/nonexistent/director.toml")).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("/nonexistent/director.toml: cannot read config")
    );
}

#[test]
fn a_serialized_config_parses_back_to_the_same() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/director.toml"
    ))
    .unwrap();
    let config = parse_ok(&text);
    let written = toml::to_string(&config).unwrap();
    assert_eq!(parse_ok(&written), config, "{written}");
    for role in ["\"master\"", "\"backup\""] {
        let text = format!("[sync]\ninterface = \"eth1\"\nrole = {role}\n");
        let config = parse_ok(&text);
        assert_eq!(parse_ok(&toml::to_string(&config).unwrap()), config);
    }
}

#[test]
fn virtual_mac_interfaces() {
    let named = |name: &str| {
        INSTANCE.replace(
            "vrid = 51",
            &format!("vrid = 51\nvirtual_mac = true\nvirtual_mac_interface = \"{name}\""),
        )
    };
    assert_error(
        &named("vrrp.fifteen.long"),
        "7:25",
        "not a valid interface name",
    );
    assert_error(&named("vrrp/51"), "7:25", "not a valid interface name");
    assert_error(&named("eth0"), "7:25", "not the base interface's");
    assert_error(
        &INSTANCE.replace("vrid = 51", "vrid = 51\nvirtual_mac_interface = \"vm1\""),
        "6:25",
        "needs virtual_mac = true",
    );
    // Two instances on vrrp.51 by default naming: same VRID on two base interfaces.
    let vmac = INSTANCE.replace("vrid = 51", "vrid = 51\nvirtual_mac = true");
    let second = vmac
        .replace("VI_1", "VI_2")
        .replace("eth0", "eth1")
        .replace("192.0.2.100", "192.0.2.101");
    assert_error(
        &format!("{vmac}{second}"),
        "9:1",
        "macvlan \"vrrp.51\" is also used by instance \"VI_1\"",
    );
    assert!(lvs_config::parse(&named("vrrp.51"), "test").is_ok());
}

#[test]
fn control_group_must_be_a_group_name() {
    assert_error(
        "[control]\ngroup = \"adm in\"\n",
        "2:9",
        "is not a group name",
    );
    assert_error("[control]\ngroup = \"\"\n", "2:9", "is not a group name");
    let config = parse_ok("[control]\ngroup = \"lvs-monitor\"\n");
    assert_eq!(config.control.group.as_deref(), Some("lvs-monitor"));
}

// A group block loads as one service per member (a range counts each address), all marked
// with the block they came from; what is wrong with a member is reported at the member.
#[test]
fn virtual_server_groups_expand_and_report_at_the_member() {
    let group = r#"
[[virtual_server]]
name = "web"
group = ["192.0.2.100:80", "192.0.2.110-112:80", "fwmark 7"]
real = [{ address = "198.51.100.11:80" }]
"#;
    let config = parse_ok(group);
    let labels: Vec<String> = config
        .virtual_servers
        .iter()
        .map(|vs| format!("{:?} {:?} {:?}", vs.address, vs.fwmark, vs.group_of))
        .collect();
    assert_eq!(
        labels,
        [
            "Some(192.0.2.100:80) None Some(0)",
            "Some(192.0.2.110:80) None Some(0)",
            "Some(192.0.2.111:80) None Some(0)",
            "Some(192.0.2.112:80) None Some(0)",
            "None Some(7) Some(0)",
        ]
    );
    // The first SERVICE already has 192.0.2.100:80: the member is reported where it is.
    assert_error(
        &format!("{SERVICE}{group}"),
        "10:10",
        "virtual service tcp 192.0.2.100:80 is already defined by virtual_server[0]",
    );
    assert_error(
        &group.replace("\"fwmark 7\"", "\"192.0.2.111:80\""),
        "4:50",
        "virtual service tcp 192.0.2.111:80 is listed twice",
    );
    assert_error(
        &group.replace("192.0.2.110-112:80", "192.0.2.110-100:80"),
        "4:9",
        "the range ends below its start",
    );
    assert_error(
        &group.replace("\"fwmark 7\"", "\"[2001:db8::1]:80\""),
        "4:50",
        "all IPv4 or all IPv6",
    );
    assert_error(
        &group.replace(
            "name = \"web\"",
            "name = \"web\"\naddress = \"192.0.2.1:80\"",
        ),
        "5:9",
        "leave out address and fwmark",
    );
}

// A VRRP instance may track a named virtual server's quorum; the name must exist and vrrpd
// must be asking directord.
#[test]
fn track_services_name_a_virtual_server() {
    let named = SERVICE.replace(
        "[[virtual_server]]\n",
        "[[virtual_server]]\nname = \"web\"\n",
    );
    let tracked =
        format!("{INSTANCE}track_services = [{{ service = \"web\", weight = -60 }}]\n{named}");
    let config = parse_ok(&tracked);
    assert_eq!(config.vrrp.instance[0].track_services[0].weight, -60);
    assert_error(
        &tracked.replace("service = \"web\"", "service = \"api\""),
        "7:31",
        "no virtual server is named \"api\"",
    );
    assert_error(
        &format!("[vrrp.track_directord]\nenabled = false\n{tracked}"),
        "9:19",
        "needs [vrrp] track_directord on",
    );
}

/// `[ipvs] verify_interval`: 60 s by default, 0 turns the periodic read-back off, and anything
/// between is refused where it is written (each verify dumps the whole table).
#[test]
fn ipvs_verify_interval_defaults_to_a_minute_and_is_checked() {
    let default = parse_ok(SERVICE);
    assert_eq!(
        default.ipvs.verify_interval.get(),
        std::time::Duration::from_secs(60)
    );
    let off = parse_ok(&format!("[ipvs]\nverify_interval = \"0s\"\n{SERVICE}"));
    assert!(off.ipvs.verify_interval.is_zero());
    assert_error(
        &format!("[ipvs]\nverify_interval = \"100ms\"\n{SERVICE}"),
        "2:19",
        "at least 1s",
    );
}

/// Every shape error at once, each where it is: caught when written, the first wrong type
/// stopped the parse (serde stops there), so an operator fixed one error per run.
#[test]
fn every_shape_error_is_reported_at_once() {
    let text = r#"[control]
socket_dir = 5

[[vrrp.instance]]
name = "VI_1"
interface = "eth0"
vrid = 300
virtual_addresses = ["192.0.2.100/24"]

[[vrrp.instance]]
name = "VI_2"
interface = "eth0"
vrid = 52
virtual_addresses = ["192.0.2.101/24"]
colour = "blue"

[[virtual_server]]
address = "192.0.2.100:80"
scheduler = "fastest"

[[virtual_server]]
address = "192.0.2.100:81"
persistence = 300

[sync]
interface = "eth1"
role = "leader"
"#;
    let found = errors(text);
    for (line, fragment) in [
        ("2:", "invalid type"),
        ("7:", "300"),
        ("15:", "colour"),
        ("19:", "fastest"),
        ("23:", "no unit"),
        ("27:", "role"),
    ] {
        assert!(
            found
                .iter()
                .any(|e| e.starts_with(line) && e.contains(fragment)),
            "expected line {line} ...{fragment}... in {found:#?}"
        );
    }
}

#[test]
fn every_syntax_error_is_reported_at_once() {
    let found = errors("[control\nsocket_dir = \"/run\"\n[ipvs]\nown_whole_table = = true\n");
    assert!(found.len() >= 2, "{found:#?}");
    assert!(found[0].starts_with("1:"), "{found:#?}");
    assert!(found.iter().any(|e| e.starts_with("4:")), "{found:#?}");
}

/// `[announce]` (issue 18): a VIP names services that exist and directord is asked about, a
/// protocol number FRR, BIRD, keepalived or the kernel own is refused, a VIP is announced
/// once, communities are ASN:VALUE or well-known.
#[test]
fn announced_vips_are_checked() {
    let named = SERVICE.replace(
        "[[virtual_server]]\n",
        "[[virtual_server]]\nname = \"web\"\n",
    );
    let good = parse_ok(&format!(
        "{named}[announce]\n[[announce.vip]]\naddress = \"192.0.2.100\"\nservices = [\"web\"]\n\
         med = 10\ncommunities = [\"65000:100\", \"no-export\"]\n"
    ));
    let announce = good.announce.unwrap();
    assert_eq!(announce.protocol, 250, "the default protocol number");
    assert_eq!(
        announce.vip[0].communities,
        [
            lvs_config::Community::Value(65000, 100),
            lvs_config::Community::NoExport
        ]
    );
    let vip = "[[announce.vip]]\naddress = \"192.0.2.100\"\nservices = [\"web\"]\n";
    for (protocol, whose) in [
        (186, "FRR's"),
        (12, "rt_protos"),
        (18, "keepalived's"),
        (2, "kernel"),
    ] {
        assert_error(
            &format!("{named}[announce]\nprotocol = {protocol}\n{vip}"),
            "9:12",
            whose,
        );
    }
    assert_error(
        &format!("{named}[announce]\n{vip}{vip}"),
        "13:11",
        "announced twice",
    );
    assert_error(
        &format!("{named}[[announce.vip]]\naddress = \"192.0.2.100\"\nservices = [\"api\"]\n"),
        "10:13",
        "no virtual server is named \"api\"",
    );
    assert_error(
        &format!("{named}[[announce.vip]]\naddress = \"127.0.0.1\"\nservices = [\"web\"]\n"),
        "9:11",
        "cannot be a VIP",
    );
    assert_error(
        &format!("{named}{vip}communities = [\"65536:1\"]\n"),
        "11:15",
        "not a BGP community",
    );
    assert_error(
        &format!("[vrrp]\ntrack_directord = {{ enabled = false }}\n{named}{vip}"),
        "10:1",
        "needs [vrrp] track_directord",
    );
}

/// Proves `[[bfd.session]]` is checked: each bad value is reported at its own line.
#[test]
fn bfd_sessions_are_validated() {
    let text = r#"
[[bfd.session]]
name = "a"
peer = "192.0.2.2"
local_address = "2001:db8::1"
interval = "500us"
multiplier = 0
authentication = { type = "md5", key = "seventeen-bytes!!" }

[[bfd.session]]
name = "a"
peer = "224.0.0.1"
multihop = true
interface = "eth0"
authentication = { type = "sha1" }
"#;
    let error = lvs_config::parse(text, "bfd.toml").unwrap_err();
    let found: Vec<String> = error.diagnostics().iter().map(|d| d.to_string()).collect();
    let expect = [
        "bfd.toml:5:17: 2001:db8::1 is not of the peer's family",
        "bfd.toml:6:12: 500us is outside 1ms..1h 11m 34s 967ms 295us",
        "bfd.toml:7:14: multiplier must be 1..255",
        "bfd.toml:8:40: the key is 17 bytes; this type takes 1 to 16",
        "bfd.toml:11:8: duplicate BFD session name \"a\"",
        "bfd.toml:12:8: 224.0.0.1 cannot be a BFD peer",
        "bfd.toml:14:13: a multihop session is not bound to an interface",
        "bfd.toml:15:18: key or key_file is required",
    ];
    for line in expect {
        assert!(found.iter().any(|f| f == line), "{line} not in {found:#?}");
    }
    let good = lvs_config::parse(
        "[[bfd.session]]\nname = \"p\"\npeer = \"192.0.2.2\"\n\
         authentication = { type = \"meticulous-sha1\", key_file = \"/k\" }\n",
        "ok.toml",
    )
    .unwrap();
    let session = &good.bfd.session[0];
    assert_eq!(
        session.interval.get(),
        std::time::Duration::from_millis(100)
    );
    assert_eq!(session.required_min_rx(), session.interval.get());
    assert_eq!(session.multiplier, 3);
    assert!(
        lvs_config::parse(
            "[[bfd.session]]\nname = \"p\"\npeer = \"192.0.2.2\"\nttl = 1\n",
            "x"
        )
        .is_err()
    );
}

/// Proves `track_bfd` must name a `[[bfd.session]]` and keep keepalived's weight range.
#[test]
fn track_bfd_names_a_session() {
    let text = r#"
[[vrrp.instance]]
name = "VI_1"
interface = "eth0"
vrid = 51
virtual_addresses = ["192.0.2.100/24"]
track_bfd = [{ name = "router", weight = 0 }, { name = "nope", weight = -300 }]

[[bfd.session]]
name = "router"
peer = "192.0.2.2"
"#;
    let error = lvs_config::parse(text, "t.toml").unwrap_err();
    let found: Vec<String> = error.diagnostics().iter().map(|d| d.to_string()).collect();
    assert_eq!(
        found,
        [
            "t.toml:7:56: no [[bfd.session]] is named \"nope\"",
            "t.toml:7:73: tracking weight must be between -254 and 254",
        ]
    );
    assert!(
        lvs_config::parse(
            &text.replace(", { name = \"nope\", weight = -300 }", ""),
            "t"
        )
        .is_ok()
    );
}

/// `bfd_takeover` names a single-hop `[[bfd.session]]`: a multihop one does not run over the
/// adverts' link.
#[test]
fn bfd_takeover_names_a_single_hop_session() {
    let text = r#"
[[vrrp.instance]]
name = "VI_1"
interface = "eth0"
vrid = 51
virtual_addresses = ["192.0.2.100/24"]
bfd_takeover = "peer"

[[bfd.session]]
name = "peer"
peer = "192.0.2.2"
multihop = true
"#;
    let found: Vec<String> = lvs_config::parse(text, "t.toml")
        .unwrap_err()
        .diagnostics()
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(
        found,
        ["t.toml:7:16: \"peer\" is multihop: a takeover needs the adverts' own link"]
    );
    let unknown = text.replace("bfd_takeover = \"peer\"", "bfd_takeover = \"nope\"");
    let error = lvs_config::parse(&unknown, "t.toml")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("no [[bfd.session]] is named \"nope\""),
        "{error}"
    );
    assert!(lvs_config::parse(&text.replace("multihop = true\n", ""), "t.toml").is_ok());
}
