//! Deterministic mutation of the captured kernel messages: decoding must never panic, and
//! whatever decodes must survive emit + decode unchanged.

mod common;

use common::{XorShift, fixture, pcap_udp_payloads};
use syncd::wire::{self, ProtocolVersion, v0, v1};
use syncd::{Addrs, ConnFlags, Connection, Protocol};

const ITERATIONS: usize = 100_000;

fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = pcap_udp_payloads(&fixture("kernel-6.1/v1.pcap"));
    seeds.extend(pcap_udp_payloads(&fixture("kernel-6.1/v0.pcap")));
    // The kernel capture has no options; add a message that has all three.
    let rich = Connection {
        protocol: Protocol::UDP,
        addrs: Addrs::new(
            "192.0.2.2".parse().unwrap(),
            "192.0.2.100".parse().unwrap(),
            "198.51.100.2".parse().unwrap(),
        )
        .unwrap(),
        cport: 5060,
        vport: 5060,
        dport: 5060,
        fwmark: 1,
        flags: ConnFlags(ConnFlags::TEMPLATE | ConnFlags::SEQ_MASK),
        state: 1,
        timeout: 60,
        seq: Some(Default::default()),
        pe_data: Some(b"abc".to_vec()),
        pe_name: Some(b"sip".to_vec()),
    };
    seeds
        .extend(wire::build_messages(ProtocolVersion::V1, 5, 1472, &[rich.clone(), rich]).unwrap());
    seeds
}

fn mutate(rng: &mut XorShift, buf: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        match rng.below(7) {
            0 if !buf.is_empty() => {
                let i = rng.below(buf.len());
                buf[i] ^= 1 << rng.below(8);
            }
            1 if !buf.is_empty() => {
                let i = rng.below(buf.len());
                buf[i] = [0, 1, 2, 3, 0x40, 0x41, 0x10, 0x7f, 0xff][rng.below(9)];
            }
            2 => {
                let len = rng.below(buf.len() + 1);
                buf.truncate(len);
            }
            3 => {
                let i = rng.below(buf.len() + 1);
                buf.insert(i, rng.next() as u8);
            }
            4 if !buf.is_empty() => {
                let i = rng.below(buf.len());
                buf.remove(i);
            }
            5 => {
                for _ in 0..rng.below(8) {
                    buf.push(rng.next() as u8);
                }
            }
            _ => {}
        }
    }
    // Usually keep the size field honest so mutations reach the entries.
    if buf.len() >= 4 && rng.below(4) != 0 {
        let len = buf.len() as u16;
        buf[2..4].copy_from_slice(&len.to_be_bytes());
    }
}

/// Touches every accessor the views offer; none may panic once `new_checked` passed.
fn walk_views(buf: &[u8]) {
    if let Ok(packet) = v1::Packet::new_checked(buf) {
        for entry in packet.entries().flatten() {
            let _ = (
                entry.protocol(),
                entry.flags(),
                entry.state(),
                entry.timeout(),
            );
            let _ = (
                entry.addrs(),
                entry.cport(),
                entry.vport(),
                entry.dport(),
                entry.fwmark(),
            );
            for option in entry.options().flatten() {
                let _ = (option.kind, option.data.len());
            }
            let _ = v1::parse_entry(&entry);
        }
        let _ = v1::Repr::parse(&packet);
    }
    if let Ok(packet) = v0::Packet::new_checked(buf) {
        for entry in packet.entries().flatten() {
            let _ = (
                entry.client_addr(),
                entry.dest_addr(),
                entry.flags(),
                entry.seq(),
            );
            let _ = v0::parse_entry(&entry);
        }
        let _ = v0::Repr::parse(&packet);
    }
}

#[test]
fn mutated_messages_never_panic_and_decodes_are_stable() {
    let seeds = seeds();
    let mut rng = XorShift(0x0005_eed1_b5c0_ffee);
    let (mut decoded_ok, mut labels) = (0usize, std::collections::BTreeSet::new());
    for _ in 0..ITERATIONS {
        let mut buf = seeds[rng.below(seeds.len())].clone();
        mutate(&mut rng, &mut buf);
        walk_views(&buf);
        match wire::decode(&buf) {
            Ok(decoded) => {
                decoded_ok += 1;
                labels.extend(decoded.issues.iter().map(|e| e.as_str()));
                let again =
                    wire::build_messages(decoded.version, decoded.sync_id, 65535, &decoded.conns)
                        .expect("decoded entries re-emit");
                let back: Vec<Connection> = again
                    .iter()
                    .flat_map(|m| wire::decode(m).expect("re-emitted message decodes").conns)
                    .collect();
                assert_eq!(back, decoded.conns, "input {buf:02x?}");
            }
            Err(e) => {
                labels.insert(e.as_str());
            }
        }
    }
    // The run explores both outcomes and many distinct faults, or it proves little.
    assert!(decoded_ok > ITERATIONS / 10, "only {decoded_ok} decoded");
    assert!(labels.len() >= 10, "faults seen: {labels:?}");
}
