//! The control packet codec against packets FRR's bfdd sent.
//!
//! Fixtures: two FRR 8.4 bfdd (Debian `frr`) in network namespaces joined by a veth,
//! 192.0.2.1 and 192.0.2.2, each with `peer ADDR interface IF` at
//! `receive-interval 100`, `transmit-interval 100`, `detect-multiplier 3`, captured
//! with `tcpdump -w frr.pcap udp port 3784` on 192.0.2.1's side and dumped with
//! `tshark -T fields -e udp.payload`; the last one followed kill -9 of 192.0.2.2's
//! bfdd. Both daemons happened to pick discriminator 0xa9782e58.

use bfd::wire::{AuthSection, Error, HEADER_LEN, Packet, Repr, auth_type};
use bfd::{Diag, State};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Frame 1: 192.0.2.1 starts, Down, at the slow 1 s rate.
const FRR_DOWN: &str = "20400318a9782e5800000000000f4240000f42400000c350";
/// Frame 2: 192.0.2.2 answers Init.
const FRR_INIT: &str = "20800318a9782e58a9782e58000f4240000f42400000c350";
/// Frame 3: Up, and a poll sequence for 100 ms.
const FRR_UP_POLL: &str = "20e00318a9782e58a9782e58000186a0000186a00000c350";
/// Frame 5: the Final answering the peer's poll.
const FRR_UP_FINAL: &str = "20d00318a9782e58a9782e58000186a0000186a00000c350";
/// Frame 7: steady state.
const FRR_UP: &str = "20c00318a9782e58a9782e58000186a0000186a00000c350";
/// Frame 130: 192.0.2.1 after the detection time expired.
const FRR_EXPIRED: &str = "21400318a9782e5800000000000186a0000186a00000c350";

const DISC: u32 = 0xa978_2e58;

#[test]
fn frr_packets_decode_and_re_emit_byte_for_byte() {
    let cases = [
        (
            FRR_DOWN,
            State::Down,
            Diag::None,
            false,
            false,
            0,
            1_000_000,
        ),
        (
            FRR_INIT,
            State::Init,
            Diag::None,
            false,
            false,
            DISC,
            1_000_000,
        ),
        (
            FRR_UP_POLL,
            State::Up,
            Diag::None,
            true,
            false,
            DISC,
            100_000,
        ),
        (
            FRR_UP_FINAL,
            State::Up,
            Diag::None,
            false,
            true,
            DISC,
            100_000,
        ),
        (FRR_UP, State::Up, Diag::None, false, false, DISC, 100_000),
        (
            FRR_EXPIRED,
            State::Down,
            Diag::DetectionTimeExpired,
            false,
            false,
            0,
            100_000,
        ),
    ];
    for (bytes, state, diag, poll, final_, your, interval) in cases {
        let bytes = hex(bytes);
        let repr = Repr::decode(&bytes).unwrap();
        assert_eq!(repr.state, state, "{bytes:02x?}");
        assert_eq!(repr.diag, diag);
        assert_eq!((repr.poll, repr.final_), (poll, final_));
        assert_eq!(repr.detect_mult, 3);
        assert_eq!(repr.my_discriminator, DISC);
        assert_eq!(repr.your_discriminator, your);
        assert_eq!(repr.desired_min_tx, interval);
        assert_eq!(repr.required_min_rx, interval);
        // FRR offers echo reception at 50 ms; we never ask for it.
        assert_eq!(repr.required_min_echo_rx, 50_000);
        assert!(repr.auth.is_none() && !repr.demand && !repr.cpi);
        assert_eq!(repr.to_bytes(), bytes);
    }
}

#[test]
fn udp_padding_past_length_is_ignored() {
    let mut bytes = hex(FRR_UP);
    bytes.extend_from_slice(&[0xee; 8]);
    let repr = Repr::decode(&bytes).unwrap();
    assert_eq!(repr.to_bytes(), hex(FRR_UP));
}

