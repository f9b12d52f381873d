//! /proc/net/ip_vs_conn: the only way to read the kernel's connection table (there is no
//! netlink call for it). lvsadm renders it as `ipvsadm -Lnc` does; a master's syncd reads it
//! so its mirror holds connections the kernel synced before syncd was watching.
//!
//! Rows as `ip_vs_conn_seq_show` (6.1) prints them:
//!
//! ```text
//! Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
//! TCP C0000202 DD39 C0000266 0050 C6336402 1F90 TIME_WAIT       115
//! TCP 2001:0db8:...:0002 C8CF 2001:0db8:...:0100 0050 2001:0db8:...:0002 1F90 ESTABLISHED 899
//! UDP C0000202 9C44 C0000265 0035 C0000214 0035 UDP             299 sip <call-id>
//! ```
//!
//! IPv4 addresses are host-order hex, IPv6 ones `%pI6` (a destination of the other family is
//! printed in brackets), ports hex, the expiry in whole seconds. The table shows neither the
//! flags nor the forwarding method.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// IP protocol numbers as the kernel names them in the table (`ip_vs_proto_name`); 0 ("IP")
/// is a fwmark persistence template.
const PROTOCOLS: [(u8, &str); 4] = [(0, "IP"), (6, "TCP"), (17, "UDP"), (132, "SCTP")];

/// One row of /proc/net/ip_vs_conn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcEntry {
    /// The IP protocol number; 0 for a fwmark template ("IP").
    pub protocol: u8,
    pub client: SocketAddr,
    pub virtual_addr: SocketAddr,
    pub dest: SocketAddr,
    pub state: String,
    /// Seconds until the kernel expires it.
    pub expires: u32,
    pub pe_name: Option<String>,
    pub pe_data: Option<String>,
}

/// Why a row does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("{0} fields, at least 9 expected")]
    Fields(usize),
    #[error("unknown protocol {0:?}")]
    Protocol(String),
    #[error("address {0:?} is neither 8 hex digits nor IPv6")]
    Address(String),
    #[error("port {0:?} is not 4 hex digits")]
    Port(String),
    #[error("expiry {0:?} is not a number of seconds")]
    Expiry(String),
}

/// A row that does not parse, and its line (from 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    pub line: usize,
    pub reason: RowError,
}

/// Parses the whole file. The header is recognised and skipped; any other line that does not
/// parse is an error, since a half-read table would make a resync silently incomplete.
pub fn parse(text: &str) -> Result<Vec<ProcEntry>, ParseError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !is_header(line))
        .map(|(i, line)| {
            ProcEntry::parse_line(line).map_err(|reason| ParseError {
                line: i + 1,
                reason,
            })
        })
        .collect()
}

pub fn is_header(line: &str) -> bool {
    line.starts_with("Pro ")
}

impl ProcEntry {
    pub fn parse_line(line: &str) -> Result<ProcEntry, RowError> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 9 {
            return Err(RowError::Fields(fields.len()));
        }
        let protocol = PROTOCOLS
            .iter()
            .find(|(_, name)| *name == fields[0])
            .map(|(number, _)| *number)
            .ok_or_else(|| RowError::Protocol(fields[0].to_owned()))?;
        let endpoint = |a: &str, p: &str| Ok::<_, RowError>(SocketAddr::new(addr(a)?, port(p)?));
        Ok(ProcEntry {
            protocol,
            client: endpoint(fields[1], fields[2])?,
            virtual_addr: endpoint(fields[3], fields[4])?,
            dest: endpoint(fields[5], fields[6])?,
            state: fields[7].to_owned(),
            expires: fields[8]
                .parse()
                .map_err(|_| RowError::Expiry(fields[8].to_owned()))?,
            pe_name: fields.get(9).map(|s| (*s).to_owned()),
            pe_data: (fields.len() > 10).then(|| fields[10..].join(" ")),
        })
    }

    /// The protocol as the table names it.
    pub fn protocol_name(&self) -> &'static str {
        PROTOCOLS
            .iter()
            .find(|(number, _)| *number == self.protocol)
            .map_or("?", |(_, name)| name)
    }

    /// Templates are not marked in the table: "ASSURED" is a template-only state, protocol
    /// "IP" only fwmark templates have, and "NONE" with client port 0 is a template that has
    /// not yet been confirmed (a TCP connection in NONE still has its client port).
    pub fn is_template(&self) -> bool {
        self.protocol == 0
            || self.state == "ASSURED"
            || (self.state == "NONE" && self.client.port() == 0)
    }
}

fn addr(field: &str) -> Result<IpAddr, RowError> {
    let bare = field.trim_start_matches('[').trim_end_matches(']');
    if bare.len() == 8 && !bare.contains(':') {
        return u32::from_str_radix(bare, 16)
            .map(|host| IpAddr::V4(Ipv4Addr::from(host)))
            .map_err(|_| RowError::Address(field.to_owned()));
    }
    bare.parse::<Ipv6Addr>()
        .map(IpAddr::V6)
        .map_err(|_| RowError::Address(field.to_owned()))
}

fn port(field: &str) -> Result<u16, RowError> {
    if field.len() != 4 {
        return Err(RowError::Port(field.to_owned()));
    }
    u16::from_str_radix(field, 16).map_err(|_| RowError::Port(field.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_each_kind() {
        let text = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n\
TCP C0000202 DD39 C0000266 0050 C6336402 1F90 ESTABLISHED     899\n\
TCP C0000202 0000 C0000266 0050 C6336402 1F90 ASSURED         281\n\
IP  C0000202 0000 00000001 0000 C6336402 0000 NONE            120\n\
UDP C0000202 9C44 C0000265 13C4 C0000214 13C4 UDP             299 sip abc@host\n";
        let rows = parse(text).unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].client, "192.0.2.2:56633".parse().unwrap());
        assert_eq!(rows[0].dest, "198.51.100.2:8080".parse().unwrap());
        assert_eq!((rows[0].protocol, rows[0].protocol_name()), (6, "TCP"));
        assert!(!rows[0].is_template());
        assert!(rows[1].is_template() && rows[2].is_template());
        assert_eq!(rows[2].protocol_name(), "IP");
        assert_eq!(rows[3].pe_name.as_deref(), Some("sip"));
        assert_eq!(rows[3].pe_data.as_deref(), Some("abc@host"));
    }

    #[test]
    fn bad_rows_are_errors_with_their_line() {
        let err = parse("TCP C0000202 DD39 C0000266 0050 C6336402 1F90 ESTABLISHED\n").unwrap_err();
        assert_eq!(
            err,
            ParseError {
                line: 1,
                reason: RowError::Fields(8)
            }
        );
        let err = parse("TCP C0000202 DD39 C0000266 50 C6336402 1F90 ESTABLISHED 9\n").unwrap_err();
        assert_eq!(err.reason, RowError::Port("50".to_owned()));
        let err =
            parse("XXX C0000202 DD39 C0000266 0050 C6336402 1F90 ESTABLISHED 9\n").unwrap_err();
        assert_eq!(err.reason, RowError::Protocol("XXX".to_owned()));
        let err =
            parse("TCP C0000202 DD39 C000026Z 0050 C6336402 1F90 ESTABLISHED 9\n").unwrap_err();
        assert_eq!(err.reason, RowError::Address("C000026Z".to_owned()));
    }
}
