//! VRRP takeovers timed from the wire: tcpdump records VRRP adverts (IPv4, protocol 112) and
//! ARP on a LAN, and the decoded frames give the figures RFC 3768 bounds.
//!
//! After a master dies, the backup's Master_Down timer runs from the last advert it heard, so
//! the bounded interval is from the old master's last advert to the new master's first one
//! (3 × Advertisement_Interval + Skew_Time). After a master leaves with a priority-0 advert, it
//! is from that advert to the new master's first one (Skew_Time). Timestamps are the kernel's,
//! taken as each frame crosses the capture point, so how late a test gets to read them or
//! poll a daemon does not enter the figures.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::netns::Netns;
use crate::pcap::{self, Tcpdump};

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const IPPROTO_VRRP: u8 = 112;

/// One frame of interest, with the kernel's timestamp (seconds since the epoch).
pub type Frame = pcap::Frame<Kind>;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Advert {
        src: Ipv4Addr,
        vrid: u8,
        priority: u8,
    },
    /// An ARP whose sender and target address are the same: an address announcing itself.
    GratuitousArp { ip: Ipv4Addr },
}

/// The adverts and gratuitous ARPs of an Ethernet pcap; other frames are skipped.
pub fn frames(pcap: &[u8]) -> Result<Vec<Frame>, String> {
    pcap::ethernet_frames(pcap, decode)
}

fn decode(frame: &[u8]) -> Option<([u8; 6], Kind)> {
    let src_mac: [u8; 6] = frame.get(6..12)?.try_into().ok()?;
    let payload = frame.get(14..)?;
    let ipv4 = |b: &[u8], at: usize| -> Option<Ipv4Addr> {
        let octets: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(Ipv4Addr::from(octets))
    };
    let kind = match u16::from_be_bytes([frame[12], frame[13]]) {
        ETHERTYPE_IPV4 => {
            let header_len = usize::from(payload.first()? & 0x0f) * 4;
            if *payload.get(9)? != IPPROTO_VRRP {
                return None;
            }
            let vrrp = payload.get(header_len..header_len + 3)?;
            Kind::Advert {
                src: ipv4(payload, 12)?,
                vrid: vrrp[1],
                priority: vrrp[2],
            }
        }
        ETHERTYPE_ARP => {
            let (sender, target) = (ipv4(payload, 14)?, ipv4(payload, 24)?);
            if sender != target {
                return None;
            }
            Kind::GratuitousArp { ip: sender }
        }
        _ => return None,
    };
    Some((src_mac, kind))
}

/// tcpdump of VRRP and ARP on an interface (the LAN's bridge, or an observer's link).
pub struct Capture {
    tcpdump: Tcpdump,
}

impl Capture {
    /// Starts recording on `interface` of `ns` into `dir/<name>.pcap`; returns once tcpdump
    /// listens.
    pub fn start(ns: &Netns, interface: &str, dir: &Path, name: &str) -> Result<Self, String> {
        let tcpdump = Tcpdump::start(ns, interface, "ip proto 112 or arp", dir, name)?;
        Ok(Capture { tcpdump })
    }

    /// Stops recording.
    pub fn end(&mut self) {
        self.tcpdump.end();
    }

    /// The frames recorded so far; tcpdump goes on recording.
    pub fn frames(&self) -> Result<Vec<Frame>, String> {
        frames(&self.tcpdump.read()?).map_err(|e| format!("{e}; {}", self.tcpdump.said()))
    }

    /// Waits (up to `limit`) until the capture holds `old`'s takeover by `new` after `at`, and
    /// returns it: the frames the kernel has captured can lag a little behind what daemons
    /// report.
    pub fn takeover(
        &self,
        limit: Duration,
        at: f64,
        old: Ipv4Addr,
        new: Ipv4Addr,
        leave: Leave,
    ) -> Result<Takeover, String> {
        let mut last = Err("nothing read yet".to_owned());
        crate::process::wait_for(limit, || {
            last = self.frames().and_then(|frames| {
                takeover(&frames, at, old, new, leave).ok_or_else(|| {
                    format!(
                        "no takeover by {new} from {old} in {} captured frames ({})",
                        frames.len(),
                        self.tcpdump.pcap.display()
                    )
                })
            });
            last.as_ref().ok().copied()
        })
        .ok_or_else(|| last.err().unwrap_or_default())
    }
}

/// Now on the wall clock the capture's timestamps use, in seconds since the epoch: take it
/// just before the event.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// How the master left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leave {
    /// Silently (kill -9, a dead machine): the backup waits out Master_Down_Interval.
    Died,
    /// With a priority-0 advert: the backup waits Skew_Time.
    Goodbye,
}

/// A takeover as captured; times in seconds since the epoch, like the frames'.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Takeover {
    /// The event (the signal), on the test's wall clock.
    pub at: f64,
    /// The old master's last advert before the new master's first one (Died) or its
    /// priority-0 advert (Goodbye): where the RFC's timer starts.
    pub reference: f64,
    /// The new master's first advert with a non-zero priority after the event.
    pub advert: f64,
    /// Its first gratuitous ARP after the event, if captured.
    pub garp: Option<f64>,
}

