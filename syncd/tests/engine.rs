//! The sans-IO engine driven with a fake clock: forwarding, injection, hello/resync,
//! rate limiting, role changes and drops by cause.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use syncd::engine::{Action, Engine, EngineConfig, Role};
use syncd::wire::{self, ProtocolVersion, hello};
use syncd::{Addrs, ConnFlags, Connection, TimeoutCeilings};

const PEER: &str = "203.0.113.2:8848";

fn config(peers: &[&str]) -> EngineConfig {
    EngineConfig {
        sync_id: 5,
        version: ProtocolVersion::V1,
        max_len: 1472,
        peers: peers.iter().map(|p| p.parse().unwrap()).collect(),
        hello_interval: Duration::from_secs(3),
        resync_interval: Duration::from_secs(5),
        resync_rate: 0,
        group_sources: vec!["203.0.113.0/24".parse().unwrap()],
        max_entries: 1_000_000,
        ceilings: TimeoutCeilings::default(),
        key: None,
    }
}

/// A host on the sync link (inside `group_sources`) whose kernel master sends to the group.
fn neighbour() -> SocketAddr {
    "203.0.113.7:8848".parse().unwrap()
}

fn conn(cport: u16, state: u16, timeout: u32) -> Connection {
    let client = SocketAddr::new(Ipv4Addr::new(192, 0, 2, 2).into(), cport);
    let vip = "192.0.2.100:80".parse().unwrap();
    Connection {
        state,
        timeout,
        ..Connection::tcp(client, vip, "198.51.100.11:8080".parse().unwrap()).unwrap()
    }
}

fn message(sync_id: u8, conns: &[Connection]) -> Vec<u8> {
    let mut messages = wire::build_messages(ProtocolVersion::V1, sync_id, 1472, conns).unwrap();
    assert_eq!(messages.len(), 1);
    messages.remove(0)
}

fn drain(engine: &mut Engine) -> Vec<Action> {
    std::iter::from_fn(|| engine.poll_action()).collect()
}

fn peer() -> SocketAddr {
    PEER.parse().unwrap()
}

#[test]
fn master_forwards_what_the_kernel_sent_to_every_peer() {
    let now = Instant::now();
    let mut engine = Engine::new(config(&[PEER, "198.51.100.9:8848"]), Role::Master, now);
    let sent = message(5, &[conn(40000, 1, 900), conn(40001, 5, 120)]);
    engine.handle_observed(&sent, now);
    let actions = drain(&mut engine);
    assert_eq!(actions.len(), 2);
    for action in &actions {
        let Action::SendPeer { payload, .. } = action else {
            panic!("{action:?}")
        };
        // Re-packed with the same version, sync id and limit: the kernel's bytes again.
        assert_eq!(payload, &sent);
    }
    assert_eq!(engine.mirror().len(), 2);
    let c = engine.counters();
    assert_eq!(
        (c.kernel_messages_observed, c.kernel_entries_observed),
        (1, 2)
    );
    assert_eq!((c.messages_sent, c.entries_sent), (2, 4));
    assert_eq!(
        engine.lag(now + Duration::from_secs(2)),
        Some(Duration::from_secs(2))
    );
}

#[test]
fn backup_injects_accepted_messages_and_drops_another_sync_id() {
    let now = Instant::now();
    let mut engine = Engine::new(config(&[PEER]), Role::Backup, now);
    drain(&mut engine);
    let ours = message(5, &[conn(40000, 1, 900)]);
    engine.handle_unicast(peer(), &ours, now);
    assert_eq!(
        drain(&mut engine),
        vec![Action::Inject {
            payload: ours.clone()
        }]
    );
    engine.handle_unicast(peer(), &message(6, &[conn(40001, 1, 900)]), now);
    assert!(drain(&mut engine).is_empty());
    assert_eq!(engine.counters().drops.get("sync_id"), Some(&1));
    assert_eq!(engine.mirror().len(), 1);
    assert_eq!(engine.counters().messages_injected, 1);
}

