//! Messages a real Linux 6.1 master sync daemon sent (captured in UML, see
//! tests/fixtures/README.md), checked against the connection table it had at the time.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use common::{ProcConn, fixture, parse_ip_vs_conn, pcap_udp_payloads};
use syncd::wire::{self, MessageBuilder, ProtocolVersion, v0, v1};
use syncd::{ConnKey, Connection, FwdMethod, Protocol};

/// The last entry the master sent for each connection, as ip_vs_conn rows.
fn last_per_key(conns: &[Connection]) -> BTreeSet<ProcConn> {
    let mut last: BTreeMap<String, ProcConn> = BTreeMap::new();
    for conn in conns {
        last.insert(format!("{:?}", ConnKey::of(conn)), ProcConn::of(conn));
    }
    last.into_values().collect()
}

fn snapshot_rows(name: &str, clients: &[&str]) -> BTreeSet<ProcConn> {
    let clients: Vec<IpAddr> = clients.iter().map(|c| c.parse().unwrap()).collect();
    let text = String::from_utf8(fixture(name)).unwrap();
    parse_ip_vs_conn(&text)
        .into_iter()
        .filter(|row| clients.contains(&row.client))
        .collect()
}

fn v1_conns() -> Vec<Connection> {
    let mut conns = Vec::new();
    for payload in pcap_udp_payloads(&fixture("kernel-6.1/v1.pcap")) {
        let packet = v1::Packet::new_checked(&payload[..]).unwrap();
        conns.extend(v1::Repr::parse(&packet).unwrap().conns);
    }
    conns
}

#[test]
fn v1_header_and_first_entry_fields() {
    let payloads = pcap_udp_payloads(&fixture("kernel-6.1/v1.pcap"));
    assert_eq!(payloads.len(), 2);
    let packet = v1::Packet::new_checked(&payloads[0][..]).unwrap();
    assert_eq!(packet.reserved(), 0);
    assert_eq!(packet.sync_id(), 5);
    assert_eq!(usize::from(packet.size()), payloads[0].len());
    assert_eq!(packet.version(), 1);
    assert_eq!(packet.spare(), 0);
    assert_eq!(
        ProtocolVersion::detect(&payloads[0]),
        Ok(ProtocolVersion::V1)
    );
    let entries: Vec<_> = packet.entries().collect::<Result<_, _>>().unwrap();
    assert_eq!(entries.len(), usize::from(packet.conn_count()));
    let first = &entries[0];
    assert_eq!(first.entry_type(), 0);
    assert_eq!(first.protocol(), Protocol::TCP);
    assert_eq!(first.version(), 0);
    assert_eq!(usize::from(first.size()), v1::ENTRY_V4_LEN);
    assert_eq!(first.options().count(), 0);
}

#[test]
fn v1_entries_match_the_masters_connection_table() {
    let conns = v1_conns();
    let sent = last_per_key(&conns);
    let table = snapshot_rows("kernel-6.1/v1.ip_vs_conn", &["192.0.2.2", "2001:db8:1::2"]);
    assert_eq!(sent, table);
    // The capture covers every kind of entry the brief asks for.
    assert!(conns.iter().any(|c| c.addrs.is_ipv6()));
    assert!(conns.iter().any(|c| c.protocol == Protocol::UDP));
    assert!(
        conns
            .iter()
            .any(|c| c.is_template() && c.cport == 0 && c.timeout == 300)
    );
    assert!(conns.iter().any(|c| c.fwd_method() == FwdMethod::Route));
    assert!(conns.iter().any(|c| c.fwd_method() == FwdMethod::Masq));
    assert!(
        conns
            .iter()
            .all(|c| c.fwmark == 0 && c.seq.is_none() && c.pe_data.is_none())
    );
}

#[test]
fn v1_dr_entries_carry_route_method_and_dr_destination() {
    for conn in v1_conns() {
        let vip: IpAddr = "192.0.2.101".parse().unwrap();
        if conn.addrs.virtual_addr() == vip {
            assert_eq!(conn.fwd_method(), FwdMethod::Route, "{conn:?}");
            assert_eq!(conn.dest().to_string(), "192.0.2.20:80");
        } else {
            assert_eq!(conn.fwd_method(), FwdMethod::Masq, "{conn:?}");
        }
    }
}

#[test]
fn v1_emit_recreates_the_kernels_bytes() {
    for payload in pcap_udp_payloads(&fixture("kernel-6.1/v1.pcap")) {
        let repr = v1::Repr::parse(&v1::Packet::new_checked(&payload[..]).unwrap()).unwrap();
        assert_eq!(repr.buffer_len().unwrap(), payload.len());
        assert_eq!(repr.to_bytes().unwrap(), payload);
        // The builder packs like the kernel: same entries, same single message.
        let built = wire::build_messages(ProtocolVersion::V1, 5, 1472, &repr.conns).unwrap();
        assert_eq!(built, vec![payload.clone()]);
    }
}

#[test]
fn v0_entries_match_the_masters_connection_table() {
    let payloads = pcap_udp_payloads(&fixture("kernel-6.1/v0.pcap"));
    assert_eq!(payloads.len(), 1);
    let mut conns = Vec::new();
    for payload in &payloads {
        assert_eq!(ProtocolVersion::detect(payload), Ok(ProtocolVersion::V0));
        let packet = v0::Packet::new_checked(&payload[..]).unwrap();
        assert_eq!(packet.sync_id(), 5);
        assert_eq!(
            payload.len(),
            v0::HEADER_LEN + usize::from(packet.conn_count()) * v0::ENTRY_LEN
        );
        conns.extend(v0::Repr::parse(&packet).unwrap().conns);
    }
    assert!(conns.iter().all(|c| c.timeout == 0 && c.fwmark == 0));
    // The v0 phase used its own client address; IPv6 connections are not sent in v0.
    let table = snapshot_rows("kernel-6.1/v0.ip_vs_conn", &["192.0.2.3"]);
    assert_eq!(last_per_key(&conns), table);
}

#[test]
fn v0_emit_recreates_the_kernels_bytes() {
    for payload in pcap_udp_payloads(&fixture("kernel-6.1/v0.pcap")) {
        let repr = v0::Repr::parse(&v0::Packet::new_checked(&payload[..]).unwrap()).unwrap();
        assert_eq!(repr.to_bytes().unwrap(), payload);
        let mut builder = MessageBuilder::new(ProtocolVersion::V0, 5);
        for conn in &repr.conns {
            assert_eq!(builder.push(conn).unwrap(), None);
        }
        assert_eq!(builder.flush(), Some(payload));
    }
}

#[test]
fn decode_is_clean_on_kernel_messages() {
    for name in ["kernel-6.1/v1.pcap", "kernel-6.1/v0.pcap"] {
        for payload in pcap_udp_payloads(&fixture(name)) {
            let decoded = wire::decode(&payload).unwrap();
            assert!(decoded.issues.is_empty(), "{name}: {:?}", decoded.issues);
            assert_eq!(decoded.sync_id, 5);
        }
    }
}
