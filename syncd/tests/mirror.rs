//! The mirror table, driven with a fake clock and the kernel's captured messages.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{fixture, pcap_udp_payloads};
use syncd::wire::{self, ProtocolVersion};
use syncd::{Addrs, Applied, ConnFlags, ConnKey, Connection, Mirror};

fn conn(cport: u16, dest: &str, state: u16, timeout: u32) -> Connection {
    let client = SocketAddr::new("192.0.2.2".parse().unwrap(), cport);
    let dest = SocketAddr::new(dest.parse().unwrap(), 8080);
    Connection {
        state,
        timeout,
        ..Connection::tcp(client, "192.0.2.100:80".parse().unwrap(), dest).unwrap()
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
        let key = ConnKey::of(&c);
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

/// An entry of the rarer kinds the mirror keeps whole: IPv6, sequence data, a persistence
/// engine's template.
fn rare(kind: u32, cport: u16) -> Connection {
    let mut c = conn(cport, "198.51.100.2", 1, 900);
    match kind {
        0 => {
            c.addrs = Addrs::new(
                "2001:db8::2".parse().unwrap(),
                "2001:db8::100".parse().unwrap(),
                "2001:db8::11".parse().unwrap(),
            )
            .unwrap();
        }
        1 => c.seq = Some(syncd::SeqData::default()),
        _ => {
            c.flags = ConnFlags(ConnFlags::TEMPLATE);
            c.pe_name = Some(b"sip".to_vec());
            c.pe_data = Some(format!("call-{cport}").into_bytes());
        }
    }
    c
}

#[test]
fn rare_entries_keep_everything_and_expire_with_the_rest() {
    let t0 = Instant::now();
    let mut m = Mirror::new();
    let entries: Vec<Connection> = (0..3).map(|kind| rare(kind, 7)).collect();
    for c in &entries {
        assert_eq!(m.apply(c.clone(), t0), Applied::Inserted);
    }
    m.apply(conn(8, "198.51.100.2", 1, 60), t0);
    assert_eq!(m.len(), 4);
    for c in &entries {
        assert_eq!(m.get(&ConnKey::of(c)).as_ref(), Some(c));
    }
    // Two SIP templates on the same tuple differ by their Call-ID.
    let mut other_call = rare(2, 7);
    other_call.pe_data = Some(b"call-other".to_vec());
    assert_eq!(m.apply(other_call, t0), Applied::Inserted);
    assert_eq!(m.len(), 5);

    let snapshot = m.snapshot(t0 + S(1));
    assert_eq!(snapshot.len(), 5);
    assert!(snapshot[..2].iter().all(Connection::is_template));
    assert_eq!(m.expire(t0 + S(60)).len(), 1);
    assert_eq!(m.expire(t0 + S(900)).len(), 4);
    assert!(m.is_empty());
}

#[test]
fn an_entry_that_gains_or_loses_sequence_data_stays_one_entry() {
    let t0 = Instant::now();
    let mut m = Mirror::new();
    let plain = conn(1, "198.51.100.2", 1, 900);
    let key = ConnKey::of(&plain);
    m.apply(plain.clone(), t0);
    let mut with_seq = plain.clone();
    with_seq.seq = Some(syncd::SeqData {
        in_seq: syncd::Seq {
            init_seq: 1,
            delta: 2,
            previous_delta: 3,
        },
        ..Default::default()
    });
    with_seq.flags = ConnFlags(ConnFlags::IN_SEQ);
    assert_eq!(m.apply(with_seq.clone(), t0 + S(1)), Applied::Updated);
    assert_eq!(m.len(), 1);
    assert_eq!(m.get(&key).unwrap().seq, with_seq.seq);
    assert_eq!(m.apply(plain, t0 + S(2)), Applied::Updated);
    assert_eq!(m.len(), 1);
    assert_eq!(m.get(&key).unwrap().seq, None);
    assert_eq!(m.remaining(&key, t0 + S(2)), Some(S(900)));
    assert_eq!(m.expire(t0 + S(901)).len(), 0);
    assert_eq!(m.expire(t0 + S(902)).len(), 1);
}

/// What the mirror must behave like, written the plain way: one map, deadlines as instants.
#[derive(Default)]
struct Model {
    entries: std::collections::HashMap<ConnKey, (Connection, Instant)>,
}

impl Model {
    fn apply(&mut self, c: Connection, now: Instant) -> Applied {
        let key = ConnKey::of(&c);
        let deadline = now + syncd::mirror::lifetime(&c);
        let Some((old, _)) = self.entries.get(&key) else {
            self.entries.insert(key, (c, deadline));
            return Applied::Inserted;
        };
        if !c.is_template() && (old.addrs.dest() != c.addrs.dest() || old.dport != c.dport) {
            if c.flags.is_inactive() {
                return Applied::IgnoredStale;
            }
            let previous = self.entries.insert(key, (c, deadline)).unwrap().0;
            return Applied::Replaced { previous };
        }
        let mut c = c;
        let keep = !(ConnFlags::INACTIVE | ConnFlags::SEQ_MASK);
        c.flags = ConnFlags((c.flags.0 & !keep) | (old.flags.0 & keep));
        self.entries.insert(key, (c, deadline));
        Applied::Updated
    }

    fn expire(&mut self, now: Instant) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, (_, deadline)| *deadline > now);
        before - self.entries.len()
    }
}