#[test]
fn a_backup_with_sync_id_zero_accepts_every_sync_id() {
    let now = Instant::now();
    let mut cfg = config(&[PEER]);
    cfg.sync_id = 0;
    let mut engine = Engine::new(cfg, Role::Backup, now);
    engine.handle_unicast(peer(), &message(9, &[conn(40000, 1, 900)]), now);
    assert_eq!(engine.counters().messages_injected, 1);
}

#[test]
fn malformed_datagrams_are_counted_by_cause() {
    let now = Instant::now();
    let mut engine = Engine::new(config(&[PEER]), Role::Backup, now);
    drain(&mut engine);
    let mut truncated = message(5, &[conn(40000, 1, 900)]);
    truncated.truncate(20);
    engine.handle_unicast(peer(), &truncated, now);
    engine.handle_unicast(peer(), &[1], now);
    let mut bad_hello = hello::Repr::Hello { sync_id: 5 }.to_bytes();
    bad_hello[5] = 9;
    engine.handle_unicast(peer(), &bad_hello, now);
    let drops = &engine.counters().drops;
    assert_eq!(drops.get("size_mismatch"), Some(&1), "{drops:?}");
    assert_eq!(drops.get("header_truncated"), Some(&1), "{drops:?}");
    assert_eq!(drops.get("hello_kind"), Some(&1), "{drops:?}");
    assert!(drain(&mut engine).is_empty());
    assert!(engine.mirror().is_empty());
}

#[test]
fn backup_says_hello_until_a_resync_arrives() {
    let start = Instant::now();
    let mut engine = Engine::new(config(&[PEER]), Role::Backup, start);
    assert_eq!(engine.poll_timeout(), Some(start));
    engine.handle_timeout(start);
    let hello = hello::Repr::Hello { sync_id: 5 }.to_bytes();
    assert_eq!(
        drain(&mut engine),
        vec![Action::SendPeer {
            to: peer(),
            payload: hello.clone()
        }]
    );
    let later = start + Duration::from_secs(3);
    assert_eq!(engine.poll_timeout(), Some(later));
    engine.handle_timeout(later);
    assert_eq!(drain(&mut engine).len(), 1);

    let done = hello::Repr::ResyncDone {
        sync_id: 5,
        entries: 0,
    }
    .to_bytes();
    // From a stranger it changes nothing.
    engine.handle_unicast("198.51.100.77:8848".parse().unwrap(), &done, later);
    assert!(engine.awaiting_resync());
    engine.handle_unicast(peer(), &done, later);
    assert!(!engine.awaiting_resync());
    assert_eq!(engine.counters().resyncs_received, 1);
    engine.handle_timeout(later + Duration::from_secs(3));
    assert!(drain(&mut engine).is_empty());
    assert_eq!(engine.poll_timeout(), None);
}

#[test]
fn master_answers_a_hello_with_the_whole_mirror_once_per_interval() {
    let now = Instant::now();
    let mut engine = Engine::new(config(&[PEER]), Role::Master, now);
    engine.handle_observed(&message(5, &[conn(40000, 1, 900)]), now);
    engine.handle_observed(&message(5, &[conn(40001, 1, 900)]), now);
    drain(&mut engine);

    let hello = hello::Repr::Hello { sync_id: 5 }.to_bytes();
    let at = now + Duration::from_secs(100);
    // The backup's source port differs from the one it listens on.
    engine.handle_unicast("203.0.113.2:40000".parse().unwrap(), &hello, at);
    let actions = drain(&mut engine);
    assert_eq!(actions.len(), 3, "{actions:?}");
    let Action::SendPeer { to, payload } = &actions[0] else {
        panic!("{actions:?}")
    };
    assert_eq!(*to, peer());
    let resync = wire::decode(payload).unwrap();
    assert_eq!(resync.conns.len(), 2);
    // Timeouts are what is left, so the backup expires them when we would.
    assert!(resync.conns.iter().all(|c| c.timeout == 800));
    assert_eq!(
        actions[1],
        Action::SendPeer {
            to: peer(),
            payload: hello::Repr::ResyncDone {
                sync_id: 5,
                entries: 2
            }
            .to_bytes()
        }
    );
    assert_eq!(
        actions[2],
        Action::ResyncSent {
            peer: peer(),
            entries: 2
        }
    );

    engine.handle_unicast(peer(), &hello, at + Duration::from_secs(1));
    assert!(drain(&mut engine).is_empty());
    assert_eq!(engine.counters().drops.get("hello_rate_limited"), Some(&1));
    engine.handle_unicast(peer(), &hello, at + Duration::from_secs(5));
    assert_eq!(drain(&mut engine).len(), 3);
    assert_eq!(engine.counters().resyncs_sent, 2);

    // Nobody else gets the table.
    engine.handle_unicast(
        "198.51.100.77:8848".parse().unwrap(),
        &hello,
        at + Duration::from_secs(60),
    );
    assert!(drain(&mut engine).is_empty());
    assert_eq!(engine.counters().drops.get("hello_unknown_peer"), Some(&1));
}

