//! The /proc/net/ip_vs_conn parser on tables saved from a real 6.1 kernel, checked against
//! the sync messages the same kernel sent for them (tests/fixtures/README.md).

mod common;

use std::collections::BTreeMap;

use common::{fixture, pcap_udp_payloads};
use syncd::procfs::{self, ProcEntry, ToConnection};
use syncd::wire;
use syncd::{ConnKey, Connection, FwdMethod, Protocol};

fn table(name: &str) -> Vec<ProcEntry> {
    procfs::parse(&String::from_utf8(fixture(name)).unwrap()).unwrap()
}

/// The capture's DR service is 192.0.2.101:80; every other one is NAT (services.txt).
fn method(row: &ProcEntry) -> FwdMethod {
    if row.virtual_addr.ip().to_string() == "192.0.2.101" {
        FwdMethod::Route
    } else {
        FwdMethod::Masq
    }
}

fn last_sent(pcap: &str) -> BTreeMap<String, Connection> {
    let mut last = BTreeMap::new();
    for payload in pcap_udp_payloads(&fixture(pcap)) {
        for conn in wire::decode(&payload).unwrap().conns {
            last.insert(format!("{:?}", ConnKey::of(&conn)), conn);
        }
    }
    last
}

#[test]
fn every_row_of_the_v1_table_parses() {
    let rows = table("kernel-6.1/v1.ip_vs_conn");
    assert_eq!(rows.len(), 10);
    assert_eq!(rows.iter().filter(|r| r.client.is_ipv6()).count(), 2);
    assert_eq!(rows.iter().filter(|r| r.is_template()).count(), 1);
    let udp = rows
        .iter()
        .find(|r| Protocol(r.protocol) == Protocol::UDP)
        .unwrap();
    assert_eq!(udp.client.to_string(), "192.0.2.2:42738");
    assert_eq!(udp.dest.to_string(), "198.51.100.2:5353");
    assert_eq!((udp.state.as_str(), udp.expires), ("UDP", 295));
    let v0_rows = table("kernel-6.1/v0.ip_vs_conn");
    assert_eq!(v0_rows.len(), 18);
}

/// What a snapshot makes of each row equals what the kernel master itself sent for that
/// connection: same key, destination, state and flags (method, template, INACTIVE).
#[test]
fn snapshot_entries_equal_what_the_kernel_master_sent() {
    let sent = last_sent("kernel-6.1/v1.pcap");
    let rows = table("kernel-6.1/v1.ip_vs_conn");
    for row in &rows {
        let conn = row.to_connection(method(row)).unwrap();
        let key = format!("{:?}", ConnKey::of(&conn));
        let kernel = sent
            .get(&key)
            .unwrap_or_else(|| panic!("not sent: {row:?}"));
        assert_eq!(conn.dest(), kernel.dest(), "{row:?}");
        assert_eq!(conn.state, kernel.state, "{row:?}");
        assert_eq!(conn.flags, kernel.flags, "{row:?}");
        assert!(conn.timeout <= kernel.timeout, "{row:?}");
    }
    assert_eq!(sent.len(), rows.len());
}
