//! Any datagram from the kernel: decoding the netlink framing and every IPVS attribute must
//! never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The family id is whatever nlctrl assigned; the kernel's usual range is covered by the
    // first byte of input choosing it.
    let family_id = 16 + u16::from(data.first().copied().unwrap_or(0) % 16);
    let _ = lvs_ipvs::codec::decode_datagram(data, family_id);
});
