//! Round trips and every decode fault, on hand-built messages.

use std::net::SocketAddr;

use syncd::wire::{self, EmitError, Error, MessageBuilder, ProtocolVersion, Scope, v0, v1};
use syncd::{Addrs, ConnFlags, Connection, FwdMethod, Protocol, Seq, SeqData};

fn tcp4(cport: u16) -> Connection {
    let client = SocketAddr::new("192.0.2.2".parse().unwrap(), cport);
    Connection::tcp(
        client,
        "192.0.2.100:80".parse().unwrap(),
        "198.51.100.2:8080".parse().unwrap(),
    )
    .unwrap()
}

// The shorthand is the kernel's entry for an established NAT connection, and will not mix
// address families.
#[test]
fn the_tcp_shorthand_is_an_established_nat_connection() {
    let conn = tcp4(40000);
    assert_eq!(
        (conn.state_name(), conn.fwd_method(), conn.timeout),
        ("ESTABLISHED", FwdMethod::Masq, 900)
    );
    assert_eq!(conn.client().to_string(), "192.0.2.2:40000");
    assert_eq!(conn.dest().to_string(), "198.51.100.2:8080");
    let v6: SocketAddr = "[2001:db8::1]:80".parse().unwrap();
    assert!(Connection::tcp(conn.client(), v6, conn.dest()).is_none());
}

fn tcp6(cport: u16) -> Connection {
    Connection {
        addrs: Addrs::new(
            "2001:db8:1::2".parse().unwrap(),
            "2001:db8:100::100".parse().unwrap(),
            "2001:db8:2::2".parse().unwrap(),
        )
        .unwrap(),
        ..tcp4(cport)
    }
}

fn seq() -> SeqData {
    SeqData {
        in_seq: Seq {
            init_seq: 0x0102_0304,
            delta: 5,
            previous_delta: 6,
        },
        out_seq: Seq {
            init_seq: 0xa0b0_c0d0,
            delta: 7,
            previous_delta: 8,
        },
    }
}

fn sip_template() -> Connection {
    Connection {
        protocol: Protocol::UDP,
        cport: 0,
        vport: 5060,
        dport: 5060,
        fwmark: 7,
        flags: ConnFlags(ConnFlags::TEMPLATE).with_fwd_method(FwdMethod::Route),
        state: 1,
        timeout: 360,
        pe_data: Some(b"call-id-123".to_vec()),
        pe_name: Some(b"sip".to_vec()),
        ..tcp4(0)
    }
}

fn v1_bytes(conns: &[Connection]) -> Vec<u8> {
    v1::Repr {
        sync_id: 5,
        conns: conns.to_vec(),
    }
    .to_bytes()
    .unwrap()
}

/// Rewrites the size field after a hand edit so only the intended fault remains.
fn fix_size(buf: &mut [u8]) {
    let len = buf.len() as u16;
    buf[2..4].copy_from_slice(&len.to_be_bytes());
}

fn v1_strict(buf: &[u8]) -> Result<v1::Repr, Error> {
    v1::Repr::parse(&v1::Packet::new_checked(buf)?)
}

#[test]
fn v1_round_trip_with_options_ipv6_and_padding() {
    let mut with_seq = tcp4(40001);
    with_seq.seq = Some(seq());
    with_seq.flags = ConnFlags(ConnFlags::IN_SEQ | ConnFlags::OUT_SEQ);
    let conns = vec![sip_template(), with_seq, tcp6(40002), tcp4(40003)];
    let bytes = v1_bytes(&conns);
    // 8 + (36+13+5 = 54, padded 56) + (36+26 = 62, padded 64) + 72 + 36
    assert_eq!(bytes.len(), 8 + 56 + 64 + 72 + 36);
    assert_eq!(&bytes[8 + 54..8 + 56], &[0, 0]);
    let repr = v1_strict(&bytes).unwrap();
    assert_eq!(repr.conns, conns);
    let packet = v1::Packet::new_checked(&bytes[..]).unwrap();
    let entries: Vec<_> = packet.entries().map(Result::unwrap).collect();
    assert_eq!(entries[0].size(), 54);
    let options: Vec<_> = entries[0].options().map(Result::unwrap).collect();
    assert_eq!(options[0].kind, v1::OPT_PE_DATA);
    assert_eq!(options[1].data, b"sip");
    assert!(entries[2].is_ipv6());
    assert_eq!(entries[2].client_addr().to_string(), "2001:db8:1::2");
    // Sequence words go out in network order.
    let seq_at = 8 + 56 + v1::ENTRY_V4_LEN;
    assert_eq!(&bytes[seq_at..seq_at + 6], &[1, 24, 1, 2, 3, 4]);
}

