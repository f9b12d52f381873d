//! A LAN for VRRP tests: a bridge in its own namespace and hosts each with `eth0` plugged
//! into one of its ports (`p0`, `p1`, ... in the order given).

use crate::netns::{Netns, veth};

pub struct Lan {
    pub hosts: Vec<Netns>,
    pub bridge: Netns,
}

impl Lan {
    /// IPv4 hosts, each `(role, cidr)`.
    pub fn new(hosts: &[(&str, &str)]) -> Result<Self, String> {
        Self::build("lan", hosts, false)
    }

    /// Hosts with IPv6 addresses and duplicate address detection off, so their link-local and
    /// global addresses are usable as soon as the links are up.
    pub fn new6(hosts: &[(&str, &str)]) -> Result<Self, String> {
        Self::build("lan6", hosts, true)
    }

    fn build(role: &str, hosts: &[(&str, &str)], ipv6: bool) -> Result<Self, String> {
        let bridge = Netns::new(role)?;
        bridge.bridge("br0")?;
        if ipv6 {
            // Snooping would make ff02::12 delivery depend on MLD timing; a plain switch floods.
            bridge.ip(&[
                "link",
                "set",
                "br0",
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ])?;
        }
        let mut made = Vec::new();
        for (i, (role, cidr)) in hosts.iter().enumerate() {
            let host = Netns::new(role)?;
            if ipv6 {
                host.sysctl("net.ipv6.conf.all.accept_dad=0")?;
                host.sysctl("net.ipv6.conf.default.accept_dad=0")?;
            }
            let port = format!("p{i}");
            veth(&host, "eth0", &bridge, &port)?;
            bridge.attach(&port, "br0")?;
            if ipv6 {
                host.ip(&["addr", "add", cidr, "dev", "eth0", "nodad"])?;
                host.ip(&["link", "set", "eth0", "up"])?;
            } else {
                host.addr("eth0", cidr)?;
            }
            made.push(host);
        }
        Ok(Lan {
            hosts: made,
            bridge,
        })
    }

    pub fn host(&self, i: usize) -> &Netns {
        &self.hosts[i]
    }

    /// The bridge port through which the bridge last saw `mac` (its forwarding database).
    pub fn port_of(&self, mac: &str) -> Option<String> {
        let out = self
            .bridge
            .stdout(&["bridge", "fdb", "show", "br", "br0"])
            .ok()?;
        out.lines().find_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            (words.first() == Some(&mac) && words.get(1) == Some(&"dev"))
                .then(|| words.get(2).map(|port| (*port).to_owned()))
                .flatten()
        })
    }
}

/// Whether any interface of `host` carries `ip`.
pub fn holds(host: &Netns, ip: &str) -> bool {
    host.stdout(&["ip", "-o", "addr", "show"])
        .is_ok_and(|out| out.contains(&format!(" {ip}/")))
}

/// The MAC of `host`'s `eth0`.
pub fn mac_of(host: &Netns) -> Result<String, String> {
    let out = host.stdout(&["cat", "/sys/class/net/eth0/address"])?;
    Ok(out.trim().to_owned())
}

/// The link-layer address `host`'s neighbour table on `eth0` has for `ip` (IPv4 or IPv6).
pub fn neighbour_mac(host: &Netns, ip: &str) -> Option<String> {
    let out = host
        .stdout(&["ip", "neigh", "show", ip, "dev", "eth0"])
        .ok()?;
    let words: Vec<&str> = out.split_whitespace().collect();
    words
        .iter()
        .position(|w| *w == "lladdr")
        .and_then(|i| words.get(i + 1))
        .map(|mac| (*mac).to_owned())
}
