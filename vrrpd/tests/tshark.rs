//! Wireshark's dissector as an independent check of what we emit.
//!
//! Needs `tshark` (the project's test command installs it). Without it the test says so and
//! passes, unless `LVS_REQUIRE_LANES=1` makes that a failure.
//!
//! Set `VRRPD_PCAP_OUT=/some/file.pcap` to keep the capture for a look with
//! `tshark -r /some/file.pcap -V`.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::time::Duration;

use vrrpd::instance::{GarpConfig, InstanceConfig};
use vrrpd::wire::{Addresses, Auth, Body, IpPair, Repr, VRRP_GROUP_V4, VRRP_GROUP_V6, Version};

fn ip4() -> IpPair {
    IpPair::V4 {
        src: Ipv4Addr::new(192, 0, 2, 2),
        dst: VRRP_GROUP_V4,
    }
}

fn ip6() -> IpPair {
    IpPair::V6 {
        src: "fe80::2".parse().unwrap(),
        dst: VRRP_GROUP_V6,
    }
}

fn samples() -> Vec<(IpPair, Repr, &'static str)> {
    let base = InstanceConfig {
        vrid: 51,
        version: Version::V2,
        priority: 100,
        advert_interval: Duration::from_secs(1),
        preempt: true,
        preempt_delay: Duration::ZERO,
        primary_addr: Ipv4Addr::new(192, 0, 2, 2).into(),
        vips: vec![
            Ipv4Addr::new(192, 0, 2, 100).into(),
            Ipv4Addr::new(192, 0, 2, 101).into(),
        ],
        auth: Auth::None,
        garp: GarpConfig::default(),
    };
    let pass = InstanceConfig {
        auth: Auth::simple("s3cret").unwrap(),
        ..base.clone()
    };
    let v3 = InstanceConfig {
        version: Version::V3,
        advert_interval: Duration::from_millis(500),
        ..base.clone()
    };
    let v6_addrs: Vec<Ipv6Addr> =
        vec!["2001:db8::54".parse().unwrap(), "fe80::54".parse().unwrap()];
    vec![
        (ip4(), base.advert(100), "v2 no auth"),
        (ip4(), base.advert(0), "v2 priority 0"),
        (ip4(), pass.advert(150), "v2 simple text"),
        (ip4(), v3.advert(200), "v3 ipv4 50 cs"),
        (
            ip6(),
            Repr {
                vrid: 54,
                priority: 120,
                body: Body::V3 {
                    max_advert_int: 100,
                    addrs: Addresses::V6(v6_addrs),
                },
            },
            "v3 ipv6",
        ),
        (
            ip4(),
            Repr {
                vrid: 255,
                priority: 255,
                body: Body::V3 {
                    max_advert_int: 0x0fff,
                    addrs: Addresses::V4(vec![]),
                },
            },
            "v3 no addresses, max interval",
        ),
    ]
}

#[test]
fn tshark_decodes_emitted_packets_with_good_checksums() {
    let tshark = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("tshark").is_file()));
    if !tshark {
        assert!(
            std::env::var("LVS_REQUIRE_LANES").as_deref() != Ok("1"),
            "tshark is required"
        );
        eprintln!("SKIPPED: tshark is not installed");
        return;
    }
    let samples = samples();
    let frames: Vec<Vec<u8>> = samples
        .iter()
        .map(|(ip, repr, _)| common::frame(ip, repr.vrid, &repr.to_bytes(ip)))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = std::env::var_os("VRRPD_PCAP_OUT")
        .map(Into::into)
        .unwrap_or_else(|| dir.path().join("emitted.pcap"));
    common::write_pcap(&path, &frames);

    let out = Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .args([
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "vrrp.version",
            "-e",
            "vrrp.virt_rtr_id",
            "-e",
            "vrrp.prio",
            "-e",
            "vrrp.addr_count",
            "-e",
            "vrrp.checksum.status",
            "-e",
            "_ws.malformed",
            "-e",
            "_ws.expert",
        ])
        .output()
        .expect("tshark must be installed for this test");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), samples.len(), "{text}");
    for (line, (_, repr, what)) in lines.iter().zip(&samples) {
        let f: Vec<&str> = line.split('|').collect();
        // checksum.status 1 = Good in Wireshark's expert scheme.
        let expected = [
            repr.version().number().to_string(),
            repr.vrid.to_string(),
            repr.priority.to_string(),
            repr.addr_count().to_string(),
            "1".to_string(),
            String::new(),
            String::new(),
        ];
        assert_eq!(f, expected, "{what}: {line}");
    }

    let verbose = Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .arg("-V")
        .output()
        .unwrap();
    let verbose = String::from_utf8(verbose.stdout).unwrap();
    assert!(!verbose.contains("Malformed"), "{verbose}");
    assert_eq!(
        verbose.matches("[Checksum Status: Good]").count(),
        samples.len()
    );
    assert!(verbose.contains("Authentication String: s3cret"));
    assert!(verbose.contains("IP Address: 192.0.2.101"));
    assert!(verbose.contains("fe80::54"));
}
