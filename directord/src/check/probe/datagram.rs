//! Probes over datagrams: UDP exchanges, DNS, SIP OPTIONS, RADIUS, and ICMP echo.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::{ProbeError, ProbeResult, down, excerpt, io_failure};
use crate::check::spec::{Dns, Exchange, Radius, Rcode, Route, Sip};
use crate::check::wire::http::{in_ranges, parse_status_line, ranges_text};
use crate::check::wire::{WireError, dns, radius};

/// Changing bits for ids, tags and authenticators: not secrets, only distinct per probe so a
/// late reply to an earlier probe is not taken for this one's.
fn nonce() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    // splitmix64 finaliser: spreads consecutive timestamps over all bits.
    let mut z = nanos.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A UDP socket connected to `addr`, so the kernel reports ICMP port unreachable as
/// ECONNREFUSED on the next receive and drops datagrams from anyone else.
/// From the check's source when it has one (keepalived's bindto and bind_port).
async fn connected(route: Route) -> Result<UdpSocket, ProbeError> {
    let local: SocketAddr = route.from.unwrap_or(if route.to.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    });
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| io_failure("bind", &e))?;
    socket
        .connect(route.to)
        .await
        .map_err(|e| io_failure("connect", &e))?;
    Ok(socket)
}

fn recv_failure(e: &io::Error) -> ProbeError {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        "port unreachable".into()
    } else {
        io_failure("receive", e)
    }
}

/// keepalived UDP_CHECK without require_reply: an ICMP port unreachable is down, a reply or
/// silence until the deadline is up.
pub async fn udp_silence(
    route: Route,
    send: Option<&[u8]>,
    deadline: Instant,
) -> super::super::Outcome {
    use super::super::Outcome;
    let socket = match connected(route).await {
        Ok(s) => s,
        Err(e) => return super::outcome(Err(e)),
    };
    if let Err(e) = socket.send(send.unwrap_or_default()).await {
        return super::outcome(Err(recv_failure(&e)));
    }
    let mut buf = [0u8; 512];
    match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
        Ok(Ok(_)) => Outcome::up("udp reply"),
        Ok(Err(e)) => super::outcome(Err(recv_failure(&e))),
        Err(_) => Outcome::up("no reply and no ICMP unreachable"),
    }
}

pub async fn udp_expect(exchange: &Exchange, route: Route, max: usize) -> ProbeResult {
    let socket = connected(route).await?;
    socket
        .send(exchange.send.as_deref().unwrap_or_default())
        .await
        .map_err(|e| recv_failure(&e))?;
    let mut buf = vec![0u8; max.clamp(1, 65535)];
    let n = socket.recv(&mut buf).await.map_err(|e| recv_failure(&e))?;
    let reply = &buf[..n];
    match &exchange.expect {
        Some(pattern) if !pattern.is_match(reply) => Err(down!(
            Mismatch,
            "reply {:?} does not match {:?}",
            excerpt(reply),
            pattern.as_str()
        )),
        _ => Ok("udp reply matches".to_owned()),
    }
}

pub async fn dns(check: &Dns, route: Route) -> ProbeResult {
    let socket = connected(route).await?;
    let query = dns::Query {
        id: nonce() as u16,
        name: check.query.clone(),
        record_type: check.record_type,
    };
    let bytes = query.to_bytes().map_err(|e| format!("query: {e}"))?;
    socket.send(&bytes).await.map_err(|e| recv_failure(&e))?;
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.recv(&mut buf).await.map_err(|e| recv_failure(&e))?;
        let reply = dns::Packet::new_checked(&buf[..n])
            .and_then(|p| dns::Reply::parse(&p))
            .map_err(|e| format!("bad DNS reply: {e}"))?;
        if reply.id != query.id {
            continue;
        }
        let rcode = Rcode::name(reply.rcode);
        return match check.expect_rcode {
            Some(expected) if expected as u8 == reply.rcode => Ok(format!("rcode {rcode}")),
            Some(expected) => Err(down!(
                Status,
                "rcode {rcode}, expected {}",
                Rcode::name(expected as u8)
            )),
            None if reply.rcode != 0 => Err(down!(Status, "rcode {rcode}")),
            None if reply.answer_types.contains(&check.record_type) => {
                Ok(format!("{} answer(s)", reply.answer_types.len()))
            }
            // Over UDP a large answer comes back truncated; the server did answer.
            None if reply.truncated => Ok("truncated reply".to_owned()),
            None => Err(down!(Mismatch, "no answer of type {}", check.record_type)),
        };
    }
}

pub async fn sip(check: &Sip, route: Route, max: usize) -> ProbeResult {
    let socket = connected(route).await?;
    let local = socket.local_addr().map_err(|e| io_failure("socket", &e))?;
    let host = check.host.clone().unwrap_or_else(|| route.to.to_string());
    let tag = nonce();
    let request = format!(
        "OPTIONS sip:{host} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK{tag:x};rport\r\n\
         Max-Forwards: 70\r\n\
         To: <sip:{host}>\r\n\
         From: <sip:directord@{local}>;tag={tag:x}\r\n\
         Call-ID: {tag:x}@{local}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Contact: <sip:directord@{local}>\r\n\
         Accept: application/sdp\r\n\
         Content-Length: 0\r\n\r\n"
    );
    socket
        .send(request.as_bytes())
        .await
        .map_err(|e| recv_failure(&e))?;
    let mut buf = vec![0u8; max.clamp(64, 65535)];
    loop {
        let n = socket.recv(&mut buf).await.map_err(|e| recv_failure(&e))?;
        let text = String::from_utf8_lossy(&buf[..n]);
        let line = text.lines().next().unwrap_or_default();
        let status = parse_status_line(line, "SIP/2.0")
            .ok_or_else(|| format!("not a SIP response: {}", excerpt(line.as_bytes())))?;
        // 1xx are provisional: the final answer follows.
        if status < 200 {
            continue;
        }
        return if in_ranges(status, &check.statuses) {
            Ok(format!("SIP status {status}"))
        } else {
            Err(down!(
                Status,
                "SIP status {status} not in {}",
                ranges_text(&check.statuses)
            ))
        };
    }
}

