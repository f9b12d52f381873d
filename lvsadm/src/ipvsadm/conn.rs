//! `-L -c -n`: /proc/net/ip_vs_conn rendered the way ipvsadm renders it.

use std::fmt::Write as _;
use std::net::SocketAddr;

use lvs_ipvs::conn_table::{ProcEntry, is_header};

fn endpoint(addr: SocketAddr) -> String {
    // ipvsadm prints IPv6 in brackets, IPv4 bare, both with the port.
    addr.to_string()
}

/// Rows that do not parse are left out, as ipvsadm leaves out what its sscanf cannot read.
pub fn format(proc_text: &str) -> String {
    let mut out = String::from(
        "IPVS connection entries\npro expire state       source             virtual            destination\n",
    );
    let rows = proc_text
        .lines()
        .filter(|line| !is_header(line))
        .filter_map(|line| ProcEntry::parse_line(line).ok());
    for row in rows {
        let _ = write!(
            out,
            "{:<3} {:02}:{:02}  {:<11} {:<18} {:<18} {}",
            row.protocol_name(),
            row.expires / 60,
            row.expires % 60,
            row.state,
            endpoint(row.client),
            endpoint(row.virtual_addr),
            endpoint(row.dest),
        );
        // ipvsadm reads one word of PE data.
        if let (Some(name), Some(data)) = (&row.pe_name, &row.pe_data) {
            let first = data.split_whitespace().next().unwrap_or_default();
            let _ = write!(out, " {name} {first}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_ipv4_and_ipv6_entries() {
        let proc_text = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n\
TCP C0000201 C350 C0000264 0050 C6336402 1F90 ESTABLISHED     899\n\
UDP 2001:0db8:0000:0000:0000:0000:0000:0009 1000 2001:0db8:0000:0000:0000:0000:0000:0001 0035 2001:0db8:0000:0000:0000:0000:0000:0002 0035 UDP              61\n";
        assert_eq!(
            format(proc_text),
            "IPVS connection entries\n\
pro expire state       source             virtual            destination\n\
TCP 14:59  ESTABLISHED 192.0.2.1:50000    192.0.2.100:80     198.51.100.2:8080\n\
UDP 01:01  UDP         [2001:db8::9]:4096 [2001:db8::1]:53   [2001:db8::2]:53\n"
        );
    }

    /// /proc/net/ip_vs_conn captured in UML; the expected lines are what ipvsadm 1.31
    /// printed for it (compare-ipvsadm.sh compared them with the expiry column masked).
    #[test]
    fn renders_a_captured_kernel_table() {
        let proc_text = include_str!("../../tests/fixtures/proc-ip_vs_conn.txt");
        assert_eq!(
            format(proc_text),
            "IPVS connection entries\n\
pro expire state       source             virtual            destination\n\
TCP 00:58  SYN_RECV    192.0.2.1:40000    192.0.2.100:80     198.51.100.2:8080\n\
UDP 04:59  UDP         [2001:db8::1]:40001 [2001:db8::100]:53 [2001:db8::4]:53\n"
        );
    }
}