impl Takeover {
    /// From the reference advert to the new master's first: the interval the RFC bounds.
    pub fn interval(&self) -> f64 {
        self.advert - self.reference
    }

    /// From the event to the new master's first advert.
    pub fn from_event(&self) -> f64 {
        self.advert - self.at
    }

    /// From the event to the reference advert: negative after a kill (the last advert went
    /// out before it), how long the goodbye took after a graceful stop.
    pub fn event_to_reference(&self) -> f64 {
        self.reference - self.at
    }
}

/// `new` taking over from `old` after the event at `at`, if `frames` hold it.
pub fn takeover(
    frames: &[Frame],
    at: f64,
    old: Ipv4Addr,
    new: Ipv4Addr,
    leave: Leave,
) -> Option<Takeover> {
    let advert_of = |f: &Frame, from: Ipv4Addr| match f.kind {
        Kind::Advert { src, priority, .. } if src == from => Some(priority),
        _ => None,
    };
    let first = frames
        .iter()
        .filter(|f| f.ts >= at)
        .find(|f| advert_of(f, new).is_some_and(|p| p > 0))?;
    let reference = match leave {
        Leave::Died => frames
            .iter()
            .filter(|f| f.ts < first.ts)
            .rfind(|f| advert_of(f, old).is_some())?,
        Leave::Goodbye => frames
            .iter()
            .filter(|f| f.ts >= at)
            .find(|f| advert_of(f, old) == Some(0))?,
    };
    let garp = frames
        .iter()
        .filter(|f| f.ts >= at && f.src_mac == first.src_mac)
        .find(|f| matches!(f.kind, Kind::GratuitousArp { .. }))
        .map(|f| f.ts);
    Some(Takeover {
        at,
        reference: reference.ts,
        advert: first.ts,
        garp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
    const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 12);

    fn ethernet(src_mac: u8, ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, src_mac]);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn advert(src: Ipv4Addr, priority: u8) -> Vec<u8> {
        let mut ip = vec![0x45, 0, 0, 40, 0, 0, 0, 0, 255, IPPROTO_VRRP, 0, 0];
        ip.extend_from_slice(&src.octets());
        ip.extend_from_slice(&[224, 0, 0, 18]);
        ip.extend_from_slice(&[0x21, 51, priority, 1, 0, 1, 0, 0, 192, 0, 2, 100]);
        ethernet(src.octets()[3], ETHERTYPE_IPV4, &ip)
    }

    fn garp(mac: u8, ip: Ipv4Addr) -> Vec<u8> {
        let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, mac];
        arp.extend_from_slice(&ip.octets());
        arp.extend_from_slice(&[0; 6]);
        arp.extend_from_slice(&ip.octets());
        ethernet(mac, ETHERTYPE_ARP, &arp)
    }

    fn at(ts: f64, data: &[u8]) -> Frame {
        let (src_mac, kind) = decode(data).expect("decodable");
        Frame { ts, src_mac, kind }
    }

    #[test]
    fn decodes_adverts_and_gratuitous_arps_only() {
        let f = at(1.0, &advert(A, 150));
        assert_eq!(
            f.kind,
            Kind::Advert {
                src: A,
                vrid: 51,
                priority: 150
            }
        );
        assert_eq!(f.src_mac[5], 11);
        assert_eq!(at(1.0, &garp(12, B)).kind, Kind::GratuitousArp { ip: B });
        // A plain ARP request (who-has another address) and a UDP datagram are not of interest.
        let mut request = garp(12, B);
        request[14 + 24..14 + 28].copy_from_slice(&A.octets());
        assert_eq!(decode(&request), None);
        let mut udp = advert(A, 1);
        udp[14 + 9] = 17;
        assert_eq!(decode(&udp), None);
    }

    #[test]
    fn times_a_death_from_the_last_advert_and_a_goodbye_from_priority_zero() {
        let frames = [
            at(10.0, &advert(A, 150)),
            at(11.0, &advert(A, 150)),
            at(11.4, &advert(A, 0)),
            at(12.0, &advert(B, 100)),
            at(12.001, &garp(12, Ipv4Addr::new(192, 0, 2, 100))),
            at(20.0, &advert(A, 150)),
            at(23.7, &advert(B, 100)),
        ];
        let died = takeover(&frames[5..], 20.5, A, B, Leave::Died).unwrap();
        assert!((died.interval() - 3.7).abs() < 1e-9);
        assert!((died.from_event() - 3.2).abs() < 1e-9);
        assert!((died.event_to_reference() + 0.5).abs() < 1e-9);
        assert_eq!(died.garp, None);

        let goodbye = takeover(&frames, 11.3, A, B, Leave::Goodbye).unwrap();
        assert!((goodbye.interval() - 0.6).abs() < 1e-9);
        assert_eq!(goodbye.garp, Some(12.001));
        // No goodbye captured after the event: no figure rather than a wrong one.
        assert_eq!(takeover(&frames, 11.5, A, B, Leave::Goodbye), None);
        assert_eq!(takeover(&frames, 24.0, A, B, Leave::Died), None);
    }
}
