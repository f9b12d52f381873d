//! Any datagram: decoding must not panic, what decodes must re-emit the same bytes
//! (up to Length), and a session fed it (plain and authenticated) must not panic.
#![no_main]

use std::time::{Duration, Instant};

use bfd::auth::{AuthConfig, AuthKind};
use bfd::session::{Session, SessionConfig};
use bfd::wire::{Packet, Repr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(repr) = Repr::decode(data) {
        let packet = Packet::new_checked(data).expect("decoded packets pass check_len");
        let bytes = repr.to_bytes();
        assert!(bytes.len() <= packet.payload().len());
        // Not kept: the keyed sections' reserved byte, and bytes a sender put between the
        // mandatory section and Length without an auth section.
        assert_eq!(Repr::decode(&bytes), Ok(repr));
    }
    let now = Instant::now();
    for auth in [None, AuthConfig::new(AuthKind::MeticulousSha1, 1, b"k").ok()] {
        let cfg = SessionConfig {
            desired_min_tx: Duration::from_millis(10),
            required_min_rx: Duration::from_millis(10),
            detect_mult: 3,
            passive: false,
            auth,
        };
        let mut session = Session::new(cfg, 1, now).expect("valid config");
        let _ = session.handle_packet(data, now);
        session.handle_timeout(now + Duration::from_secs(10));
        while session.poll_transmit().is_some() {}
    }
});
