//! The sans-IO session: two of ours wired back to back in virtual time, and FRR's
//! packets (see tests/wire.rs for how they were captured) replayed into one.

use std::time::{Duration, Instant};

use bfd::auth::{AuthConfig, AuthError, AuthKind};
use bfd::session::{Admin, Discard, Event, SessionConfig};
use bfd::wire::Repr;
use bfd::{Diag, Session, State};

const MS: Duration = Duration::from_millis(1);

fn cfg(interval_ms: u32, mult: u8) -> SessionConfig {
    SessionConfig {
        desired_min_tx: interval_ms * MS,
        required_min_rx: interval_ms * MS,
        detect_mult: mult,
        passive: false,
        auth: None,
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn drain(s: &mut Session) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| s.poll_transmit()).collect()
}

fn states(s: &mut Session) -> Vec<(State, State, Diag)> {
    std::iter::from_fn(|| s.poll_event())
        .map(|Event::StateChange { from, to, diag }| (from, to, diag))
        .collect()
}

/// An AdminDown session discards what it receives; nothing else may be refused.
fn accept(result: Result<(), Discard>) {
    assert!(
        matches!(result, Ok(()) | Err(Discard::AdminDown)),
        "{result:?}"
    );
}

/// Two sessions on a lossless zero-delay link, stepped timer by timer. `cut` stops
/// delivery from `a` (its process died) from that time on.
struct Link {
    a: Session,
    b: Session,
    now: Instant,
    cut_a: bool,
    sent_by_a: Vec<(Instant, Repr)>,
}

impl Link {
    fn new(ca: SessionConfig, cb: SessionConfig) -> Link {
        let now = Instant::now();
        Link {
            a: Session::new(ca, 1, now).unwrap(),
            b: Session::new(cb, 2, now).unwrap(),
            now,
            cut_a: false,
            sent_by_a: Vec::new(),
        }
    }

    fn deliver(&mut self) {
        loop {
            let from_a = drain(&mut self.a);
            let from_b = drain(&mut self.b);
            if from_a.is_empty() && from_b.is_empty() {
                return;
            }
            for p in from_a {
                self.sent_by_a.push((self.now, Repr::decode(&p).unwrap()));
                if !self.cut_a {
                    accept(self.b.handle_packet(&p, self.now));
                }
            }
            for p in from_b {
                if !self.cut_a {
                    accept(self.a.handle_packet(&p, self.now));
                }
            }
        }
    }

    /// Runs until `until`, firing each session's timer when due.
    fn run(&mut self, until: Instant) {
        loop {
            self.deliver();
            // A dead `a` has no timers.
            let a_next = if self.cut_a {
                None
            } else {
                self.a.poll_timeout()
            };
            let next = [a_next, self.b.poll_timeout()].into_iter().flatten().min();
            match next {
                Some(at) if at <= until => {
                    self.now = self.now.max(at);
                    if !self.cut_a {
                        self.a.handle_timeout(self.now);
                    }
                    self.b.handle_timeout(self.now);
                }
                _ => break,
            }
        }
        self.now = until;
    }
}

/// Proves the three-way handshake (Down -> Init -> Up), the 1 s rate before Up and
/// the poll sequence that then switches both ends to the configured 10 ms.
#[test]
fn two_sessions_come_up_and_negotiate_fast_timers() {
    let mut link = Link::new(cfg(10, 3), cfg(10, 3));
    let start = link.now;
    link.run(start);
    assert_eq!(link.a.state(), State::Up);
    assert_eq!(link.b.state(), State::Up);
    assert_eq!(
        states(&mut link.b),
        vec![
            (State::Down, State::Init, Diag::None),
            (State::Init, State::Up, Diag::None)
        ]
    );
    let first = &link.sent_by_a[0].1;
    assert_eq!(
        (first.state, first.desired_min_tx),
        (State::Down, 1_000_000)
    );
    assert_eq!(first.required_min_rx, 10_000);
    link.run(start + 100 * MS);
    assert!(!link.a.polling() && !link.b.polling());
    assert_eq!(link.a.tx_interval(), 10 * MS);
    assert_eq!(link.a.detection_time(), 30 * MS);
    // Once Up, a sends every 7.5-10 ms (jitter), never slower.
    let up: Vec<_> = link
        .sent_by_a
        .iter()
        .filter(|(at, r)| *at > start + 20 * MS && !r.final_)
        .map(|(at, _)| *at)
        .collect();
    assert!(up.len() >= 8, "{} packets", up.len());
    for gap in up.windows(2).map(|w| w[1] - w[0]) {
        assert!(
            gap >= 7500 * Duration::from_micros(1) && gap <= 10 * MS,
            "{gap:?}"
        );
    }
}

