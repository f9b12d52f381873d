//! `[announce]`: VIPs announced by a routing engine (FRR or BIRD) over BGP, for directors that
//! all serve at once (issue 18). vrrpd installs a route per VIP with a protocol number of our
//! own while the VIP's services hold quorum; the engine redistributes exactly those routes
//! (`lvsadm routing-config` prints its part). Our daemons never speak BGP.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::diagnostic::KeyPath;
use crate::model::Config;
use crate::path;

/// The kernel routing protocol number of the VIP routes when `protocol` is not given.
pub const DEFAULT_PROTOCOL: u8 = 250;

/// Kernel route protocol numbers someone else owns: the kernel's (0-4), the ones iproute2
/// names (zebra 11, bird 12, dhcp 16, keepalived 18, babel 42, openr 99), and FRR's zebra
/// daemons' 186-198, which zebra takes for its own routes and deletes when it starts.
const TAKEN_PROTOCOLS: &[(u8, u8, &str)] = &[
    (0, 4, "the kernel's"),
    (
        8,
        16,
        "named in /etc/iproute2/rt_protos (gated .. dhcp; 11 is FRR zebra's, 12 BIRD's)",
    ),
    (18, 18, "keepalived's"),
    (42, 42, "babel's"),
    (99, 99, "openr's"),
    (
        186,
        198,
        "FRR's (zebra removes routes of its own protocols when it starts)",
    ),
];

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Announce {
    /// The kernel routing protocol number on the VIP routes (`ip route ... proto N`): the
    /// engine redistributes routes of this number only, and a restarted vrrpd removes every
    /// route of it that it did not add. Must not be one that FRR, BIRD, keepalived or the
    /// kernel use. No keepalived equivalent (keepalived has no BGP mode; PyBal's and
    /// MetalLB's speak BGP themselves).
    #[serde(default = "default_protocol")]
    pub protocol: u8,
    /// The VIPs to announce.
    #[serde(default)]
    pub vip: Vec<AnnounceVip>,
}

fn default_protocol() -> u8 {
    DEFAULT_PROTOCOL
}

/// One VIP announced while all its services hold quorum, directord answers and the operator has
/// not drained it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnnounceVip {
    /// The VIP, a host address: announced as a /32 (IPv4) or /128 (IPv6) route.
    pub address: IpAddr,
    /// Named virtual servers that must all hold their quorum (as directord reports it) for the
    /// VIP to be announced.
    pub services: Vec<String>,
    /// BGP MED set on the announcement (lower wins at the router); the engine's default when
    /// absent. PyBal's `bgp-med`.
    pub med: Option<u32>,
    /// BGP LOCAL_PREF set on the announcement (higher wins, iBGP only); the engine's default
    /// when absent.
    pub local_pref: Option<u32>,
    /// BGP communities added to the announcement: "ASN:VALUE" (each 0..65535), "no-export" or
    /// "no-advertise".
    #[serde(default)]
    pub communities: Vec<Community>,
}

/// A standard BGP community (RFC 1997).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Community {
    Value(u16, u16),
    NoExport,
    NoAdvertise,
}

impl Community {
    /// The two 16-bit halves, well-known ones included (RFC 1997: 65535:65281, 65535:65282).
    pub fn halves(self) -> (u16, u16) {
        match self {
            Community::Value(asn, value) => (asn, value),
            Community::NoExport => (65535, 65281),
            Community::NoAdvertise => (65535, 65282),
        }
    }
}

/// Text that is not a BGP community.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a BGP community: ASN:VALUE (each 0..65535), no-export or no-advertise")]
pub struct NotACommunity(pub String);

impl FromStr for Community {
    type Err = NotACommunity;
    fn from_str(s: &str) -> Result<Self, NotACommunity> {
        match s {
            "no-export" => return Ok(Community::NoExport),
            "no-advertise" => return Ok(Community::NoAdvertise),
            _ => {}
        }
        let bad = || NotACommunity(s.to_owned());
        let (asn, value) = s.split_once(':').ok_or_else(bad)?;
        Ok(Community::Value(
            asn.parse().map_err(|_| bad())?,
            value.parse().map_err(|_| bad())?,
        ))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Community::Value(asn, value) => write!(f, "{asn}:{value}"),
            Community::NoExport => f.write_str("no-export"),
            Community::NoAdvertise => f.write_str("no-advertise"),
        }
    }
}

impl Serialize for Community {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Community {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Community {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Community".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "\"ASN:VALUE\", \"no-export\" or \"no-advertise\""
        })
    }
}

/// What the types cannot say: a protocol number nobody else uses, each VIP once, each
/// service named and tracked.
pub(crate) fn problems(config: &Config) -> Vec<(KeyPath, String)> {
    let mut found = Vec::new();
    let Some(announce) = &config.announce else {
        return found;
    };
    if let Some((_, _, whose)) = TAKEN_PROTOCOLS
        .iter()
        .find(|(low, high, _)| (*low..=*high).contains(&announce.protocol))
    {
        found.push((
            path!["announce", "protocol"],
            format!(
                "route protocol {} is {whose}; take one nobody uses, such as {DEFAULT_PROTOCOL}",
                announce.protocol
            ),
        ));
    }
    let names: HashSet<&str> = config
        .virtual_servers
        .iter()
        .filter_map(|vs| vs.name.as_deref())
        .collect();
    let mut seen = HashSet::new();
    for (i, vip) in announce.vip.iter().enumerate() {
        let at = path!["announce", "vip", i];
        if !seen.insert(vip.address) {
            found.push((
                at.join("address"),
                format!("{} is announced twice", vip.address),
            ));
        }
        if vip.address.is_unspecified() || vip.address.is_loopback() || vip.address.is_multicast() {
            found.push((
                at.join("address"),
                format!("{} cannot be a VIP", vip.address),
            ));
        }
        if vip.services.is_empty() {
            found.push((
                at.join("services"),
                "name at least one virtual server: the VIP is announced while they hold quorum"
                    .to_owned(),
            ));
        }
        for (j, service) in vip.services.iter().enumerate() {
            if !names.contains(service.as_str()) {
                found.push((
                    at.join("services").join(j),
                    format!("no virtual server is named {service:?}"),
                ));
            }
        }
        if !vip.services.is_empty() && !config.tracks_directord() {
            found.push((
                at.clone(),
                "announcing needs [vrrp] track_directord on: vrrpd learns quorum from directord"
                    .to_owned(),
            ));
        }
    }
    found
}
