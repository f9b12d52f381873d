//! Decoding never panics: every captured kernel reply and ipvsadm request, mutated many ways
//! (byte flips, truncations, length-field damage, splices), goes through the decoder.
//! Deterministic, so a failure reproduces; the libFuzzer target in ../fuzz explores further.

fn fixtures() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let mut datagrams = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "hex") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let Some(hex) = line.strip_prefix("> ").or_else(|| line.strip_prefix("< ")) else {
                continue;
            };
            let bytes: Vec<u8> = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            datagrams.push(bytes);
        }
    }
    datagrams
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn mutated_kernel_messages_never_panic_the_decoder() {
    let seeds = fixtures();
    assert!(
        seeds.len() >= 40,
        "expected the captured fixtures, found {}",
        seeds.len()
    );
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut decoded = 0usize;
    for round in 0..200_000 {
        let mut data = seeds[round % seeds.len()].clone();
        for _ in 0..=rng.below(4) {
            match rng.below(5) {
                0 if !data.is_empty() => {
                    let i = rng.below(data.len());
                    data[i] ^= 1 << rng.below(8);
                }
                1 if !data.is_empty() => {
                    let i = rng.below(data.len());
                    data[i] = rng.next() as u8;
                }
                2 => data.truncate(rng.below(data.len() + 1)),
                // Netlink and attribute length fields are u16/u32 little-endian: damage one.
                3 if data.len() >= 4 => {
                    let i = rng.below(data.len() - 1);
                    let v = rng.next() as u16;
                    data[i..i + 2].copy_from_slice(&v.to_le_bytes());
                }
                _ => {
                    let other = &seeds[rng.below(seeds.len())];
                    let at = rng.below(data.len() + 1);
                    let from = rng.below(other.len());
                    data.splice(at..at, other[from..].iter().copied());
                }
            }
        }
        let family_id = if data.len() >= 6 {
            u16::from_le_bytes([data[4], data[5]])
        } else {
            16
        };
        if lvs_ipvs::codec::decode_datagram(&data, family_id).is_ok() {
            decoded += 1;
        }
    }
    // Some mutants stay valid; if none did, the test would only be exercising the first check.
    assert!(decoded > 100, "only {decoded} mutants decoded");
}