/// Thousands of random inserts, refreshes, moves, stale notices, removals and expiries over
/// a small key space (so slots are freed and reused, and outdated expiry pairs pile up and
/// get swept), checked step by step against [`Model`]. Time moves in whole seconds, so the
/// mirror's rounding of deadlines cannot hide a difference.
#[test]
fn behaves_like_a_plain_map_under_random_churn() {
    let t0 = Instant::now();
    let mut m = Mirror::new();
    let mut model = Model::default();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut now = t0;
    for step in 0..20_000 {
        let cport = next(300) as u16;
        let mut c = match next(10) {
            0 => rare(next(3) as u32, cport),
            _ => conn(cport, "198.51.100.2", 1, 0),
        };
        if next(4) == 0 {
            c.addrs = match c.addrs {
                Addrs::V4 {
                    client,
                    virtual_addr,
                    ..
                } => Addrs::V4 {
                    client,
                    virtual_addr,
                    dest: "198.51.100.3".parse().unwrap(),
                },
                other => other,
            };
        }
        c.state = next(8) as u16;
        c.timeout = [0, 1, 5, 30, 120][next(5) as usize];
        if next(5) == 0 {
            c.flags = ConnFlags(c.flags.0 | ConnFlags::INACTIVE);
        }
        match next(20) {
            0 => {
                now += S(next(40));
                let gone = m.expire(now).len();
                assert_eq!(gone, model.expire(now), "step {step}");
            }
            1 => {
                let key = ConnKey::of(&c);
                let removed = m.remove(&key).map(|(c, _)| c);
                assert_eq!(removed, model.entries.remove(&key).map(|e| e.0));
            }
            _ => assert_eq!(m.apply(c.clone(), now), model.apply(c, now), "step {step}"),
        }
        assert_eq!(m.len(), model.entries.len(), "step {step}");
        let earliest = model.entries.values().map(|e| e.1).min();
        assert_eq!(m.next_expiry(), earliest, "step {step}");
    }
    for (key, (c, deadline)) in &model.entries {
        assert_eq!(m.get(key).as_ref(), Some(c));
        assert_eq!(m.remaining(key, now), Some(*deadline - now));
    }
    let mut seen = 0;
    for c in m.iter() {
        assert!(model.entries.contains_key(&ConnKey::of(&c)));
        seen += 1;
    }
    assert_eq!(seen, model.entries.len());
}
