//! Internet checksum (RFC 1071), with the IPv4/IPv6 pseudo-headers VRRPv3 uses.

use super::{IP_PROTO_VRRP, IpPair};

/// One's-complement sum of `data` as big-endian 16-bit words, folded to 16 bits
/// but not complemented, so partial sums can be combined with [`combine`].
pub fn data(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    fold(sum)
}

/// One's-complement sum of several partial sums.
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u32::from(s)).sum())
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Partial sum of the upper-layer pseudo-header (RFC 768 style for IPv4,
/// RFC 8200 section 8.1 for IPv6) for a VRRP message of `length` bytes.
pub fn pseudo_header(ip: &IpPair, length: usize) -> u16 {
    match ip {
        IpPair::V4 { src, dst } => {
            let len = length as u16;
            combine(&[
                data(&src.octets()),
                data(&dst.octets()),
                u16::from(IP_PROTO_VRRP),
                len,
            ])
        }
        IpPair::V6 { src, dst } => {
            let len = (length as u32).to_be_bytes();
            combine(&[
                data(&src.octets()),
                data(&dst.octets()),
                data(&len),
                u16::from(IP_PROTO_VRRP),
            ])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // The worked example of RFC 1071 section 3: sum 0xddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(data(&bytes), 0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(data(&[0x12, 0x34, 0x56]), data(&[0x12, 0x34, 0x56, 0x00]));
    }

    #[test]
    fn carries_fold() {
        assert_eq!(data(&[0xff, 0xff, 0x00, 0x02]), 0x0002);
        assert_eq!(combine(&[0xffff, 0x0001]), 0x0001);
    }
}
