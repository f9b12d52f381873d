//! Just enough pcap (Ethernet / IPv4 / IPv6) to read the keepalived captures and
//! to write our own packets for tshark.

#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use vrrpd::wire::{IP_PROTO_VRRP, IpPair, VRRP_TTL, virtual_mac};

const LINKTYPE_ETHERNET: u32 = 1;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;

/// One VRRP message as seen on the wire.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Capture timestamp.
    pub ts: Duration,
    pub ip: IpPair,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// The IP payload: the VRRP message.
    pub payload: Vec<u8>,
}

pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pcap")
        .join(name)
}

fn u32_at(b: &[u8], at: usize, le: bool) -> u32 {
    let raw: [u8; 4] = b[at..at + 4].try_into().unwrap();
    if le {
        u32::from_le_bytes(raw)
    } else {
        u32::from_be_bytes(raw)
    }
}

fn u16_be(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Reads every VRRP packet of an Ethernet pcap file.
pub fn read_pcap(path: &Path) -> Vec<Captured> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(data.len() >= 24, "pcap header");
    let (le, nanos) = match &data[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] => (true, false),
        [0xa1, 0xb2, 0xc3, 0xd4] => (false, false),
        [0x4d, 0x3c, 0xb2, 0xa1] => (true, true),
        [0xa1, 0xb2, 0x3c, 0x4d] => (false, true),
        other => panic!("not a pcap file: magic {other:02x?}"),
    };
    assert_eq!(u32_at(&data, 20, le), LINKTYPE_ETHERNET, "linktype");
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let secs = u32_at(&data, at, le);
        let frac = u32_at(&data, at + 4, le);
        let incl = u32_at(&data, at + 8, le) as usize;
        let frame = &data[at + 16..at + 16 + incl];
        at += 16 + incl;
        let ts = Duration::from_secs(secs.into())
            + if nanos {
                Duration::from_nanos(frac.into())
            } else {
                Duration::from_micros(frac.into())
            };
        if let Some(c) = parse_frame(frame, ts) {
            out.push(c);
        }
    }
    out
}

fn parse_frame(frame: &[u8], ts: Duration) -> Option<Captured> {
    let ip = &frame[14..];
    match u16_be(frame, 12) {
        ETHERTYPE_IPV4 => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let total = usize::from(u16_be(ip, 2));
            if ip[9] != IP_PROTO_VRRP {
                return None;
            }
            let src = Ipv4Addr::from(<[u8; 4]>::try_from(&ip[12..16]).unwrap());
            let dst = Ipv4Addr::from(<[u8; 4]>::try_from(&ip[16..20]).unwrap());
            Some(Captured {
                ts,
                ip: IpPair::V4 { src, dst },
                ttl: ip[8],
                payload: ip[ihl..total].to_vec(),
            })
        }
        ETHERTYPE_IPV6 => {
            let len = usize::from(u16_be(ip, 4));
            if ip[6] != IP_PROTO_VRRP {
                return None;
            }
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[8..24]).unwrap());
            let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[24..40]).unwrap());
            Some(Captured {
                ts,
                ip: IpPair::V6 { src, dst },
                ttl: ip[7],
                payload: ip[40..40 + len].to_vec(),
            })
        }
        _ => None,
    }
}

fn ip_header_checksum(header: &[u8]) -> u16 {
    !vrrpd::wire::checksum::data(header)
}

/// An Ethernet frame carrying `payload` as VRRP from the virtual MAC to the
/// group MAC, the way a master sends it.
pub fn frame(ip: &IpPair, vrid: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    match ip {
        IpPair::V4 { src, dst } => {
            let o = dst.octets();
            f.extend_from_slice(&[0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]);
            f.extend_from_slice(&virtual_mac(vrid, false));
            f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
            let mut h = [0u8; 20];
            h[0] = 0x45;
            h[1] = 0xc0;
            h[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
            h[8] = VRRP_TTL;
            h[9] = IP_PROTO_VRRP;
            h[12..16].copy_from_slice(&src.octets());
            h[16..20].copy_from_slice(&o);
            let c = ip_header_checksum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&h);
        }
        IpPair::V6 { src, dst } => {
            let o = dst.octets();
            f.extend_from_slice(&[0x33, 0x33, o[12], o[13], o[14], o[15]]);
            f.extend_from_slice(&virtual_mac(vrid, true));
            f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
            let mut h = [0u8; 40];
            h[0] = 0x6c;
            h[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
            h[6] = IP_PROTO_VRRP;
            h[7] = VRRP_TTL;
            h[8..24].copy_from_slice(&src.octets());
            h[24..40].copy_from_slice(&o);
            f.extend_from_slice(&h);
        }
    }
    f.extend_from_slice(payload);
    f
}

/// Writes Ethernet frames as a microsecond little-endian pcap file, one second
/// apart.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).unwrap();
}
