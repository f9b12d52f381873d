//! Any datagram: decoding must not panic, and what decodes must re-emit and decode the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syncd::wire::{self, v0, v1};

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = v1::Packet::new_checked(data) {
        for entry in packet.entries().flatten() {
            for option in entry.options().flatten() {
                let _ = option.data.len();
            }
            let _ = v1::parse_entry(&entry);
        }
        let _ = v1::Repr::parse(&packet);
    }
    if let Ok(packet) = v0::Packet::new_checked(data) {
        let _ = v0::Repr::parse(&packet);
    }
    if let Ok(decoded) = wire::decode(data) {
        let messages =
            wire::build_messages(decoded.version, decoded.sync_id, 65535, &decoded.conns)
                .expect("decoded entries re-emit");
        let back: Vec<_> = messages
            .iter()
            .flat_map(|m| wire::decode(m).expect("re-emitted message decodes").conns)
            .collect();
        assert_eq!(back, decoded.conns);
    }
});