#[test]
fn a_snapshot_is_pushed_to_peers_without_using_up_their_resync() {
    let now = Instant::now();
    let mut engine = Engine::new(config(&[PEER]), Role::Master, now);
    engine.load_snapshot(vec![conn(40000, 1, 900)], now);
    let actions = drain(&mut engine);
    assert!(matches!(
        actions.last(),
        Some(Action::ResyncSent { entries: 1, .. })
    ));
    let hello = hello::Repr::Hello { sync_id: 5 }.to_bytes();
    engine.handle_unicast(peer(), &hello, now + Duration::from_secs(1));
    assert!(matches!(
        drain(&mut engine).last(),
        Some(Action::ResyncSent { entries: 1, .. })
    ));
    assert_eq!(engine.counters().snapshot_entries, 1);
}

#[test]
fn a_master_turned_backup_keeps_its_mirror_and_asks_for_a_resync() {
    let now = Instant::now();
    let mut engine = Engine::new(config(&[PEER]), Role::Master, now);
    engine.handle_observed(&message(5, &[conn(40000, 1, 900)]), now);
    drain(&mut engine);
    engine.set_role(Role::Backup, now);
    assert_eq!(engine.mirror().len(), 1);
    assert!(engine.awaiting_resync());
    // A backup ignores hellos and does not forward what its kernel would send.
    engine.handle_unicast(peer(), &hello::Repr::Hello { sync_id: 5 }.to_bytes(), now);
    engine.handle_observed(&message(5, &[conn(40001, 1, 900)]), now);
    assert!(drain(&mut engine).is_empty());
    assert_eq!(engine.counters().drops.get("hello_not_master"), Some(&1));
}

#[test]
fn group_messages_are_learned_not_injected_and_strangers_are_not_heard() {
    let now = Instant::now();
    let mut engine = Engine::new(config(&[PEER]), Role::Backup, now);
    drain(&mut engine);
    engine.handle_group(neighbour(), &message(5, &[conn(40000, 1, 900)]), now);
    assert!(drain(&mut engine).is_empty());
    assert_eq!(engine.mirror().len(), 1);
    assert_eq!(engine.counters().messages_received, 1);
    let stranger: SocketAddr = "198.51.100.77:8848".parse().unwrap();
    engine.handle_unicast(stranger, &message(5, &[conn(40001, 1, 900)]), now);
    assert!(drain(&mut engine).is_empty());
    assert_eq!(engine.mirror().len(), 1);
    assert_eq!(engine.counters().drops.get("unknown_peer"), Some(&1));
    // A peer's kernel master sends from another port than its syncd: heard by address.
    engine.handle_unicast(
        "203.0.113.2:39000".parse().unwrap(),
        &message(5, &[conn(40002, 1, 900)]),
        now,
    );
    assert_eq!(engine.counters().messages_injected, 1);
}