/// Only a signed Access-Accept is up, as in ldirectord: the server works, shares our secret
/// (the Response Authenticator proves it) and its user backend accepts the check's login. A
/// reject means the backend behind the server (files, LDAP, SQL) turns the configured user
/// away, which real users would meet too; a challenge asks for a second round the check
/// cannot answer.
pub async fn radius(check: &Radius, route: Route) -> ProbeResult {
    let socket = connected(route).await?;
    let bits = nonce();
    let mut authenticator = [0u8; 16];
    authenticator[..8].copy_from_slice(&bits.to_be_bytes());
    authenticator[8..].copy_from_slice(&nonce().rotate_left(17).to_le_bytes());
    let request = radius::AccessRequest {
        identifier: bits as u8,
        authenticator,
        user: check.user.clone(),
        password: check.password.as_bytes().to_vec(),
        nas_identifier: "directord-check".to_owned(),
    };
    let bytes = request
        .to_bytes(&check.secret)
        .map_err(|e| format!("request: {e}"))?;
    socket.send(&bytes).await.map_err(|e| recv_failure(&e))?;
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.recv(&mut buf).await.map_err(|e| recv_failure(&e))?;
        let packet =
            radius::Packet::new_checked(&buf[..n]).map_err(|e| format!("bad RADIUS reply: {e}"))?;
        match radius::verify_reply(&packet, request.identifier, &authenticator, &check.secret) {
            Ok(radius::ACCESS_ACCEPT) => return Ok("Access-Accept".to_owned()),
            Ok(radius::ACCESS_REJECT) => return Err(down!(Rejected, "Access-Reject")),
            Ok(radius::ACCESS_CHALLENGE) => {
                return Err("Access-Challenge (multi-round login not supported)".into());
            }
            Ok(code) => return Err(down!(Protocol, "RADIUS reply code {code}")),
            Err(WireError::WrongIdentifier) => continue,
            Err(e) => return Err(down!(Protocol, "RADIUS reply: {e}")),
        }
    }
}

// ---------------------------------------------------------------- ping

/// An ICMP socket: the unprivileged datagram kind where net.ipv4.ping_group_range allows it,
/// else raw (root or CAP_NET_RAW).
fn icmp_socket(ip: IpAddr) -> io::Result<(Socket, bool)> {
    let (domain, protocol) = match ip {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    match Socket::new(domain, Type::DGRAM, Some(protocol)) {
        Ok(s) => Ok((s, false)),
        Err(_) => Socket::new(domain, Type::RAW, Some(protocol)).map(|s| (s, true)),
    }
}

pub fn echo_request(v6: bool, id: u16, seq: u16) -> Vec<u8> {
    let mut packet = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(b"directord-check!");
    // The kernel fills in the ICMPv6 checksum, which covers a pseudo-header we do not know.
    if !v6 {
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

pub async fn ping(ip: IpAddr) -> ProbeResult {
    let (socket, raw) = icmp_socket(ip).map_err(|e| io_failure("ICMP socket", &e))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| io_failure("ICMP socket", &e))?;
    socket
        .connect(&SockAddr::from(SocketAddr::new(ip, 0)))
        .map_err(|e| io_failure("ICMP connect", &e))?;
    // Tokio's UDP socket only sends and receives on a connected descriptor, which is all an
    // ICMP socket needs, and spares unsafe fd registration.
    let socket = UdpSocket::from_std(std::net::UdpSocket::from(socket))
        .map_err(|e| io_failure("ICMP socket", &e))?;
    let v6 = ip.is_ipv6();
    let bits = nonce();
    let (id, seq) = (bits as u16, (bits >> 16) as u16);
    socket
        .send(&echo_request(v6, id, seq))
        .await
        .map_err(|e| io_failure("ICMP send", &e))?;
    let reply_type = if v6 { 129 } else { 0 };
    let mut buf = [0u8; 1500];
    loop {
        let n = socket
            .recv(&mut buf)
            .await
            .map_err(|e| io_failure("ICMP receive", &e))?;
        let bytes = &buf[..n];
        // Raw IPv4 sockets hand over the IP header too; datagram and IPv6 ones do not.
        let icmp = if raw && !v6 {
            let ihl = usize::from(bytes.first().copied().unwrap_or(0) & 0x0f) * 4;
            bytes.get(ihl..).unwrap_or_default()
        } else {
            bytes
        };
        if icmp.len() < 8 || icmp[0] != reply_type {
            continue;
        }
        // Datagram ICMP sockets rewrite the identifier to their own; the sequence is ours.
        let reply_seq = u16::from_be_bytes([icmp[6], icmp[7]]);
        let reply_id = u16::from_be_bytes([icmp[4], icmp[5]]);
        if reply_seq == seq && (!raw || reply_id == id) {
            return Ok("echo reply".to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_request_checksum_verifies() {
        let packet = echo_request(false, 0x1234, 1);
        assert_eq!(
            checksum(&packet),
            0,
            "a packet with its checksum sums to zero"
        );
        assert_eq!(&packet[..2], &[8, 0]);
        assert_eq!(echo_request(true, 1, 1)[..4], [128, 0, 0, 0]);
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(nonce(), nonce());
    }
}