#[test]
fn decode_errors_one_per_cause() {
    let good = hex(FRR_UP);
    let with = |at: usize, value: u8| {
        let mut b = good.clone();
        b[at] = value;
        Repr::decode(&b)
    };
    assert_eq!(Repr::decode(&good[..23]), Err(Error::TooShort { len: 23 }));
    assert_eq!(with(0, 0x40), Err(Error::BadVersion(2)));
    assert_eq!(with(3, 23), Err(Error::BadLength { field: 23, len: 24 }));
    assert_eq!(with(3, 25), Err(Error::BadLength { field: 25, len: 24 }));
    assert_eq!(with(2, 0), Err(Error::ZeroDetectMult));
    assert_eq!(with(1, 0xc1), Err(Error::Multipoint));
    let mut b = good.clone();
    b[4..8].fill(0);
    assert_eq!(Repr::decode(&b), Err(Error::ZeroMyDiscriminator));
    // The A bit needs at least the auth type and length.
    assert_eq!(with(1, 0xc4), Err(Error::BadLength { field: 24, len: 24 }));

    let mut b = good.clone();
    b[1] |= 0x04;
    b[3] = 26;
    b.extend_from_slice(&[9, 2]);
    assert_eq!(Repr::decode(&b), Err(Error::AuthTypeUnknown(9)));
    // MD5 with a 20-byte section, and an auth length past the packet length.
    let mut b = good.clone();
    b[1] |= 0x04;
    b[3] = 44;
    b.extend_from_slice(&[auth_type::KEYED_MD5, 20]);
    b.extend_from_slice(&[0; 18]);
    assert_eq!(Repr::decode(&b), Err(Error::BadAuthSection));
    b[25] = 40;
    assert_eq!(Repr::decode(&b), Err(Error::BadAuthSection));
}

#[test]
fn error_labels_are_distinct() {
    let all = [
        Error::TooShort { len: 0 },
        Error::BadVersion(0),
        Error::BadLength { field: 0, len: 0 },
        Error::ZeroDetectMult,
        Error::Multipoint,
        Error::ZeroMyDiscriminator,
        Error::BadAuthSection,
        Error::AuthTypeUnknown(0),
    ];
    let mut labels: Vec<_> = all.iter().map(Error::as_str).collect();
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), all.len());
}

#[test]
fn auth_sections_round_trip() {
    let mut repr = Repr::decode(&hex(FRR_UP)).unwrap();
    for auth in [
        AuthSection::Simple {
            key_id: 7,
            password: b"secret".to_vec(),
        },
        AuthSection::Keyed {
            auth_type: auth_type::METICULOUS_MD5,
            key_id: 1,
            sequence: 0xdead_beef,
            digest: vec![0x5a; 16],
        },
        AuthSection::Keyed {
            auth_type: auth_type::KEYED_SHA1,
            key_id: 255,
            sequence: 1,
            digest: vec![0xa5; 20],
        },
    ] {
        repr.auth = Some(auth.clone());
        let bytes = repr.to_bytes();
        assert_eq!(bytes.len(), HEADER_LEN + auth.buffer_len());
        assert_eq!(usize::from(bytes[3]), bytes.len());
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.auth_present());
        assert_eq!(packet.auth_type(), Some(auth.auth_type()));
        assert_eq!(Repr::parse(&packet).unwrap(), repr);
        // Passwords and digests never reach a log line.
        assert!(!format!("{auth:?}").contains("secret"));
    }
}

/// Proves the auth section must end at Length: bytes between the section and Length
/// would sit outside what the section describes yet inside what a digest covers.
#[test]
fn auth_section_must_end_at_length() {
    let mut b = hex(FRR_UP);
    b[1] |= 0x04;
    b[3] = 24 + 6;
    b.extend_from_slice(&[auth_type::SIMPLE, 4, 1, b'x', 0, 0]);
    assert_eq!(Repr::decode(&b), Err(Error::BadAuthSection));
    b[25] = 6;
    b[27..30].copy_from_slice(b"xyz");
    assert!(Repr::decode(&b).is_ok());
}

/// Found by the fuzzer: Length 26 without the A bit. RFC 5880 only sets a lower bound,
/// so the packet is accepted (as FRR does) and re-emitted at the 24 bytes it needs.
#[test]
fn length_past_the_header_without_auth_is_accepted() {
    let mut b = hex(FRR_UP);
    b[3] = 26;
    b.extend_from_slice(&[0x0e, 0x50]);
    let repr = Repr::decode(&b).unwrap();
    assert_eq!(repr.to_bytes(), hex(FRR_UP));
}
