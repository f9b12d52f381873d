//! /proc/net/ip_vs_conn: the only way to read the kernel's connection table (there is no
//! netlink call for it). A master's syncd reads it at start and on demand so its mirror holds
//! connections the kernel synced before syncd was watching.
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
//! flags nor the forwarding method: [`ProcEntry::to_connection`] takes the method from the
//! caller (who knows the service's destinations) and derives the flags a kernel master would
//! send for that state.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::conn::{Addrs, ConnFlags, Connection, FwdMethod, Protocol, state_from_name};

/// One row of /proc/net/ip_vs_conn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcEntry {
    pub protocol: Protocol,
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
#[error("line {line}: {reason}")]
pub struct ParseError {
    pub line: usize,
    pub reason: String,
}

/// Parses the whole file. The header is recognised and skipped; any other line that does not
/// parse is an error, since a half-read table would make a resync silently incomplete.
pub fn parse(text: &str) -> Result<Vec<ProcEntry>, ParseError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with("Pro "))
        .map(|(i, line)| {
            parse_line(line).map_err(|reason| ParseError {
                line: i + 1,
                reason,
            })
        })
        .collect()
}

fn parse_line(line: &str) -> Result<ProcEntry, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 9 {
        return Err(format!("{} fields, at least 9 expected", fields.len()));
    }
    let protocol = match fields[0] {
        "TCP" => Protocol::TCP,
        "UDP" => Protocol::UDP,
        "SCTP" => Protocol::SCTP,
        "IP" => Protocol::IP,
        other => return Err(format!("unknown protocol {other:?}")),
    };
    let client = SocketAddr::new(addr(fields[1])?, port(fields[2])?);
    let virtual_addr = SocketAddr::new(addr(fields[3])?, port(fields[4])?);
    let dest = SocketAddr::new(addr(fields[5])?, port(fields[6])?);
    let expires = fields[8]
        .parse()
        .map_err(|e| format!("expiry {:?}: {e}", fields[8]))?;
    Ok(ProcEntry {
        protocol,
        client,
        virtual_addr,
        dest,
        state: fields[7].to_owned(),
        expires,
        pe_name: fields.get(9).map(|s| (*s).to_owned()),
        pe_data: (fields.len() > 10).then(|| fields[10..].join(" ")),
    })
}

fn addr(field: &str) -> Result<IpAddr, String> {
    let bare = field.trim_start_matches('[').trim_end_matches(']');
    if bare.len() == 8 && !bare.contains(':') {
        let host = u32::from_str_radix(bare, 16).map_err(|e| format!("address {field:?}: {e}"))?;
        return Ok(IpAddr::V4(Ipv4Addr::from(host)));
    }
    bare.parse::<Ipv6Addr>()
        .map(IpAddr::V6)
        .map_err(|e| format!("address {field:?}: {e}"))
}

fn port(field: &str) -> Result<u16, String> {
    if field.len() != 4 {
        return Err(format!("port {field:?} is not 4 hex digits"));
    }
    u16::from_str_radix(field, 16).map_err(|e| format!("port {field:?}: {e}"))
}

impl ProcEntry {
    /// Templates are not marked in the table: "ASSURED" is a template-only state, protocol
    /// "IP" only fwmark templates have, and "NONE" with client port 0 is a template that has
    /// not yet been confirmed (a TCP connection in NONE still has its client port).
    pub fn is_template(&self) -> bool {
        self.protocol == Protocol::IP
            || self.state == "ASSURED"
            || (self.state == "NONE" && self.client.port() == 0)
    }

    /// The entry a kernel master would sync for this row, forwarded by `fwd`, with the time
    /// left as its timeout. Flags as the kernel keeps them: a connection is INACTIVE until the
    /// protocol marks it established (`ip_vs_bind_dest` starts every one inactive, only TCP
    /// and SCTP clear it), templates stay INACTIVE. `None` when the row has mixed address
    /// families (a sync entry has one) or a state the protocol does not know.
    pub fn to_connection(&self, fwd: FwdMethod) -> Option<Connection> {
        let template = self.is_template();
        let state = state_from_name(self.protocol, &self.state, template)
            .or_else(|| (self.protocol == Protocol::IP && self.state == "HOST").then_some(0))?;
        let established = !template
            && matches!(self.protocol, Protocol::TCP | Protocol::SCTP)
            && self.state == "ESTABLISHED";
        let mut flags = ConnFlags::default().with_fwd_method(fwd);
        if template {
            flags.0 |= ConnFlags::TEMPLATE;
        }
        if !established {
            flags.0 |= ConnFlags::INACTIVE;
        }
        // `__ip_vs_update_dest`: a director sees no replies unless it does NAT.
        if fwd != FwdMethod::Masq {
            flags.0 |= ConnFlags::NOOUTPUT;
        }
        let (pe_name, pe_data) = match (&self.pe_name, &self.pe_data) {
            (Some(name), Some(data)) => (
                Some(name.as_bytes().to_vec()),
                Some(data.as_bytes().to_vec()),
            ),
            _ => (None, None),
        };
        Some(Connection {
            protocol: self.protocol,
            addrs: Addrs::new(self.client.ip(), self.virtual_addr.ip(), self.dest.ip())?,
            cport: self.client.port(),
            vport: self.virtual_addr.port(),
            dport: self.dest.port(),
            fwmark: 0,
            flags,
            state,
            // A zero timeout would mean "the state's default" on the wire.
            timeout: self.expires.max(1),
            seq: None,
            pe_data,
            pe_name,
        })
    }
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
        assert!(!rows[0].is_template());
        let conn = rows[0].to_connection(FwdMethod::Masq).unwrap();
        assert_eq!((conn.state, conn.flags.0, conn.timeout), (1, 0, 899));
        assert!(rows[1].is_template() && rows[2].is_template());
        let template = rows[1].to_connection(FwdMethod::Route).unwrap();
        assert_eq!(
            template.flags.0,
            ConnFlags::TEMPLATE
                | ConnFlags::INACTIVE
                | ConnFlags::NOOUTPUT
                | FwdMethod::Route.bits()
        );
        assert_eq!(template.state, 1);
        assert_eq!(rows[3].pe_name.as_deref(), Some("sip"));
        assert_eq!(rows[3].pe_data.as_deref(), Some("abc@host"));
        let udp = rows[3].to_connection(FwdMethod::Masq).unwrap();
        assert!(udp.flags.is_inactive());
        assert_eq!(udp.pe_name.as_deref(), Some(&b"sip"[..]));
    }

    #[test]
    fn bad_rows_are_errors_with_their_line() {
        let err = parse("TCP C0000202 DD39 C0000266 0050 C6336402 1F90 ESTABLISHED\n").unwrap_err();
        assert_eq!(err.line, 1);
        let err = parse("TCP C0000202 DD39 C0000266 50 C6336402 1F90 ESTABLISHED 9\n").unwrap_err();
        assert!(err.reason.contains("port"), "{err}");
        let err =
            parse("XXX C0000202 DD39 C0000266 0050 C6336402 1F90 ESTABLISHED 9\n").unwrap_err();
        assert!(err.reason.contains("protocol"), "{err}");
    }
}