#[test]
fn entries_expire_on_the_timer() {
    let now = Instant::now();
    let mut engine = Engine::new(config(&[]), Role::Backup, now);
    engine.handle_group(neighbour(), &message(5, &[conn(40000, 5, 120)]), now);
    assert_eq!(engine.poll_timeout(), Some(now + Duration::from_secs(120)));
    engine.handle_timeout(now + Duration::from_secs(120));
    assert!(engine.mirror().is_empty());
    assert_eq!(engine.counters().entries_expired, 1);
}

/// Mutated kernel messages and hellos, and plain noise, through every input: dropped and
/// counted by cause or accepted, never a panic.
#[test]
fn garbage_never_panics_and_every_drop_is_counted() {
    let now = Instant::now();
    let mut rng = common::XorShift(0x5eed_1234_abcd_0001);
    let seeds = [
        message(5, &[conn(40000, 1, 900), conn(40001, 5, 120)]),
        hello::Repr::Hello { sync_id: 5 }.to_bytes(),
        hello::Repr::ResyncDone {
            sync_id: 5,
            entries: 2,
        }
        .to_bytes(),
    ];
    for role in [Role::Master, Role::Backup] {
        let mut engine = Engine::new(config(&[PEER]), role, now);
        for i in 0..3000 {
            let mut datagram = seeds[i % seeds.len()].clone();
            for _ in 0..=rng.below(4) {
                let at = rng.below(datagram.len());
                datagram[at] = rng.next() as u8;
            }
            if rng.below(5) == 0 {
                datagram.truncate(rng.below(datagram.len() + 1));
            }
            match i % 3 {
                0 => engine.handle_unicast(peer(), &datagram, now),
                1 => engine.handle_group(neighbour(), &datagram, now),
                _ => engine.handle_observed(&datagram, now),
            }
            drain(&mut engine);
        }
        let c = engine.counters();
        let accepted = c.messages_received
            + c.kernel_messages_observed
            + c.hellos_received
            + c.resyncs_received;
        let dropped: u64 = c.drops.values().sum();
        assert!(accepted > 0 && dropped > 0, "{c:?}");
        // Each datagram was either accepted or dropped with a cause.
        assert!(accepted + dropped >= 3000, "{c:?}");
    }
}

/// Entries of sync messages among `actions`, and whether a `ResyncDone` was among them.
fn sent_entries(actions: &[Action], cports: &mut Vec<u16>) -> Option<u32> {
    let mut done = None;
    for action in actions {
        if let Action::SendPeer { payload, .. } = action {
            if hello::is_hello(payload) {
                if let Ok(hello::Repr::ResyncDone { entries, .. }) =
                    hello::Packet::new_checked(&payload[..]).and_then(|p| hello::Repr::parse(&p))
                {
                    done = Some(entries);
                }
            } else {
                assert!(payload.len() <= 1472);
                cports.extend(wire::decode(payload).unwrap().conns.iter().map(|c| c.cport));
            }
        }
    }
    done
}

