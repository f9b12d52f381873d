//! Recording what a namespace says to the kernel over netlink: an nlmon interface, tcpdump
//! writing its pcap, and a reader that turns the capture into the IPVS requests it holds.
//!
//! nlmon taps are per network namespace, so the interface is made inside the namespace whose
//! processes are watched. The pcap is LINKTYPE_NETLINK: each record is a 16-byte cooked header
//! (its last field the netlink protocol) followed by the netlink messages of one datagram,
//! in either direction; requests are the messages with NLM_F_REQUEST.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use lvs_ipvs::codec::{self, ReplyKind};
use lvs_ipvs::{AddressFamily, IpvsCmd, IpvsMessage, ServiceKey};

use crate::netns::Netns;
use crate::pcap::{self, Record, Tcpdump};
use crate::process::wait_for;

const LINKTYPE_NETLINK: u32 = 253;
const COOKED_HEADER: usize = 16;
const NETLINK_GENERIC: u16 = 16;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;

/// A service nobody configures: [`Capture::finish`] asks the kernel for it, and once that
/// request is in the file, so is everything sent before it.
const MARKER: &str = "203.0.113.254:9";

/// tcpdump on a fresh nlmon interface; stop it with [`Capture::finish`].
pub struct Capture {
    /// The namespace's name, not a borrow of it: a long capture (the soak's) runs while the
    /// test restarts the daemons of the director whose namespace it taps.
    ns: String,
    tcpdump: Tcpdump,
}

impl Capture {
    /// Starts recording every netlink message of `ns` into `dir/<interface>.pcap`, and returns
    /// once tcpdump says it is listening, so nothing sent after this call is missed.
    pub fn start(ns: &Netns, interface: &str, dir: &Path) -> Result<Self, String> {
        ns.ip(&["link", "add", interface, "type", "nlmon"])?;
        ns.ip(&["link", "set", interface, "up"])?;
        let tcpdump = Tcpdump::start(ns, interface, "", dir, interface)?;
        Ok(Capture {
            ns: ns.name().to_owned(),
            tcpdump,
        })
    }

    /// Stops tcpdump and decodes every generic netlink request to the IPVS family
    /// `family_id`. tcpdump reads the kernel's capture ring in blocks and drops what it has
    /// not read when it is told to stop, so first a marker request is sent and the file read
    /// until the marker is in it: netlink taps deliver in order, so nothing earlier is lost.
    pub fn finish(mut self, family_id: u16) -> Result<Vec<IpvsRequest>, String> {
        // The lookup fails (no such service); the request is what counts.
        let _ = crate::process::run_stdout(std::process::Command::new("ip").args([
            "netns", "exec", &self.ns, "ipvsadm", "-L", "-n", "-t", MARKER,
        ]));
        let marker: SocketAddr = MARKER.parse().expect("a socket address");
        let is_marker = |r: &IpvsRequest| {
            matches!(r.service, Some(ServiceKey::Inet { addr, port, .. })
                if SocketAddr::new(addr, port) == marker)
        };
        let mut last_error = String::new();
        let requests = wait_for(Duration::from_secs(20), || {
            let read = self
                .tcpdump
                .read()
                .and_then(|bytes| ipvs_requests(&bytes, family_id));
            match read {
                Ok(requests) => requests.iter().any(is_marker).then_some(requests),
                Err(e) => {
                    last_error = e;
                    None
                }
            }
        });
        self.tcpdump.end();
        let mut requests = requests.ok_or_else(|| {
            format!(
                "the marker request never reached the capture ({last_error}); {}",
                self.tcpdump.said()
            )
        })?;
        requests.retain(|r| !is_marker(r));
        Ok(requests)
    }
}

/// One IPVS request seen on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsRequest {
    pub cmd: IpvsCmd,
    pub dump: bool,
    /// The netlink port of the sender (its pid for the first socket of a process).
    pub port: u32,
    pub service: Option<ServiceKey>,
    /// Address and weight of the destination, when the request names one.
    pub destination: Option<(SocketAddr, u32)>,
    /// When the tap saw it (the capture's timestamp, seconds since the Unix epoch): the
    /// kernel handles a request within the sendmsg that the tap records.
    pub at: Duration,
}

impl IpvsRequest {
    /// Whether the kernel table changes when this request succeeds.
    pub fn writes(&self) -> bool {
        !matches!(
            self.cmd,
            IpvsCmd::GetService
                | IpvsCmd::GetDest
                | IpvsCmd::GetDaemon
                | IpvsCmd::GetConfig
                | IpvsCmd::GetInfo
        )
    }
}

/// `NewDest tcp 192.0.2.100:80 -> 198.51.100.11:8080 weight 10`: how expectations are written.
impl fmt::Display for IpvsRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.cmd)?;
        if let Some(service) = &self.service {
            write!(f, " {service}")?;
        }
        if let Some((addr, weight)) = &self.destination {
            write!(f, " -> {addr} weight {weight}")?;
        }
        Ok(())
    }
}

fn describe(msg: &IpvsMessage, flags: u16, port: u32, at: Duration) -> IpvsRequest {
    let service = msg
        .service_nlas()
        .and_then(|nlas| ServiceKey::from_nlas(nlas).ok());
    let af = service
        .as_ref()
        .map_or(AddressFamily::Inet, |key| match key {
            ServiceKey::Inet { af, .. } | ServiceKey::Fwmark { af, .. } => *af,
        });
    let destination = msg
        .dest_nlas()
        .is_some()
        .then(|| msg.destination(af).ok())
        .flatten()
        .map(|d| (SocketAddr::new(d.addr, d.port), d.weight));
    IpvsRequest {
        cmd: msg.cmd,
        dump: flags & NLM_F_DUMP == NLM_F_DUMP,
        port,
        service,
        destination,
        at,
    }
}

/// Every IPVS request in a LINKTYPE_NETLINK pcap.
pub fn ipvs_requests(pcap: &[u8], family_id: u16) -> Result<Vec<IpvsRequest>, String> {
    let (linktype, records) = pcap::records(pcap)?;
    if linktype != LINKTYPE_NETLINK {
        return Err(format!("link type {linktype}, not netlink"));
    }
    let mut requests = Vec::new();
    for Record { data: record, ts } in records {
        let Some(datagram) = record.get(COOKED_HEADER..) else {
            continue;
        };
        // The cooked header's protocol field is in network order.
        if u16::from_be_bytes([record[14], record[15]]) != NETLINK_GENERIC {
            continue;
        }
        let messages = codec::decode_datagram(datagram, family_id)
            .map_err(|e| format!("undecodable netlink datagram {datagram:02x?}: {e}"))?;
        for reply in messages {
            if let ReplyKind::Ipvs { msg, .. } = &reply.kind
                && reply.flags & NLM_F_REQUEST != 0
            {
                requests.push(describe(
                    msg,
                    reply.flags,
                    reply.port,
                    Duration::from_secs_f64(ts),
                ));
            }
        }
    }
    Ok(requests)
}
