//! tcpdump writing a pcap file in a test's namespace, and a reader of classic pcap files.
//!
//! Shared by the netlink captures ([`crate::nlmon`]) and the LAN captures
//! ([`crate::vrrp_capture`]): both let tcpdump record (it timestamps in the kernel, at the tap,
//! so the figures do not depend on when a test gets to read them) and decode the file in Rust.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::netns::Netns;
use crate::process::{Guarded, wait_for};

/// tcpdump recording `interface` of a namespace into a pcap file.
pub struct Tcpdump {
    pub pcap: PathBuf,
    log: PathBuf,
    interface: String,
    tcpdump: Guarded,
}

impl Tcpdump {
    /// Starts recording what `filter` (a BPF expression, empty for everything) selects on
    /// `interface` into `dir/<name>.pcap`, and returns once tcpdump says it is listening, so
    /// nothing sent after this call is missed.
    pub fn start(
        ns: &Netns,
        interface: &str,
        filter: &str,
        dir: &Path,
        name: &str,
    ) -> Result<Self, String> {
        let pcap = dir.join(format!("{name}.pcap"));
        let log = dir.join(format!("{name}.tcpdump.log"));
        let stderr = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        // -U writes each packet as it comes, so the file can be read while tcpdump runs and a
        // SIGTERM loses nothing; -Z root because tcpdump otherwise drops to a user that cannot
        // write the test's root-owned folder.
        let mut command = ns.command(&["tcpdump", "-i", interface, "-U", "-Z", "root", "-w"]);
        command.arg(&pcap).stderr(stderr);
        if !filter.is_empty() {
            command.arg(filter);
        }
        let tcpdump = Guarded::spawn(&mut command)?;
        let listening = wait_for(Duration::from_secs(20), || {
            fs::read_to_string(&log)
                .ok()
                .filter(|l| l.contains("listening on"))
        });
        if listening.is_none() {
            return Err(format!(
                "tcpdump on {interface} did not start: {}",
                fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        Ok(Tcpdump {
            pcap,
            log,
            interface: interface.to_owned(),
            tcpdump,
        })
    }

    /// The file as written so far.
    pub fn read(&self) -> Result<Vec<u8>, String> {
        fs::read(&self.pcap).map_err(|e| format!("{}: {e}", self.pcap.display()))
    }

    /// What tcpdump said, for error messages.
    pub fn said(&self) -> String {
        format!(
            "tcpdump on {}: {}",
            self.interface,
            fs::read_to_string(&self.log).unwrap_or_default()
        )
    }

    pub fn end(&mut self) {
        self.tcpdump.end();
    }
}

/// An Ethernet frame a capture's decoder recognised as `kind`, with the kernel's timestamp
/// (seconds since the epoch) and its source MAC.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Frame<K> {
    pub ts: f64,
    pub src_mac: [u8; 6],
    pub kind: K,
}

/// The frames of an Ethernet pcap that `decode` (given a whole frame, returning its source
/// MAC and kind) recognises; the others are skipped.
pub fn ethernet_frames<K>(
    pcap: &[u8],
    decode: impl Fn(&[u8]) -> Option<([u8; 6], K)>,
) -> Result<Vec<Frame<K>>, String> {
    const LINKTYPE_ETHERNET: u32 = 1;
    let (linktype, records) = records(pcap)?;
    if linktype != LINKTYPE_ETHERNET {
        return Err(format!("link type {linktype}, not Ethernet"));
    }
    Ok(records
        .iter()
        .filter_map(|r| {
            decode(r.data).map(|(src_mac, kind)| Frame {
                ts: r.ts,
                src_mac,
                kind,
            })
        })
        .collect())
}

/// One captured packet: when the kernel saw it (seconds since the epoch) and its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    pub ts: f64,
    pub data: &'a [u8],
}

/// The link type and the complete records of a classic pcap file (either byte order,
/// microsecond or nanosecond timestamps). A record still being written ends the list.
pub fn records(pcap: &[u8]) -> Result<(u32, Vec<Record<'_>>), String> {
    let header = pcap
        .get(..24)
        .ok_or("not a pcap file: shorter than its header")?;
    let (little, nanos) = match header[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] => (true, false),
        [0x4d, 0x3c, 0xb2, 0xa1] => (true, true),
        [0xa1, 0xb2, 0xc3, 0xd4] => (false, false),
        [0xa1, 0xb2, 0x3c, 0x4d] => (false, true),
        _ => return Err(format!("not a pcap file: magic {:02x?}", &header[..4])),
    };
    let u32_at = |b: &[u8], at: usize| {
        let v: [u8; 4] = b[at..at + 4].try_into().expect("four bytes");
        if little {
            u32::from_le_bytes(v)
        } else {
            u32::from_be_bytes(v)
        }
    };
    let fraction = if nanos { 1e-9 } else { 1e-6 };
    let mut records = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let captured = u32_at(pcap, at + 8) as usize;
        let Some(data) = pcap.get(at + 16..at + 16 + captured) else {
            break;
        };
        records.push(Record {
            ts: f64::from(u32_at(pcap, at)) + f64::from(u32_at(pcap, at + 4)) * fraction,
            data,
        });
        at += 16 + captured;
    }
    Ok((u32_at(header, 20), records))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(magic: [u8; 4], records: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let mut bytes = magic.to_vec();
        bytes.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0]);
        bytes.extend_from_slice(&1u32.to_le_bytes());
        for (secs, frac, data) in records {
            bytes.extend_from_slice(&secs.to_le_bytes());
            bytes.extend_from_slice(&frac.to_le_bytes());
            bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
            bytes.extend_from_slice(data);
        }
        bytes
    }

    #[test]
    fn reads_timestamps_of_either_precision_and_stops_at_a_partial_record() {
        let micro = file(
            [0xd4, 0xc3, 0xb2, 0xa1],
            &[(10, 250_000, b"ab"), (11, 5, b"c")],
        );
        let (linktype, got) = records(&micro).unwrap();
        assert_eq!(linktype, 1);
        assert_eq!(got.len(), 2);
        assert!((got[0].ts - 10.25).abs() < 1e-9);
        assert_eq!(got[1].data, b"c");

        let nano = file([0x4d, 0x3c, 0xb2, 0xa1], &[(10, 250_000_000, b"ab")]);
        assert!((records(&nano).unwrap().1[0].ts - 10.25).abs() < 1e-9);

        // tcpdump mid-write: the header of a record whose bytes are not all there yet.
        let mut partial = micro.clone();
        partial.extend_from_slice(&[0; 8]);
        partial.extend_from_slice(&100u32.to_le_bytes());
        partial.extend_from_slice(&100u32.to_le_bytes());
        partial.extend_from_slice(b"xyz");
        assert_eq!(records(&partial).unwrap().1.len(), 2);
        assert!(records(b"nope").is_err());
    }
}