#[test]
fn a_large_resync_is_paced_at_the_configured_rate() {
    const RATE: f64 = 1000.0;
    const ENTRIES: u16 = 3000;
    let t0 = Instant::now();
    let mut config = config(&[PEER]);
    config.resync_rate = RATE as u32;
    let mut engine = Engine::new(config, Role::Master, t0);
    engine.load_snapshot((0..ENTRIES).map(|p| conn(p, 1, 900)).collect(), t0);

    let mut cports = Vec::new();
    let mut now = t0;
    let mut finished = sent_entries(&drain(&mut engine), &mut cports).map(|n| (n, now));
    // The first burst is a tenth of a second's worth, not the table.
    assert_eq!(cports.len(), 100);
    let mut wakes = 0;
    while finished.is_none() {
        now = engine
            .poll_timeout()
            .expect("a resync under way has a timer");
        assert!(now > t0 && now < t0 + Duration::from_secs(10), "{now:?}");
        engine.handle_timeout(now);
        wakes += 1;
        finished = sent_entries(&drain(&mut engine), &mut cports).map(|n| (n, now));
        let allowed = RATE * (now - t0).as_secs_f64();
        // Never ahead of the rate by more than the burst, never behind by more than a batch.
        assert!(
            cports.len() as f64 <= allowed + 100.0 + 1e-6,
            "{} at {allowed}",
            cports.len()
        );
        if finished.is_none() {
            assert!(
                cports.len() as f64 >= allowed - 100.0,
                "{} at {allowed}",
                cports.len()
            );
        }
    }
    let (reported, at) = finished.unwrap();
    assert_eq!(reported, u32::from(ENTRIES));
    let took = (at - t0).as_secs_f64();
    assert!((2.8..=3.1).contains(&took), "took {took} s");
    // Each wake fills about a message rather than sending one entry at a time.
    assert!(wakes < 150, "{wakes} wakes");
    cports.sort_unstable();
    cports.dedup();
    assert_eq!(
        cports.len(),
        usize::from(ENTRIES),
        "every entry exactly once"
    );
    assert_eq!(engine.counters().resyncs_sent, 1);
    assert_eq!(engine.resyncs_in_progress().count(), 0);
}

#[test]
fn a_resync_under_way_stops_when_the_master_becomes_backup() {
    let t0 = Instant::now();
    let mut config = config(&[PEER]);
    config.resync_rate = 1000;
    let mut engine = Engine::new(config, Role::Master, t0);
    engine.load_snapshot((0..3000).map(|p| conn(p, 1, 900)).collect(), t0);
    drain(&mut engine);
    let later = t0 + Duration::from_millis(500);
    engine.handle_timeout(later);
    assert_eq!(engine.resyncs_in_progress().count(), 1);
    drain(&mut engine);
    engine.set_role(Role::Backup, later);
    assert_eq!(engine.resyncs_in_progress().count(), 0);
    engine.handle_timeout(later + Duration::from_secs(10));
    let mut cports = Vec::new();
    assert_eq!(sent_entries(&drain(&mut engine), &mut cports), None);
    assert!(cports.is_empty(), "only hellos after the role change");
    assert_eq!(engine.counters().resyncs_sent, 0);
}

#[test]
fn a_reload_resyncs_new_peers_and_forgets_removed_ones() {
    let t0 = Instant::now();
    let mut master = Engine::new(config(&[]), Role::Master, t0);
    master.handle_observed(&message(5, &[conn(40000, 1, 900), conn(40001, 1, 900)]), t0);
    assert!(drain(&mut master).is_empty(), "no peer yet");

    // A new peer gets the table at once, paced like any resync.
    let mut with_peer = config(&[PEER]);
    with_peer.resync_rate = 1;
    master.reconfigure(with_peer.clone(), t0 + Duration::from_secs(1));
    let mut cports = Vec::new();
    assert_eq!(sent_entries(&drain(&mut master), &mut cports), None);
    assert_eq!(cports, [40000], "one entry: a burst of a 1/s rate");
    assert_eq!(master.resyncs_in_progress().count(), 1);
    // The same peers again change nothing; dropping the peer stops its resync.
    master.reconfigure(with_peer, t0 + Duration::from_secs(1));
    assert!(drain(&mut master).is_empty());
    master.reconfigure(config(&[]), t0 + Duration::from_secs(1));
    assert_eq!(master.resyncs_in_progress().count(), 0);
    master.handle_timeout(t0 + Duration::from_secs(10));
    assert!(drain(&mut master).is_empty());
    assert_eq!(master.config().peers, []);

    // A backup asks a new peer for the table.
    let mut backup = Engine::new(config(&[]), Role::Backup, t0);
    assert!(!backup.awaiting_resync());
    backup.reconfigure(config(&[PEER]), t0);
    assert!(backup.awaiting_resync());
    backup.handle_timeout(t0);
    assert_eq!(
        drain(&mut backup),
        [Action::SendPeer {
            to: peer(),
            payload: hello::Repr::Hello { sync_id: 5 }.to_bytes()
        }]
    );
}

