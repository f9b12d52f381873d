//! Fixture readers shared by the integration tests.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

pub fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// UDP payloads of a classic little-endian pcap of Ethernet + IPv4 + UDP frames (what
/// `tcpdump -w` wrote inside UML).
pub fn pcap_udp_payloads(pcap: &[u8]) -> Vec<Vec<u8>> {
    assert_eq!(
        &pcap[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "little-endian microsecond pcap"
    );
    assert_eq!(
        u32::from_le_bytes(pcap[20..24].try_into().unwrap()),
        1,
        "Ethernet link type"
    );
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let incl = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &pcap[at + 16..at + 16 + incl];
        at += 16 + incl;
        assert_eq!(&frame[12..14], &[0x08, 0x00], "IPv4 frame");
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        assert_eq!(ip[9], 17, "UDP");
        let udp = &ip[ihl..];
        let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), 8848, "sync port");
        out.push(udp[8..udp_len].to_vec());
    }
    out
}

/// One line of /proc/net/ip_vs_conn.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcConn {
    pub protocol: String,
    pub client: IpAddr,
    pub cport: u16,
    pub virtual_addr: IpAddr,
    pub vport: u16,
    pub dest: IpAddr,
    pub dport: u16,
    pub state: String,
}

fn proc_addr(s: &str) -> IpAddr {
    if s.contains(':') {
        s.parse::<Ipv6Addr>().unwrap().into()
    } else {
        Ipv4Addr::from(u32::from_str_radix(s, 16).unwrap()).into()
    }
}

fn proc_port(s: &str) -> u16 {
    u16::from_str_radix(s, 16).unwrap()
}

pub fn parse_ip_vs_conn(text: &str) -> Vec<ProcConn> {
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            ProcConn {
                protocol: f[0].to_string(),
                client: proc_addr(f[1]),
                cport: proc_port(f[2]),
                virtual_addr: proc_addr(f[3]),
                vport: proc_port(f[4]),
                dest: proc_addr(f[5]),
                dport: proc_port(f[6]),
                state: f[7].to_string(),
            }
        })
        .collect()
}

impl ProcConn {
    pub fn of(conn: &syncd::Connection) -> ProcConn {
        ProcConn {
            protocol: conn.protocol.name().to_string(),
            client: conn.addrs.client(),
            cport: conn.cport,
            virtual_addr: conn.addrs.virtual_addr(),
            vport: conn.vport,
            dest: conn.addrs.dest(),
            dport: conn.dport,
            state: conn.state_name().to_string(),
        }
    }
}

/// xorshift64*: deterministic pseudo-random numbers without a dependency.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
