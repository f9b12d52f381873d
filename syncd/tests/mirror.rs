//! The mirror table, driven with a fake clock and the kernel's captured messages.

mod common;

use std::time::{Duration, Instant};

use common::{fixture, pcap_udp_payloads};
use syncd::wire::{self, ProtocolVersion};
use syncd::{Addrs, Applied, ConnFlags, ConnKey, Connection, Mirror, Protocol};

fn conn(cport: u16, dest: &str, state: u16, timeout: u32) -> Connection {
    Connection {
        protocol: Protocol::TCP,
        addrs: Addrs::new(
            "192.0.2.2".parse().unwrap(),
            "192.0.2.100".parse().unwrap(),
            dest.parse().unwrap(),
        )
        .unwrap(),
        cport,
        vport: 80,
        dport: 8080,
        fwmark: 0,
        flags: ConnFlags::default(),
        state,
        timeout,
        seq: None,
        pe_data: None,
        pe_name: None,
    }
}

const S: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn insert_update_replace_and_stale() {
    let t0 = Instant::now();
    let mut m = Mirror::new();
    assert_eq!(
        m.apply(conn(1, "198.51.100.2", 1, 900), t0),
        Applied::Inserted
    );
    assert_eq!(
        m.apply(conn(1, "198.51.100.2", 5, 120), t0 + S(10)),
        Applied::Updated
    );
    let key = ConnKey::of(&conn(1, "198.51.100.2", 0, 0));
    assert_eq!(m.get(&key).unwrap().state, 5);
    assert_eq!(m.remaining(&key, t0 + S(10)), Some(S(120)));

    // An INACTIVE entry for the same client tuple with another destination is the late
    // expiry notice of a replaced connection: ignored.
    let mut stale = conn(1, "198.51.100.3", 6, 10);
    stale.flags = ConnFlags(ConnFlags::INACTIVE);
    assert_eq!(m.apply(stale, t0 + S(11)), Applied::IgnoredStale);
    // An active one replaces it.
    let replaced = m.apply(conn(1, "198.51.100.3", 1, 900), t0 + S(12));
    assert!(matches!(replaced, Applied::Replaced { previous } if previous.state == 5));
    assert_eq!(m.len(), 1);
    assert_eq!(m.get(&key).unwrap().dport, 8080);
    assert_eq!(
        m.get(&key).unwrap().addrs.dest().to_string(),
        "198.51.100.3"
    );
}

#[test]
fn updates_keep_the_flags_a_backup_keeps() {
    let t0 = Instant::now();
    let mut m = Mirror::new();
    let mut first = conn(1, "198.51.100.2", 1, 900);
    first.flags = ConnFlags(ConnFlags::NOOUTPUT | 3);
    m.apply(first, t0);
    let mut update = conn(1, "198.51.100.2", 4, 120);
    update.flags = ConnFlags(ConnFlags::INACTIVE);
    m.apply(update, t0);
    let key = ConnKey::of(&conn(1, "198.51.100.2", 0, 0));
    assert_eq!(
        m.get(&key).unwrap().flags,
        ConnFlags(ConnFlags::NOOUTPUT | ConnFlags::INACTIVE | 3)
    );
}

#[test]
fn templates_and_connections_are_separate_keys() {
    let t0 = Instant::now();
    let mut m = Mirror::new();
    let mut template = conn(0, "198.51.100.2", 1, 300);
    template.flags = ConnFlags(ConnFlags::TEMPLATE);
    let plain = conn(0, "198.51.100.2", 1, 900);
    assert_eq!(m.apply(template, t0), Applied::Inserted);
    assert_eq!(m.apply(plain, t0), Applied::Inserted);
    assert_eq!(m.len(), 2);
}

#[test]
fn expiry_follows_timeouts_and_v0_defaults() {
    let t0 = Instant::now();
    let mut m = Mirror::new();
    m.apply(conn(1, "198.51.100.2", 1, 900), t0);
    m.apply(conn(2, "198.51.100.2", 5, 120), t0);
    // Version 0: no timeout on the wire, CLOSE_WAIT's default (60 s) applies.
    m.apply(conn(3, "198.51.100.2", 7, 0), t0);
    assert_eq!(m.next_expiry(), Some(t0 + S(60)));
    assert!(m.expire(t0 + S(59)).is_empty());
    let gone = m.expire(t0 + S(60));
    assert_eq!(gone.iter().map(|c| c.cport).collect::<Vec<_>>(), vec![3]);
    assert_eq!(m.next_expiry(), Some(t0 + S(120)));
    // A refresh moves the deadline.
    m.apply(conn(2, "198.51.100.2", 5, 120), t0 + S(100));
    assert_eq!(m.expire(t0 + S(200)).len(), 0);
    assert_eq!(m.expire(t0 + S(220)).len(), 1);
    assert_eq!(m.len(), 1);
    assert_eq!(m.expire(t0 + S(900)).len(), 1);
    assert!(m.is_empty());
    assert_eq!(m.next_expiry(), None);
}

#[test]
fn resync_carries_remaining_time_and_round_trips() {
    let t0 = Instant::now();
    let mut m = Mirror::new();
    for payload in pcap_udp_payloads(&fixture("kernel-6.1/v1.pcap")) {
        for c in wire::decode(&payload).unwrap().conns {
            m.apply(c, t0);
        }
    }
    // The capture's v1 connection table had 10 entries for its clients (one template).
    assert_eq!(m.len(), 10);
    let now = t0 + Duration::from_millis(30_500);
    let snapshot = m.snapshot(now);
    assert!(snapshot[0].is_template());
    for c in &snapshot {
        let left = m.remaining(&ConnKey::of(c), now).unwrap();
        assert_eq!(
            u64::from(c.timeout),
            left.as_secs() + 1,
            "rounded up: {c:?}"
        );
    }
    let (messages, skipped) = m.resync_messages(now, ProtocolVersion::V1, 5, 200).unwrap();
    assert_eq!(skipped, 0);
    assert!(messages.len() > 1 && messages.iter().all(|msg| msg.len() <= 200));
    let mut replica = Mirror::new();
    for msg in &messages {
        for c in wire::decode(msg).unwrap().conns {
            replica.apply(c, now);
        }
    }
    assert_eq!(replica.len(), m.len());
    for c in m.iter() {
        let key = ConnKey::of(c);
        let r = replica.get(&key).unwrap();
        assert_eq!(
            (r.addrs, r.dport, r.state, r.flags),
            (c.addrs, c.dport, c.state, c.flags)
        );
        assert_eq!(
            replica.remaining(&key, now),
            m.remaining(&key, now).map(|d| S(d.as_secs() + 1))
        );
    }
    // Version 0 leaves the IPv6 entries out and says how many.
    let (_, skipped) = m
        .resync_messages(now, ProtocolVersion::V0, 5, 1472)
        .unwrap();
    assert_eq!(skipped, 2);
}