/// Proves detection: after the peer goes silent the session goes Down with diag 1
/// no later than the detection time after the last packet, and drops back to 1 s.
#[test]
fn silence_is_detected_within_the_detection_time() {
    let mut link = Link::new(cfg(10, 3), cfg(10, 3));
    let start = link.now;
    link.run(start + 200 * MS);
    let _ = states(&mut link.b);
    link.cut_a = true;
    let last = link.sent_by_a.last().unwrap().0;
    link.run(start + 400 * MS);
    assert_eq!(link.b.state(), State::Down);
    assert_eq!(link.b.local_diag(), Diag::DetectionTimeExpired);
    assert_eq!(link.b.remote_discriminator(), 0);
    assert_eq!(
        states(&mut link.b),
        vec![(State::Up, State::Down, Diag::DetectionTimeExpired)]
    );
    assert_eq!(link.b.tx_interval(), Duration::from_secs(1));
    // The Down came exactly at last packet + 3 x 10 ms.
    assert!(link.b.poll_timeout().unwrap() > last + 30 * MS);
    let mut b2 = Link::new(cfg(10, 3), cfg(10, 3));
    b2.run(b2.now + 200 * MS);
    b2.cut_a = true;
    let last = b2.sent_by_a.last().unwrap().0;
    b2.run(last + 30 * MS - Duration::from_micros(1));
    assert_eq!(b2.b.state(), State::Up);
    b2.run(last + 30 * MS);
    assert_eq!(b2.b.state(), State::Down);
}

/// Proves section 6.8.3: a slower TX is announced with Poll and used only after the
/// Final; the peer's detection time follows the Desired Min TX it receives.
#[test]
fn timer_change_runs_a_poll_sequence() {
    let mut link = Link::new(cfg(10, 3), cfg(10, 3));
    let start = link.now;
    link.run(start + 100 * MS);
    link.a.set_timers(50 * MS, 10 * MS, link.now);
    assert!(link.a.polling());
    // Until the Final arrives the old 10 ms stays in use.
    assert_eq!(link.a.tx_interval(), 10 * MS);
    let polls = drain(&mut link.a);
    let poll = Repr::decode(&polls[0]).unwrap();
    assert!(poll.poll && !poll.final_ && poll.desired_min_tx == 50_000);
    link.b.handle_packet(&polls[0], link.now).unwrap();
    let answer = drain(&mut link.b);
    let fin = Repr::decode(&answer[0]).unwrap();
    assert!(fin.final_ && !fin.poll);
    assert_eq!(link.b.detection_time(), 150 * MS);
    link.a.handle_packet(&answer[0], link.now).unwrap();
    assert!(!link.a.polling());
    assert_eq!(link.a.tx_interval(), 50 * MS);
    link.run(link.now + 500 * MS);
    assert_eq!((link.a.state(), link.b.state()), (State::Up, State::Up));
}

/// Proves the jitter bounds of section 6.8.7, including the 90 % cap at multiplier 1,
/// and that the same seed gives the same schedule.
#[test]
fn jitter_stays_within_the_rfc_bounds_and_is_seeded() {
    for (mult, top) in [(3u8, 100u32), (1, 90)] {
        let mut link = Link::new(cfg(100, mult), cfg(100, mult));
        let start = link.now;
        link.run(start + 5 * Duration::from_secs(1));
        let times: Vec<_> = link
            .sent_by_a
            .iter()
            .filter(|(at, r)| *at > start + 50 * MS && !r.final_)
            .map(|(at, _)| *at)
            .collect();
        let gaps: Vec<_> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.len() > 40);
        for gap in &gaps {
            assert!(*gap >= 75 * MS && *gap <= top * MS, "mult {mult}: {gap:?}");
        }
        assert!(gaps.iter().min() != gaps.iter().max(), "no jitter at all");
        let mut again = Link::new(cfg(100, mult), cfg(100, mult));
        again.now = start;
        again.a = Session::new(cfg(100, mult), 1, start).unwrap();
        again.b = Session::new(cfg(100, mult), 2, start).unwrap();
        again.run(start + 5 * Duration::from_secs(1));
        let replay: Vec<_> = again.sent_by_a.iter().map(|(at, _)| *at).collect();
        let first: Vec<_> = link.sent_by_a.iter().map(|(at, _)| *at).collect();
        assert_eq!(replay, first);
    }
}