// ---------------------------------------------------------------- trust (issue 15, defect 4)

/// Caught: syncd learned whatever anyone on the link sent to the sync group (only its own
/// datagrams were filtered), and resynced it to its peers' kernels.
#[test]
fn group_messages_from_outside_the_sources_and_peers_are_dropped_and_counted() {
    let now = Instant::now();
    let outside_peer = "198.51.100.9:8848";
    let mut engine = Engine::new(config(&[PEER, outside_peer]), Role::Backup, now);
    let stranger: SocketAddr = "192.0.2.66:8848".parse().unwrap();
    engine.handle_group(stranger, &message(5, &[conn(40000, 1, 900)]), now);
    assert_eq!(engine.mirror().len(), 0);
    assert_eq!(engine.counters().drops.get("group_source"), Some(&1));
    assert_eq!(engine.counters().messages_received, 0);
    // The sync link's hosts are heard, and so is a peer outside group_sources.
    engine.handle_group(neighbour(), &message(5, &[conn(40001, 1, 900)]), now);
    engine.handle_group(
        "198.51.100.9:40000".parse().unwrap(),
        &message(5, &[conn(40002, 1, 900)]),
        now,
    );
    assert_eq!(engine.mirror().len(), 2);
    // With the sources emptied (group_sources = []) only the peers are heard.
    engine.set_group_sources(Vec::new());
    engine.handle_group(neighbour(), &message(5, &[conn(40003, 1, 900)]), now);
    assert_eq!(engine.counters().drops.get("group_source"), Some(&2));
    assert_eq!(engine.mirror().len(), 2);
}

/// Caught: the mirror grew with every new entry anyone sent, without a bound.
#[test]
fn the_mirror_cap_holds_under_a_flood_and_held_entries_keep_updating() {
    let now = Instant::now();
    let mut engine = Engine::new(
        EngineConfig {
            max_entries: 1000,
            ..config(&[])
        },
        Role::Backup,
        now,
    );
    let flood: Vec<Connection> = (0..50_000u32)
        .map(|i| {
            let mut c = conn((i % 60_000) as u16, 1, 900);
            c.addrs = Addrs::V4 {
                client: Ipv4Addr::from(0xc633_6400 + i / 60_000),
                virtual_addr: Ipv4Addr::new(192, 0, 2, 100),
                dest: Ipv4Addr::new(198, 51, 100, 11),
            };
            c
        })
        .collect();
    for message in wire::build_messages(ProtocolVersion::V1, 5, 1472, &flood).unwrap() {
        engine.handle_group(neighbour(), &message, now);
    }
    assert_eq!(engine.mirror().len(), 1000);
    assert_eq!(engine.counters().drops.get("mirror_full"), Some(&49_000));
    // A held connection moves to TIME_WAIT: updated although the mirror is full.
    let later = now + Duration::from_secs(10);
    let mut update = flood[0].clone();
    update.state = 5;
    update.timeout = 120;
    engine.handle_group(neighbour(), &message(5, &[update.clone()]), later);
    let key = syncd::ConnKey::of(&update);
    assert_eq!(engine.mirror().get(&key).map(|c| c.state), Some(5));
    assert_eq!(
        engine.mirror().remaining(&key, later),
        Some(Duration::from_secs(120))
    );
    assert_eq!(engine.counters().drops.get("mirror_full"), Some(&49_000));
    // Room again after an expiry: new entries are taken.
    engine.handle_timeout(later + Duration::from_secs(120));
    assert_eq!(engine.mirror().len(), 999);
    engine.handle_group(neighbour(), &message(5, &[conn(1, 1, 900)]), later);
    assert_eq!(engine.mirror().len(), 1000);
}