#[test]
fn header_faults() {
    let good = v1_bytes(&[tcp4(1)]);
    assert_eq!(
        wire::decode(&good[..3]).unwrap_err(),
        Error::HeaderTruncated
    );
    assert_eq!(v1_strict(&good[..7]).unwrap_err(), Error::HeaderTruncated);

    let mut longer = good.clone();
    longer.push(0);
    assert_eq!(
        wire::decode(&longer).unwrap_err(),
        Error::SizeMismatch {
            field: 44,
            actual: 45
        }
    );

    let mut bad_version = good.clone();
    bad_version[5] = 2;
    assert_eq!(
        wire::decode(&bad_version).unwrap_err(),
        Error::UnknownVersion(2)
    );
    assert_eq!(
        v1_strict(&bad_version).unwrap_err(),
        Error::UnknownVersion(2)
    );
}

#[test]
fn entry_framing_faults() {
    let good = v1_bytes(&[tcp4(1), tcp4(2)]);

    // nr_conns claims a third entry that is not there.
    let mut more = good.clone();
    more[4] = 3;
    assert_eq!(
        wire::decode(&more).unwrap_err(),
        Error::EntryTruncated { index: 2 }
    );

    // Entry size beyond the datagram.
    let mut long_entry = good.clone();
    long_entry[8 + 36 + 3] = 37;
    assert_eq!(
        wire::decode(&long_entry).unwrap_err(),
        Error::EntryTruncated { index: 1 }
    );

    let mut small = good.clone();
    small[8 + 3] = 20;
    assert_eq!(
        wire::decode(&small).unwrap_err(),
        Error::EntrySizeTooSmall { index: 0, size: 20 }
    );

    let mut version = good.clone();
    version[8 + 2] = 0x10;
    assert_eq!(
        wire::decode(&version).unwrap_err(),
        Error::EntryVersion {
            index: 0,
            version: 1
        }
    );

    let mut entry_type = good.clone();
    entry_type[8] = 2;
    assert_eq!(
        wire::decode(&entry_type).unwrap_err(),
        Error::EntryType {
            index: 0,
            entry_type: 2
        }
    );

    // An IPv6 type bit on a 36-byte entry: the fixed part is 72.
    let mut v6_short = good.clone();
    v6_short[8] = 1;
    assert_eq!(
        wire::decode(&v6_short).unwrap_err(),
        Error::EntrySizeTooSmall { index: 0, size: 36 }
    );
}

/// One IPv4 entry followed by `options`, sizes fixed up.
fn with_options(options: &[u8]) -> Vec<u8> {
    let mut buf = v1_bytes(&[tcp4(1)]);
    buf.extend_from_slice(options);
    let size = (36 + options.len()) as u16;
    buf[8 + 2..8 + 4].copy_from_slice(&size.to_be_bytes());
    fix_size(&mut buf);
    buf
}

