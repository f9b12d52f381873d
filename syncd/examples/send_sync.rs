//! Sends one sync message built by this crate's emitter to the kernel's sync group, so a
//! kernel backup daemon (`ipvsadm --start-daemon backup`) can be shown to accept it.
//!
//! ```text
//! send_sync SOURCE_ADDR VERSION SYNC_ID CONN...
//!   CONN = proto/client/virtual/dest/method/state/timeout[/template]
//!   e.g.   tcp/192.0.2.2:40001/192.0.2.100:80/198.51.100.2:8080/masq/ESTABLISHED/900
//! ```
//! SOURCE_ADDR picks the outgoing interface (IP_MULTICAST_IF); TTL is 1 as the kernel's.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::ExitCode;

use socket2::{Domain, Protocol as SockProtocol, Socket, Type};
use syncd::conn::state_from_name;
use syncd::wire::{self, ProtocolVersion, SYNC_GROUP, SYNC_PORT};
use syncd::{Addrs, ConnFlags, Connection, FwdMethod, Protocol};

fn parse_conn(spec: &str) -> Result<Connection, String> {
    let f: Vec<&str> = spec.split('/').collect();
    if f.len() < 7 {
        return Err(format!(
            "{spec}: want proto/client/virtual/dest/method/state/timeout"
        ));
    }
    let protocol = match f[0] {
        "tcp" => Protocol::TCP,
        "udp" => Protocol::UDP,
        "sctp" => Protocol::SCTP,
        other => return Err(format!("unknown protocol {other}")),
    };
    let addr = |s: &str| s.parse::<SocketAddr>().map_err(|e| format!("{s}: {e}"));
    let (client, virt, dest) = (addr(f[1])?, addr(f[2])?, addr(f[3])?);
    let method = match f[4] {
        "masq" => FwdMethod::Masq,
        "local" => FwdMethod::Local,
        "tunnel" => FwdMethod::Tunnel,
        "route" => FwdMethod::Route,
        other => return Err(format!("unknown method {other}")),
    };
    let template = f.get(7) == Some(&"template");
    let state = state_from_name(protocol, f[5], template).ok_or(format!("bad state {}", f[5]))?;
    let timeout = f[6].parse().map_err(|e| format!("timeout {}: {e}", f[6]))?;
    let mut flags = ConnFlags::default().with_fwd_method(method);
    if template {
        flags.0 |= ConnFlags::TEMPLATE;
    }
    Ok(Connection {
        protocol,
        addrs: Addrs::new(client.ip(), virt.ip(), dest.ip()).ok_or("mixed address families")?,
        cport: client.port(),
        vport: virt.port(),
        dport: dest.port(),
        fwmark: 0,
        flags,
        state,
        timeout,
        seq: None,
        pe_data: None,
        pe_name: None,
    })
}

fn run(args: &[String]) -> Result<(), String> {
    if args.len() < 4 {
        return Err("usage: send_sync SOURCE_ADDR VERSION(0|1) SYNC_ID CONN...".into());
    }
    let source: Ipv4Addr = args[0].parse().map_err(|e| format!("{}: {e}", args[0]))?;
    let version = match args[1].as_str() {
        "0" => ProtocolVersion::V0,
        "1" => ProtocolVersion::V1,
        other => return Err(format!("version {other}")),
    };
    let sync_id: u8 = args[2].parse().map_err(|e| format!("sync id: {e}"))?;
    let conns = args[3..]
        .iter()
        .map(|s| parse_conn(s))
        .collect::<Result<Vec<_>, _>>()?;
    let messages = wire::build_messages(version, sync_id, wire::DEFAULT_MAX_LEN, &conns)
        .map_err(|e| e.to_string())?;

    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(SockProtocol::UDP))
        .map_err(|e| format!("socket: {e}"))?;
    socket
        .set_multicast_if_v4(&source)
        .map_err(|e| format!("multicast if: {e}"))?;
    socket
        .set_multicast_ttl_v4(1)
        .map_err(|e| format!("ttl: {e}"))?;
    socket
        .bind(&SocketAddrV4::new(source, 0).into())
        .map_err(|e| format!("bind: {e}"))?;
    let group = SocketAddrV4::new(SYNC_GROUP, SYNC_PORT);
    for message in &messages {
        let hex: String = message.iter().map(|b| format!("{b:02x}")).collect();
        println!("sending {} bytes: {hex}", message.len());
        socket
            .send_to(message, &group.into())
            .map_err(|e| format!("send: {e}"))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("send_sync: {e}");
            ExitCode::FAILURE
        }
    }
}