/// Proves section 6.8.16 and the AdminDown row of 6.8.6: the peer goes Down with
/// "neighbor signaled session down", and comes back once we are enabled again.
#[test]
fn admin_down_takes_the_peer_down_and_back() {
    let mut link = Link::new(cfg(10, 3), cfg(10, 3));
    let start = link.now;
    link.run(start + 100 * MS);
    let _ = states(&mut link.b);
    link.a.admin(Admin::Down, link.now);
    link.run(link.now + 5 * MS);
    assert_eq!(link.a.state(), State::AdminDown);
    assert_eq!(link.a.local_diag(), Diag::AdminDown);
    assert_eq!(
        states(&mut link.b),
        vec![(State::Up, State::Down, Diag::NeighborDown)]
    );
    link.a.admin(Admin::Up, link.now);
    link.run(link.now + 3 * Duration::from_secs(1));
    assert_eq!((link.a.state(), link.b.state()), (State::Up, State::Up));
}

/// Proves the passive role: nothing is sent until the peer has spoken.
#[test]
fn passive_session_waits_for_the_peer() {
    let now = Instant::now();
    let mut passive = Session::new(
        SessionConfig {
            passive: true,
            ..cfg(10, 3)
        },
        3,
        now,
    )
    .unwrap();
    passive.handle_timeout(now + Duration::from_secs(5));
    assert!(passive.poll_transmit().is_none());
    assert_eq!(passive.poll_timeout(), None);
    let mut active = Session::new(cfg(10, 3), 4, now).unwrap();
    active.handle_timeout(now);
    let hello = drain(&mut active);
    passive.handle_packet(&hello[0], now).unwrap();
    assert_eq!(passive.state(), State::Init);
    assert_eq!(drain(&mut passive).len(), 1);
}

/// Proves the session follows FRR's own handshake: FRR's Down brings us to Init
/// with FRR's discriminator echoed, FRR's Init brings us Up, FRR's Poll gets a Final.
#[test]
fn replays_frr_handshake() {
    let now = Instant::now();
    let mut s = Session::new(cfg(100, 3), 5, now).unwrap();
    s.handle_packet(
        &hex("20400318a9782e5800000000000f4240000f42400000c350"),
        now,
    )
    .unwrap();
    assert_eq!(s.state(), State::Init);
    s.handle_timeout(now);
    let sent = Repr::decode(&drain(&mut s)[0]).unwrap();
    assert_eq!(
        (sent.state, sent.your_discriminator),
        (State::Init, 0xa978_2e58)
    );
    // FRR's frames carry its own discriminator as Your Discriminator; rewrite it to ours.
    let mut init = hex("20800318a9782e58a9782e58000f4240000f42400000c350");
    init[8..12].copy_from_slice(&s.local_discriminator().to_be_bytes());
    s.handle_packet(&init, now).unwrap();
    assert_eq!(s.state(), State::Up);
    let mut poll = hex("20e00318a9782e58a9782e58000186a0000186a00000c350");
    poll[8..12].copy_from_slice(&s.local_discriminator().to_be_bytes());
    s.handle_packet(&poll, now).unwrap();
    s.handle_timeout(now);
    let sent: Vec<_> = drain(&mut s)
        .iter()
        .map(|p| Repr::decode(p).unwrap())
        .collect();
    assert!(sent.iter().any(|r| r.final_ && r.state == State::Up));
    assert_eq!(s.detection_time(), 300 * MS);
    // Its packet with a discriminator that is not ours is refused.
    assert_eq!(
        s.handle_packet(
            &hex("20c00318a9782e58a9782e58000186a0000186a00000c350"),
            now
        ),
        Err(Discard::YourDiscriminator(0xa978_2e58))
    );
    assert_eq!(
        s.handle_packet(
            &hex("20c00318a9782e5800000000000186a0000186a00000c350"),
            now
        )
        .unwrap_err()
        .as_str(),
        "zero_your_discriminator"
    );
}

