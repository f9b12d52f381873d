//! keepalived's `bfd_instance` blocks to `[[bfd.session]]`.
//!
//! keepalived's defaults are written out, as ours differ: min_rx and min_tx 10 ms,
//! multiplier 5 (ours: 100 ms x 3). Its idle_tx (the rate while down) is RFC 5880's fixed
//! 1 s here; its ttl is always 255 for single hop.

use lvs_config::{BfdSession, Duration};

use super::parse::Node;
use super::{Context, ImportError, ip, number, number_between, required_arg};

/// keepalived's BFD timers are in milliseconds.
fn millis(node: &Node) -> Result<Duration, ImportError> {
    let ms: u64 = number_between(node, 1, node.key(), 1, 4_294_967)?;
    Ok(Duration::from_millis(ms))
}

impl Context {
    pub(super) fn bfd_instance(&mut self, node: &Node) -> Result<(), ImportError> {
        let mark = self.out.mark();
        let name = required_arg(node, 1, "a name")?.to_owned();
        let mut session = BfdSession {
            name,
            peer: std::net::Ipv4Addr::UNSPECIFIED.into(),
            local_address: None,
            interface: None,
            interval: Duration::from_millis(10),
            min_rx: Some(Duration::from_millis(10)),
            multiplier: 5,
            multihop: false,
            passive: false,
            authentication: None,
        };
        let mut peer = None;
        let mut weight = 0;
        for child in node.children() {
            match child.key() {
                "neighbor_ip" => peer = Some(ip(child, required_arg(child, 1, "an address")?)?),
                "source_ip" => {
                    session.local_address = Some(ip(child, required_arg(child, 1, "an address")?)?);
                }
                "min_rx" => session.min_rx = Some(millis(child)?),
                "min_tx" => session.interval = millis(child)?,
                "multiplier" => {
                    session.multiplier = number_between(child, 1, "multiplier", 1, 255)?;
                }
                "passive" => session.passive = true,
                "weight" => weight = number_between(child, 1, "weight", -253, 253)?,
                "max_hops" => session.multihop = number::<u8>(child, 1)? > 1,
                "idle_tx" => self.skip(child, "the rate while down is RFC 5880's 1 s"),
                "ttl" => self.skip(child, "single hop always sends TTL 255"),
                _ => self.skip(child, "ignored"),
            }
        }
        let Some(peer) = peer else {
            self.skip(node, "no neighbor_ip; not imported");
            return Ok(());
        };
        session.peer = peer;
        if session
            .local_address
            .is_some_and(|l| l.is_ipv6() != peer.is_ipv6())
        {
            self.skip(
                node,
                "source_ip and neighbor_ip of different families; source_ip left out",
            );
            session.local_address = None;
        }
        self.bfd_weights.insert(session.name.clone(), weight);
        let block = self.out.block(node.at.clone(), session, mark);
        self.out.bfd_sessions.push(block);
        Ok(())
    }
}