/// Caught: a timeout on the wire (up to 2^32 s, 136 years) was kept as sent, in the mirror
/// and in what a backup injected into its kernel.
#[test]
fn an_over_large_timeout_is_clamped_to_the_kernels_longest_for_the_state() {
    let now = Instant::now();
    let mut engine = Engine::new(config(&[PEER]), Role::Backup, now);
    drain(&mut engine);
    let mut template = conn(0, 0, u32::MAX);
    template.flags = ConnFlags(ConnFlags::TEMPLATE);
    let sent = [
        conn(40000, 1, u32::MAX), // ESTABLISHED: 900 s by default
        conn(40001, 5, 3600),     // TIME_WAIT: fixed at 120 s
        conn(40002, 4, 100),      // FIN_WAIT below its 120 s: kept
        template,                 // no persistent service known: 180 s
    ];
    engine.handle_unicast(peer(), &message(5, &sent), now);
    let remaining = |engine: &Engine, c: &Connection| {
        engine
            .mirror()
            .remaining(&syncd::ConnKey::of(c), now)
            .map(|d| d.as_secs())
    };
    assert_eq!(remaining(&engine, &sent[0]), Some(900));
    assert_eq!(remaining(&engine, &sent[1]), Some(120));
    assert_eq!(remaining(&engine, &sent[2]), Some(100));
    assert_eq!(remaining(&engine, &sent[3]), Some(180));
    assert_eq!(engine.counters().timeouts_clamped, 3);
    // The kernel backup gets the clamped entries, not the message as sent.
    let injected: Vec<u32> = drain(&mut engine)
        .into_iter()
        .flat_map(|a| match a {
            Action::Inject { payload } => wire::decode(&payload).unwrap().conns,
            other => panic!("{other:?}"),
        })
        .map(|c| c.timeout)
        .collect();
    assert_eq!(injected, [900, 120, 100, 180]);
    // An operator's longer timeouts (ipvsadm --set, persistence) are the ceilings instead.
    engine.set_ceilings(TimeoutCeilings {
        tcp: 7200,
        template: 3600,
        ..TimeoutCeilings::default()
    });
    engine.handle_unicast(
        peer(),
        &message(5, &[sent[0].clone(), sent[3].clone()]),
        now,
    );
    assert_eq!(remaining(&engine, &sent[0]), Some(7200));
    assert_eq!(remaining(&engine, &sent[3]), Some(3600));
}

/// Caught: the unicast path took any datagram from a peer's address; a key now makes peers
/// prove they hold it.
#[test]
fn unicast_with_a_wrong_key_is_dropped_and_with_the_right_key_accepted() {
    use syncd::auth::Key;
    let now = Instant::now();
    let key = Key::new(b"sixteen byte key".to_vec()).unwrap();
    let wrong = Key::new(b"another long key".to_vec()).unwrap();
    let mut backup = Engine::new(
        EngineConfig {
            key: Some(key.clone()),
            ..config(&[PEER])
        },
        Role::Backup,
        now,
    );
    // Its hello is signed.
    backup.handle_timeout(now);
    let hello = drain(&mut backup);
    let [Action::SendPeer { payload, .. }] = &hello[..] else {
        panic!("{hello:?}")
    };
    assert!(hello::is_hello(key.verify(payload).unwrap()));

    let update = message(5, &[conn(40000, 1, 900)]);
    backup.handle_unicast(peer(), &update, now);
    backup.handle_unicast(peer(), &wrong.sign(update.clone()), now);
    let mut altered = key.sign(update.clone());
    altered[12] ^= 0x80;
    backup.handle_unicast(peer(), &altered, now);
    backup.handle_unicast(
        peer(),
        &wrong.sign(hello::Repr::Hello { sync_id: 5 }.to_bytes()),
        now,
    );
    assert!(drain(&mut backup).is_empty());
    assert_eq!(backup.mirror().len(), 0);
    assert_eq!(backup.counters().drops.get("auth_bad_tag"), Some(&4));

    backup.handle_unicast(peer(), &key.sign(update.clone()), now);
    // The kernel gets the message without the tag.
    assert_eq!(drain(&mut backup), [Action::Inject { payload: update }]);
    assert_eq!(backup.mirror().len(), 1);
}

