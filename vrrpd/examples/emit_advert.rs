//! Prints, as hex, the advertisement an instance would send: used by
//! tests/fixtures/interop.sh to feed our bytes to a real keepalived.
//!
//! usage: emit_advert <2|3> <vrid> <priority> <interval-ms> <src-ip> <password|-> <vip>...

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use vrrpd::instance::{GarpConfig, InstanceConfig};
use vrrpd::wire::{Auth, IpPair, VRRP_GROUP_V4, VRRP_GROUP_V6, Version};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 6 {
        eprintln!(
            "usage: emit_advert <2|3> <vrid> <priority> <interval-ms> <src-ip> <password|-> <vip>..."
        );
        return ExitCode::from(2);
    }
    let parse = || -> Result<(InstanceConfig, u8, IpPair), String> {
        let version = match args[0].as_str() {
            "2" => Version::V2,
            "3" => Version::V3,
            v => return Err(format!("version {v}")),
        };
        let vrid: u8 = args[1].parse().map_err(|e| format!("vrid: {e}"))?;
        let priority: u8 = args[2].parse().map_err(|e| format!("priority: {e}"))?;
        let interval =
            Duration::from_millis(args[3].parse().map_err(|e| format!("interval: {e}"))?);
        let src: IpAddr = args[4].parse().map_err(|e| format!("src: {e}"))?;
        let auth = match args[5].as_str() {
            "-" => Auth::None,
            p => Auth::simple(p).ok_or("password longer than 8 bytes")?,
        };
        let vips = args[6..]
            .iter()
            .map(|a| a.parse::<IpAddr>().map_err(|e| format!("vip {a}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let dst: IpAddr = if src.is_ipv4() {
            VRRP_GROUP_V4.into()
        } else {
            VRRP_GROUP_V6.into()
        };
        let cfg = InstanceConfig {
            vrid,
            version,
            // The configured priority must be valid; the advert may carry 0.
            priority: priority.max(1),
            advert_interval: interval,
            preempt: true,
            preempt_delay: Duration::ZERO,
            primary_addr: src,
            vips,
            auth,
            garp: GarpConfig::default(),
        };
        cfg.check().map_err(|e| e.to_string())?;
        Ok((cfg, priority, IpPair::new(src, dst).ok_or("family")?))
    };
    match parse() {
        Ok((cfg, priority, ip)) => {
            let bytes = cfg.advert(priority).to_bytes(&ip);
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            println!("{hex}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("emit_advert: {e}");
            ExitCode::from(2)
        }
    }
}