#[test]
fn option_faults() {
    let cases: Vec<(Vec<u8>, Error)> = vec![
        (vec![2], Error::OptionTruncated),
        (vec![2, 0], Error::OptionEmpty { kind: 2 }),
        (vec![2, 5, 1, 2], Error::OptionOverflow { kind: 2, len: 5 }),
        (vec![1, 2, 0, 0], Error::SeqDataLength(2)),
        (vec![3, 1, b'a', 3, 1, b'b'], Error::OptionDuplicate(3)),
        (
            [&[3u8, 17][..], &[b'x'; 17]].concat(),
            Error::PeNameTooLong(17),
        ),
        (vec![9, 1, 0], Error::OptionUnknownMandatory(9)),
        (vec![2, 1, 0xaa], Error::PeDataWithoutName),
    ];
    for (options, expected) in cases {
        let buf = with_options(&options);
        assert_eq!(v1_strict(&buf).unwrap_err(), expected, "{options:?}");
        match expected.scope() {
            Scope::Message => assert_eq!(wire::decode(&buf).unwrap_err(), expected),
            Scope::Entry => {
                let decoded = wire::decode(&buf).unwrap();
                assert!(decoded.conns.is_empty());
                assert_eq!(decoded.issues, vec![expected]);
            }
            Scope::Lint => unreachable!(),
        }
    }
    // The optional-parameter bit lets a receiver skip an option it does not know.
    let skipped = with_options(&[v1::OPT_F_PARAM | 9, 2, 0, 0]);
    assert_eq!(v1_strict(&skipped).unwrap().conns, vec![tcp4(1)]);
}

#[test]
fn entry_scope_faults_skip_only_that_entry() {
    let mut bad_state = tcp4(2);
    bad_state.state = 11;
    let mut bad_proto = tcp4(3);
    bad_proto.protocol = Protocol(47);
    let mut template_state = tcp4(4);
    template_state.flags = ConnFlags(ConnFlags::TEMPLATE);
    template_state.state = 9;
    let buf = v1_bytes(&[
        tcp4(1),
        bad_state,
        bad_proto,
        template_state.clone(),
        tcp4(5),
    ]);
    let decoded = wire::decode(&buf).unwrap();
    assert_eq!(decoded.conns, vec![tcp4(1), template_state, tcp4(5)]);
    assert_eq!(
        decoded.issues,
        vec![
            Error::InvalidState {
                protocol: 6,
                state: 11
            },
            Error::UnsupportedProtocol(47)
        ]
    );
    assert_eq!(
        v1_strict(&buf).unwrap_err().as_str(),
        "invalid_state",
        "strict parse refuses what a kernel would skip"
    );
}

#[test]
fn lints_keep_the_entries() {
    let mut odd = tcp4(1);
    odd.pe_name = Some(b"sip".to_vec());
    let mut padded = v1_bytes(&[odd.clone(), tcp4(2)]);
    padded[8 + 41] = 0xff; // one of the three pad bytes after the 41-byte entry
    let decoded = wire::decode(&padded).unwrap();
    assert_eq!(decoded.conns, vec![odd, tcp4(2)]);
    assert_eq!(decoded.issues, vec![Error::PaddingNonZero]);
    assert_eq!(Error::PaddingNonZero.scope(), Scope::Lint);

    let mut trailing = v1_bytes(&[tcp4(1)]);
    trailing.extend_from_slice(&[0, 0]);
    fix_size(&mut trailing);
    let decoded = wire::decode(&trailing).unwrap();
    assert_eq!(decoded.conns, vec![tcp4(1)]);
    assert_eq!(decoded.issues, vec![Error::TrailingBytes(2)]);
    assert_eq!(v1_strict(&trailing).unwrap_err(), Error::TrailingBytes(2));
}