/// Proves a zero Required Min RX from the peer stops our periodic packets (6.8.7).
#[test]
fn peer_asking_for_silence_is_obeyed() {
    let now = Instant::now();
    let mut s = Session::new(cfg(10, 3), 6, now).unwrap();
    let mut quiet = hex("20400318a9782e5800000000000f4240000000000000c350");
    s.handle_packet(&quiet, now).unwrap();
    s.handle_timeout(now);
    assert_eq!(drain(&mut s).len(), 1);
    // Only the detection timer is left: 3 x the peer's 1 s.
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(3)));
    s.handle_timeout(now + Duration::from_secs(2));
    assert!(drain(&mut s).is_empty());
    quiet[16..20].copy_from_slice(&10_000u32.to_be_bytes());
    quiet[1] = 0x80;
    quiet[8..12].copy_from_slice(&s.local_discriminator().to_be_bytes());
    let later = now + Duration::from_secs(2);
    s.handle_packet(&quiet, later).unwrap();
    assert!(s.poll_timeout().unwrap() < later + Duration::from_secs(1));
}

fn auth(kind: AuthKind, key: &[u8]) -> Option<AuthConfig> {
    Some(AuthConfig::new(kind, 1, key).unwrap())
}

/// Proves authentication both ways for every type: same key comes up, a different
/// key, key id or type is refused with its own cause.
#[test]
fn authenticated_sessions_come_up_only_with_the_same_key() {
    for kind in [
        AuthKind::SimplePassword,
        AuthKind::KeyedMd5,
        AuthKind::MeticulousMd5,
        AuthKind::KeyedSha1,
        AuthKind::MeticulousSha1,
    ] {
        let with = |a| SessionConfig {
            auth: a,
            ..cfg(10, 3)
        };
        let mut link = Link::new(with(auth(kind, b"k1")), with(auth(kind, b"k1")));
        link.run(link.now + 100 * MS);
        assert_eq!(
            (link.a.state(), link.b.state()),
            (State::Up, State::Up),
            "{kind:?}"
        );

        let now = Instant::now();
        let mut a = Session::new(with(auth(kind, b"k1")), 1, now).unwrap();
        a.handle_timeout(now);
        let hello = drain(&mut a).remove(0);
        let refused =
            |c: SessionConfig| Session::new(c, 2, now).unwrap().handle_packet(&hello, now);
        assert_eq!(
            refused(with(auth(kind, b"k2"))),
            Err(AuthError::Digest.into())
        );
        let other_id = AuthConfig::new(kind, 2, b"k1").ok();
        assert_eq!(
            refused(with(other_id)),
            Err(AuthError::KeyId { got: 1, want: 2 }.into())
        );
        assert_eq!(refused(cfg(10, 3)), Err(AuthError::Unexpected.into()));
        let other_kind = if kind == AuthKind::KeyedSha1 {
            AuthKind::KeyedMd5
        } else {
            AuthKind::KeyedSha1
        };
        assert!(matches!(
            refused(with(auth(other_kind, b"k1"))),
            Err(Discard::Auth(AuthError::TypeMismatch { .. }))
        ));
        let mut plain = Session::new(cfg(10, 3), 7, now).unwrap();
        plain.handle_timeout(now);
        let unsigned = drain(&mut plain).remove(0);
        let mut signed = Session::new(with(auth(kind, b"k1")), 8, now).unwrap();
        assert_eq!(
            signed.handle_packet(&unsigned, now),
            Err(AuthError::Missing.into())
        );
    }
}

