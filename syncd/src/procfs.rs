//! /proc/net/ip_vs_conn rows (parsed by [`lvs_ipvs::conn_table`]) as the sync entries a
//! kernel master would send for them. The table shows neither the flags nor the forwarding
//! method: [`ToConnection::to_connection`] takes the method from the caller (who knows the
//! service's destinations) and derives the flags a kernel master would send for that state.

pub use lvs_ipvs::conn_table::{ParseError, ProcEntry, RowError, parse};

use crate::conn::{Addrs, ConnFlags, Connection, FwdMethod, Protocol, state_from_name};

pub trait ToConnection {
    /// The entry a kernel master would sync for this row, forwarded by `fwd`.
    fn to_connection(&self, fwd: FwdMethod) -> Option<Connection>;
}

impl ToConnection for ProcEntry {
    /// The entry a kernel master would sync for this row, forwarded by `fwd`, with the time
    /// left as its timeout. Flags as the kernel keeps them: a connection is INACTIVE until the
    /// protocol marks it established (`ip_vs_bind_dest` starts every one inactive, only TCP
    /// and SCTP clear it), templates stay INACTIVE. `None` when the row has mixed address
    /// families (a sync entry has one) or a state the protocol does not know.
    fn to_connection(&self, fwd: FwdMethod) -> Option<Connection> {
        let template = self.is_template();
        let protocol = Protocol(self.protocol);
        let state = state_from_name(protocol, &self.state, template)
            .or_else(|| (self.protocol == 0 && self.state == "HOST").then_some(0))?;
        let established = !template
            && matches!(protocol, Protocol::TCP | Protocol::SCTP)
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
            protocol,
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
    fn rows_become_what_a_kernel_master_sends() {
        let text = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n\
TCP C0000202 DD39 C0000266 0050 C6336402 1F90 ESTABLISHED     899\n\
TCP C0000202 0000 C0000266 0050 C6336402 1F90 ASSURED         281\n\
IP  C0000202 0000 00000001 0000 C6336402 0000 NONE            120\n\
UDP C0000202 9C44 C0000265 13C4 C0000214 13C4 UDP             299 sip abc@host\n";
        let rows = parse(text).unwrap();
        let conn = rows[0].to_connection(FwdMethod::Masq).unwrap();
        assert_eq!((conn.state, conn.flags.0, conn.timeout), (1, 0, 899));
        let template = rows[1].to_connection(FwdMethod::Route).unwrap();
        assert_eq!(
            template.flags.0,
            ConnFlags::TEMPLATE
                | ConnFlags::INACTIVE
                | ConnFlags::NOOUTPUT
                | FwdMethod::Route.bits()
        );
        assert_eq!(template.state, 1);
        let udp = rows[3].to_connection(FwdMethod::Masq).unwrap();
        assert!(udp.flags.is_inactive());
        assert_eq!(udp.pe_name.as_deref(), Some(&b"sip"[..]));
    }
}