#[test]
fn v0_round_trip_and_faults() {
    let mut with_seq = tcp4(2);
    with_seq.timeout = 0;
    with_seq.flags = ConnFlags(ConnFlags::OUT_SEQ | ConnFlags::INACTIVE);
    with_seq.seq = Some(seq());
    let mut plain = tcp4(1);
    plain.timeout = 0;
    let repr = v0::Repr {
        sync_id: 9,
        conns: vec![plain.clone(), with_seq.clone()],
    };
    let bytes = repr.to_bytes().unwrap();
    assert_eq!(bytes.len(), 4 + 24 + 48);
    assert_eq!(&bytes[..4], &[2, 9, 0, 76]);
    // The sequence block is the sender's memory image: little-endian here.
    assert_eq!(&bytes[4 + 24 + 24..4 + 24 + 28], &[4, 3, 2, 1]);
    let parsed = v0::Repr::parse(&v0::Packet::new_checked(&bytes[..]).unwrap()).unwrap();
    assert_eq!(parsed, repr);

    let mut cut = bytes[..bytes.len() - 10].to_vec();
    fix_size(&mut cut);
    assert_eq!(
        wire::decode(&cut).unwrap_err(),
        Error::EntryTruncated { index: 1 }
    );

    let mut trailing = bytes.clone();
    trailing.push(0);
    fix_size(&mut trailing);
    assert_eq!(
        wire::decode(&trailing).unwrap().issues,
        vec![Error::TrailingBytes(1)]
    );

    // What version 0 cannot carry is dropped, as the kernel's version 0 sender does.
    let mut rich = tcp4(3);
    rich.fwmark = 4;
    rich.pe_data = Some(vec![1]);
    let bytes = v0::Repr {
        sync_id: 1,
        conns: vec![rich],
    }
    .to_bytes()
    .unwrap();
    let back = &wire::decode(&bytes).unwrap().conns[0];
    assert_eq!(
        (back.fwmark, back.timeout, back.pe_data.as_ref()),
        (0, 0, None)
    );
    assert_eq!(
        v0::Repr {
            sync_id: 1,
            conns: vec![tcp6(1)]
        }
        .to_bytes()
        .unwrap_err(),
        EmitError::Ipv6InV0
    );
}

#[test]
fn builder_packs_to_max_len_like_the_kernel() {
    let conns: Vec<Connection> = (0..100).map(|i| tcp4(1000 + i)).collect();
    let messages = wire::build_messages(ProtocolVersion::V1, 5, 1472, &conns).unwrap();
    // (1472 - 8) / 36 = 40 entries per message.
    let counts: Vec<usize> = messages
        .iter()
        .map(|m| wire::decode(m).unwrap().conns.len())
        .collect();
    assert_eq!(counts, vec![40, 40, 20]);
    assert!(messages.iter().all(|m| m.len() <= 1472));
    assert_eq!(messages[0].len(), 8 + 40 * 36);
    let back: Vec<Connection> = messages
        .iter()
        .flat_map(|m| wire::decode(m).unwrap().conns)
        .collect();
    assert_eq!(back, conns);

    // Padding counts against the limit: 8 + 54 + pad 2 + 36 = 100.
    let mut odd = tcp4(1);
    odd.pe_name = Some(b"abcdefghijklmnop".to_vec());
    let tight = wire::build_messages(ProtocolVersion::V1, 5, 99, &[odd.clone(), tcp4(2)]).unwrap();
    assert_eq!(tight.len(), 2);
    let fits = wire::build_messages(ProtocolVersion::V1, 5, 100, &[odd, tcp4(2)]).unwrap();
    assert_eq!(fits.len(), 1);

    // An entry larger than the limit still goes out, alone.
    let alone = wire::build_messages(ProtocolVersion::V1, 5, 20, &[tcp4(1), tcp4(2)]).unwrap();
    assert_eq!(alone.len(), 2);

    // The one-byte count caps a message at 255 entries.
    let many: Vec<Connection> = (0..300).map(tcp4).collect();
    let big = wire::build_messages(ProtocolVersion::V0, 5, 65535, &many).unwrap();
    assert_eq!(big.len(), 2);
    assert_eq!(big[0][0], 255);
}

#[test]
fn builder_error_leaves_the_message_intact() {
    let mut builder = MessageBuilder::new(ProtocolVersion::V0, 5);
    builder.push(&tcp4(1)).unwrap();
    assert_eq!(builder.push(&tcp6(2)), Err(EmitError::Ipv6InV0));
    let mut too_long = tcp4(3);
    too_long.pe_name = Some(vec![b'x'; 17]);
    let mut v1_builder = MessageBuilder::new(ProtocolVersion::V1, 5);
    assert_eq!(
        v1_builder.push(&too_long),
        Err(EmitError::PeNameTooLong(17))
    );
    assert_eq!(v1_builder.flush(), None);
    assert_eq!(builder.pending(), 1);
    let message = builder.flush().unwrap();
    assert_eq!(wire::decode(&message).unwrap().conns.len(), 1);
    assert_eq!(builder.flush(), None);
}