/// Proves the sequence windows of section 6.7.3: a replayed packet is accepted by
/// keyed (window starts at the last number) and refused by meticulous (starts one
/// past it); a jump past 3 x Detect Mult is refused by both; after two detection
/// times of silence any number is accepted again.
#[test]
fn sequence_numbers_follow_the_keyed_and_meticulous_windows() {
    for (kind, replay_ok) in [
        (AuthKind::KeyedMd5, true),
        (AuthKind::MeticulousSha1, false),
    ] {
        let key = auth(kind, b"secret").unwrap();
        let now = Instant::now();
        let c = SessionConfig {
            auth: Some(key.clone()),
            ..cfg(10, 3)
        };
        let mut rx = Session::new(c, 9, now).unwrap();
        let down = Repr::decode(&hex("20400318a9782e5800000000000186a0000186a00000c350")).unwrap();
        rx.handle_packet(&key.sign(&down, 100), now).unwrap();
        let replay = rx.handle_packet(&key.sign(&down, 100), now);
        assert_eq!(replay.is_ok(), replay_ok, "{kind:?}: {replay:?}");
        assert_eq!(
            rx.handle_packet(&key.sign(&down, 110), now),
            Err(AuthError::Sequence {
                got: 110,
                last: 100
            }
            .into())
        );
        rx.handle_packet(&key.sign(&down, 109), now).unwrap();
        // Wrapping around 2^32 is inside the window.
        let mut wrap = Session::new(
            SessionConfig {
                auth: Some(key.clone()),
                ..cfg(10, 3)
            },
            10,
            now,
        )
        .unwrap();
        wrap.handle_packet(&key.sign(&down, u32::MAX), now).unwrap();
        wrap.handle_packet(&key.sign(&down, 3), now).unwrap();
        // Detection time here is 3 x 100 ms (the peer's TX); twice that forgets.
        let later = now + 601 * MS;
        rx.handle_packet(&key.sign(&down, 5000), later).unwrap();
    }
}

/// Known answers: the digests equal Python's hashlib over the same packet with the
/// key "lvs-bfd" zero-padded in the digest field (section 6.7.3/6.7.4), so the
/// signing is the RFC's and not only self-consistent.
#[test]
fn digests_match_an_independent_implementation() {
    let up = Repr::decode(&hex("20c00318a9782e58a9782e58000186a0000186a00000c350")).unwrap();
    let md5 = AuthConfig::new(AuthKind::KeyedMd5, 1, b"lvs-bfd").unwrap();
    assert_eq!(
        md5.sign(&up, 0x0102_0304),
        hex(concat!(
            "20c40330a9782e58a9782e58000186a0000186a00000c350",
            "02180100010203048b9c816023037015b598eaa2724a1113"
        ))
    );
    let sha1 = AuthConfig::new(AuthKind::MeticulousSha1, 1, b"lvs-bfd").unwrap();
    assert_eq!(
        sha1.sign(&up, 0x0102_0304),
        hex(concat!(
            "20c40334a9782e58a9782e58000186a0000186a00000c350",
            "051c010001020304993b7d91ec3c5a7cf419c66a9d4a4687951b4607"
        ))
    );
    assert!(AuthConfig::new(AuthKind::KeyedMd5, 1, &[1; 17]).is_err());
    assert!(AuthConfig::new(AuthKind::KeyedSha1, 1, &[1; 20]).is_ok());
    assert!(AuthConfig::new(AuthKind::SimplePassword, 1, b"").is_err());
}

/// Proves bad configurations are refused, not clamped.
#[test]
fn config_is_checked() {
    let now = Instant::now();
    assert!(Session::new(cfg(10, 0), 1, now).is_err());
    assert!(Session::new(cfg(0, 3), 1, now).is_err());
    let mut huge = cfg(10, 3);
    huge.required_min_rx = Duration::from_secs(5000);
    assert!(Session::new(huge, 1, now).is_err());
}

/// Proves section 6.8.1's reset of bfd.RemoteDiscr in Down: after the peer signalled
/// AdminDown and then fell silent for a detection time, we stop sending its old
/// discriminator, so the peer restarted with a new one accepts our packets. Caught by
/// the netns lane: a restarted peer discarded ours forever (your_discriminator).
#[test]
fn a_silent_peers_discriminator_is_forgotten_in_down() {
    let mut link = Link::new(cfg(10, 3), cfg(10, 3));
    let start = link.now;
    link.run(start + 100 * MS);
    link.a.admin(Admin::Down, link.now);
    link.run(link.now + 5 * MS);
    assert_eq!(link.b.state(), State::Down);
    assert_ne!(link.b.remote_discriminator(), 0);
    link.cut_a = true;
    // a's last packets said 1 s (not Up): 3 s of silence.
    link.run(link.now + 2900 * MS);
    assert_ne!(link.b.remote_discriminator(), 0);
    link.run(link.now + 200 * MS);
    assert_eq!(link.b.remote_discriminator(), 0);
    assert_eq!(link.b.state(), State::Down);
    let _ = drain(&mut link.b);
    link.b.handle_timeout(link.now + Duration::from_secs(2));
    let sent = drain(&mut link.b);
    assert_eq!(Repr::decode(&sent[0]).unwrap().your_discriminator, 0);
}