/// Caught (issue 15, defect 13): a backup whose peer is at a port where no syncd listens
/// said hello forever without a word; now the unanswered hellos are reported after three,
/// then at most once a minute, and no more once a resync arrives.
#[test]
fn unanswered_hellos_are_reported_rate_limited() {
    let t0 = Instant::now();
    let mut engine = Engine::new(config(&[PEER]), Role::Backup, t0);
    let mut reports = Vec::new();
    // Three minutes of hellos every 3 s.
    for tick in 0..=60u64 {
        let now = t0 + Duration::from_secs(3 * tick);
        engine.handle_timeout(now);
        for action in drain(&mut engine) {
            if let Action::HellosUnanswered { peers, hellos } = action {
                assert_eq!(peers, [peer()]);
                reports.push((3 * tick, hellos));
            }
        }
    }
    assert_eq!(reports, [(9, 3), (69, 23), (129, 43)]);
    assert_eq!(engine.counters().hellos_sent, 61);
    // A resync ends the hellos, and the count starts again from the next role change.
    let done = hello::Repr::ResyncDone {
        sync_id: 5,
        entries: 0,
    };
    engine.handle_unicast(peer(), &done.to_bytes(), t0 + Duration::from_secs(181));
    engine.set_role(Role::Master, t0 + Duration::from_secs(182));
    engine.set_role(Role::Backup, t0 + Duration::from_secs(183));
    for tick in 0..3u64 {
        engine.handle_timeout(t0 + Duration::from_secs(183 + 3 * tick));
    }
    assert!(
        !drain(&mut engine)
            .iter()
            .any(|a| matches!(a, Action::HellosUnanswered { .. }))
    );
}

/// `actions` are `payload` sent to `peers` peers, and nothing else.
fn sent_to_each_peer(actions: &[Action], payload: &[u8], peers: usize) {
    assert_eq!(actions.len(), peers, "{actions:?}");
    assert!(
        actions
            .iter()
            .all(|a| matches!(a, Action::SendPeer { payload: p, .. } if p == payload)),
        "{actions:?}"
    );
}

/// The role both (a full mesh of active-active directors): one engine forwards what its
/// kernel master sent to every peer, hands what a peer sent to its kernel backup, asks its
/// peers for their tables at start and answers a peer's hello with its own; a master alone
/// would inject nothing and ask for nothing, a backup alone forward nothing and answer no
/// hello.
#[test]
fn the_role_both_is_master_and_backup_at_once() {
    let other = "198.51.100.9:8848";
    let now = Instant::now();
    let mut engine = Engine::new(config(&[PEER, other]), Role::Both, now);
    assert!(engine.awaiting_resync(), "asks the peers for their tables");
    engine.handle_timeout(now);
    let hello = hello::Repr::Hello { sync_id: 5 }.to_bytes();
    sent_to_each_peer(&drain(&mut engine), &hello, 2);

    let ours = message(5, &[conn(40000, 1, 900)]);
    engine.handle_observed(&ours, now);
    sent_to_each_peer(&drain(&mut engine), &ours, 2);

    let theirs = message(5, &[conn(40001, 1, 900)]);
    engine.handle_unicast(peer(), &theirs, now);
    assert_eq!(
        drain(&mut engine),
        vec![Action::Inject { payload: theirs }],
        "a peer's entries reach the local kernel backup, and go nowhere else"
    );
    assert_eq!(engine.mirror().len(), 2);

    let at = now + Duration::from_secs(10);
    engine.handle_unicast(peer(), &hello, at);
    let answer = drain(&mut engine);
    assert!(
        matches!(answer.last(), Some(Action::ResyncSent { entries: 2, .. })),
        "a peer's hello gets the whole mirror: {answer:?}"
    );
    assert_eq!(engine.counters().drops.get("hello_not_master"), None);
    assert_eq!(Role::Both.as_str(), "both");
}
