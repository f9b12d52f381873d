//! Scalar value types of director.toml that TOML has no native form for: durations with a
//! unit, percentages, and the small enumerations operators write as strings.

use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

/// A duration written with a unit ("150ms", "1s", "5m", "1h 30m"). Bare numbers are refused:
/// keepalived counts in seconds and ldirectord too, but a config mixing both is how a 2 ms
/// health-check interval ends up in production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub const ZERO: Duration = Duration(std::time::Duration::ZERO);

    pub const fn from_secs(secs: u64) -> Self {
        Duration(std::time::Duration::from_secs(secs))
    }

    pub const fn from_millis(ms: u64) -> Self {
        Duration(std::time::Duration::from_millis(ms))
    }

    pub fn get(self) -> std::time::Duration {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_zero() {
            return f.write_str("0s");
        }
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl FromStr for Duration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        if trimmed.chars().all(|c| c.is_ascii_digit()) && !trimmed.is_empty() {
            return Err(format!(
                "duration {s:?} has no unit; write e.g. \"{trimmed}s\" or \"{trimmed}ms\""
            ));
        }
        humantime::parse_duration(trimmed)
            .map(Duration)
            .map_err(|e| {
                format!("invalid duration {s:?}: {e} (expected e.g. \"150ms\", \"1s\", \"5m\")")
            })
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string with a unit, such as \"1s\" or \"150ms\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "duration {v} has no unit; write it as a string, e.g. \"{v}s\""
                )))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A share of a configured weight, written "10%".
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Percent(pub f64);

impl FromStr for Percent {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let number = s
            .trim()
            .strip_suffix('%')
            .ok_or_else(|| format!("percentage {s:?} must end in '%', e.g. \"10%\""))?;
        let value: f64 = number
            .trim()
            .parse()
            .map_err(|_| format!("invalid percentage {s:?}"))?;
        if !value.is_finite() || value < 0.0 {
            return Err(format!("percentage {s:?} must be a non-negative number"));
        }
        Ok(Percent(value))
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(de::Error::custom)
    }
}

impl Serialize for Percent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Persistence granularity: a dotted IPv4 mask ("255.255.255.0") or a prefix length (64),
/// as ipvsadm's `-M` takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Netmask {
    pub prefix_len: u8,
    /// Written as a dotted mask, which only IPv4 has.
    pub dotted: bool,
}

impl Netmask {
    /// The mask as IPVS takes it for an IPv4 service.
    pub fn ipv4_mask(self) -> std::net::Ipv4Addr {
        let bits = u32::MAX
            .checked_shl(32 - u32::from(self.prefix_len.min(32)))
            .unwrap_or(0);
        std::net::Ipv4Addr::from(bits)
    }
}

impl FromStr for Netmask {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(prefix_len) = s.trim_start_matches('/').parse::<u8>() {
            if prefix_len > 128 {
                return Err(format!("netmask prefix length {prefix_len} is above 128"));
            }
            return Ok(Netmask {
                prefix_len,
                dotted: false,
            });
        }
        let mask: std::net::Ipv4Addr = s
            .parse()
            .map_err(|_| format!("invalid netmask {s:?}; expected e.g. \"255.255.255.0\" or 64"))?;
        let bits = u32::from(mask);
        if bits.leading_ones() + bits.trailing_zeros() != 32 {
            return Err(format!("netmask {s:?} is not contiguous"));
        }
        Ok(Netmask {
            prefix_len: bits.leading_ones() as u8,
            dotted: true,
        })
    }
}

impl fmt::Display for Netmask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dotted {
            write!(f, "{}", self.ipv4_mask())
        } else {
            write!(f, "{}", self.prefix_len)
        }
    }
}

impl<'de> Deserialize<'de> for Netmask {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Netmask;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a dotted IPv4 netmask or a prefix length")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Netmask, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Netmask, E> {
                v.to_string().parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl Serialize for Netmask {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A name that is not one of a keyword type's values (a scheduler, a check type...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown {} {given:?}; expected one of: {}",
    kind.to_lowercase(),
    expected.join(", ")
)]
pub struct UnknownName {
    /// The type's name, as in the code: `Scheduler`.
    pub kind: &'static str,
    pub given: String,
    pub expected: &'static [&'static str],
}

/// A value written as a string in a form of its own: `kind` names the form in director.toml(5).
macro_rules! string_schema {
    ($name:ident, $kind:literal) => {
        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn inline_schema() -> bool {
                true
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", "format": $kind })
            }
        }
    };
}
pub(crate) use string_schema;

string_schema!(Duration, "duration");
string_schema!(Percent, "percent");
string_schema!(Netmask, "netmask");

/// Deserializes a string through `FromStr`, so that enumerations keep their own error text.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, UnknownName> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownName {
                        kind: stringify!($name),
                        given: s.to_owned(),
                        expected: &[$($text),+],
                    }),
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                s.parse().map_err(de::Error::custom)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn inline_schema() -> bool {
                true
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "string", "enum": [$($text),+] })
            }
        }
    };
}

string_enum!(
    /// Transport protocol of a virtual service.
    Protocol { Tcp = "tcp", Udp = "udp", Sctp = "sctp" }
);

impl Protocol {
    /// The IP protocol number IPVS keys services on.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }
}

string_enum!(
    /// The scope of an address or route (`ip addr add ... scope`), as keepalived names them.
    Scope { Global = "global", Site = "site", Link = "link", Host = "host", Nowhere = "nowhere" }
);

impl Scope {
    /// The kernel's number (rtnetlink's RT_SCOPE_*).
    pub fn number(self) -> u8 {
        match self {
            Scope::Global => 0,
            Scope::Site => 200,
            Scope::Link => 253,
            Scope::Host => 254,
            Scope::Nowhere => 255,
        }
    }
}

string_enum!(
    /// What a virtual route does (`ip route add <type> ...`): forward, or drop one way or another.
    RouteType { Unicast = "unicast", Blackhole = "blackhole", Unreachable = "unreachable", Prohibit = "prohibit" }
);

string_enum!(
    /// IPVS forwarding method (ipvsadm -g / -m / -i).
    Forwarding { Dr = "dr", Nat = "nat", Tun = "tun" }
);

string_enum!(
    /// The schedulers a 6.1 kernel ships (ip_vs_<name>.ko).
    Scheduler {
        Rr = "rr", Wrr = "wrr", Lc = "lc", Wlc = "wlc", Lblc = "lblc", Lblcr = "lblcr",
        Dh = "dh", Sh = "sh", Sed = "sed", Nq = "nq", Fo = "fo", Ovf = "ovf", Mh = "mh",
    }
);

string_enum!(
    /// Service flags as ipvsadm's `-b` names them.
    ServiceFlag {
        ShFallback = "sh-fallback", ShPort = "sh-port", MhFallback = "mh-fallback", MhPort = "mh-port",
        OnePacket = "ops",
    }
);

string_enum!(
    /// What directord does with a real server whose health check fails.
    OnFailure {
        /// Keep it with weight 0 so persistent clients finish (ldirectord `quiescent = yes`).
        Quiescent = "quiescent",
        /// Take it out of the table (keepalived's default, ldirectord `quiescent = no`).
        Remove = "remove",
    }
);

string_enum!(
    /// Address family of a fwmark service, which the mark alone does not tell.
    Family { Inet = "inet", Inet6 = "inet6" }
);

string_enum!(
    /// Health check kinds; the names ldirectord and keepalived users know.
    CheckType {
        Connect = "connect", Http = "http", Https = "https", Tcp = "tcp", Dns = "dns",
        Smtp = "smtp", Pop = "pop", Imap = "imap", Ftp = "ftp", Ldap = "ldap", Mysql = "mysql",
        Pgsql = "pgsql", Sip = "sip", Radius = "radius", Udp = "udp", Ping = "ping",
        External = "external", On = "on", Off = "off",
    }
);

string_enum!(
    /// State a real server starts in before its first check result.
    InitialState { Up = "up", Down = "down" }
);

string_enum!(
    /// What the feedback agent reports.
    AgentReport { Cpu = "cpu", Load = "load", Command = "command" }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(
            "150ms".parse::<Duration>().unwrap(),
            Duration::from_millis(150)
        );
        assert_eq!("5m".parse::<Duration>().unwrap(), Duration::from_secs(300));
        assert!("5".parse::<Duration>().unwrap_err().contains("no unit"));
        assert!("fast".parse::<Duration>().is_err());
    }

    #[test]
    fn duration_display_round_trips() {
        for text in ["0s", "150ms", "1s", "5m"] {
            let d: Duration = text.parse().unwrap();
            assert_eq!(d.to_string().parse::<Duration>().unwrap(), d);
        }
    }

    #[test]
    fn netmasks() {
        let mask: Netmask = "255.255.255.0".parse().unwrap();
        assert_eq!(mask.prefix_len, 24);
        assert_eq!(mask.to_string(), "255.255.255.0");
        assert_eq!("64".parse::<Netmask>().unwrap().prefix_len, 64);
        assert!(
            "255.0.255.0"
                .parse::<Netmask>()
                .unwrap_err()
                .contains("contiguous")
        );
        assert_eq!(
            "0.0.0.0".parse::<Netmask>().unwrap().ipv4_mask(),
            std::net::Ipv4Addr::UNSPECIFIED
        );
    }

    #[test]
    fn percentages() {
        assert_eq!("10%".parse::<Percent>().unwrap(), Percent(10.0));
        assert!("10".parse::<Percent>().is_err());
        assert!("-1%".parse::<Percent>().is_err());
    }

    #[test]
    fn enums_list_the_choices_on_error() {
        let err = "wlcx".parse::<Scheduler>().unwrap_err().to_string();
        assert!(err.contains("rr, wrr"), "{err}");
        assert!(
            err.starts_with("unknown scheduler \"wlcx\"; expected one of: "),
            "{err}"
        );
        assert_eq!("mh".parse::<Scheduler>().unwrap(), Scheduler::Mh);
    }
}

/// One member of a virtual-server group (keepalived virtual_server_group): `"ip:port"`,
/// a range `"192.0.2.100-110:80"` (up to the last byte, keepalived's `A-LAST port`;
/// `"[2001:db8::10-1f]:80"` up to the last 16 bits for IPv6) or `"fwmark N"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupMember {
    Address {
        first: std::net::SocketAddr,
        /// The last address of a range, at the same port.
        last: Option<std::net::IpAddr>,
    },
    Fwmark(u32),
}

crate::values::string_schema!(GroupMember, "ip:port, first-last:port range or fwmark N");

/// Most services one group member may stand for: an IPv4 range ends at a byte, but an IPv6
/// range may span 65,536 addresses (the importer's limit too).
pub const GROUP_RANGE_MAX: usize = 1024;

impl GroupMember {
    /// The services the member stands for: addresses (with their port) or a mark.
    pub fn expand(self) -> Vec<Result<std::net::SocketAddr, u32>> {
        match self {
            GroupMember::Fwmark(mark) => vec![Err(mark)],
            GroupMember::Address { first, last: None } => vec![Ok(first)],
            GroupMember::Address {
                first,
                last: Some(last),
            } => {
                let (low, high) = match (first.ip(), last) {
                    (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => {
                        (u128::from(u32::from(a)), u128::from(u32::from(b)))
                    }
                    (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => {
                        (u128::from(a), u128::from(b))
                    }
                    _ => return vec![Ok(first)],
                };
                (low..=high)
                    .map(|n| {
                        let ip = match first.ip() {
                            std::net::IpAddr::V4(_) => {
                                std::net::IpAddr::from(std::net::Ipv4Addr::from(n as u32))
                            }
                            std::net::IpAddr::V6(_) => {
                                std::net::IpAddr::from(std::net::Ipv6Addr::from(n))
                            }
                        };
                        Ok(std::net::SocketAddr::new(ip, first.port()))
                    })
                    .collect()
            }
        }
    }
}

impl FromStr for GroupMember {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(mark) = s.strip_prefix("fwmark") {
            return mark
                .trim()
                .parse()
                .map(GroupMember::Fwmark)
                .map_err(|_| format!("invalid group member {s:?}: fwmark needs a number"));
        }
        let bad = || {
            format!(
                "invalid group member {s:?}; expected \"ip:port\", \"192.0.2.10-20:port\", \
                 \"[2001:db8::10-1f]:port\" or \"fwmark N\""
            )
        };
        if let Ok(first) = s.parse::<std::net::SocketAddr>() {
            return Ok(GroupMember::Address { first, last: None });
        }
        // A range: the first address with "-LAST" before the port.
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let (first, last) = host.rsplit_once('-').ok_or_else(bad)?;
        let first: std::net::IpAddr = first.parse().map_err(|_| bad())?;
        let last = match first {
            std::net::IpAddr::V4(a) => {
                let byte: u8 = last.parse().map_err(|_| bad())?;
                let [x, y, z, _] = a.octets();
                std::net::IpAddr::from([x, y, z, byte])
            }
            std::net::IpAddr::V6(a) => {
                let low = u16::from_str_radix(last, 16).map_err(|_| bad())?;
                let mut segments = a.segments();
                segments[7] = low;
                std::net::IpAddr::from(segments)
            }
        };
        let below = match (first, last) {
            (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => b < a,
            (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => b < a,
            _ => true,
        };
        if below {
            return Err(format!(
                "group member {s:?}: the range ends below its start"
            ));
        }
        Ok(GroupMember::Address {
            first: std::net::SocketAddr::new(first, port),
            last: Some(last),
        })
    }
}

impl fmt::Display for GroupMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupMember::Fwmark(mark) => write!(f, "fwmark {mark}"),
            GroupMember::Address { first, last: None } => write!(f, "{first}"),
            GroupMember::Address {
                first,
                last: Some(std::net::IpAddr::V4(last)),
            } => write!(f, "{}-{}:{}", first.ip(), last.octets()[3], first.port()),
            GroupMember::Address {
                first,
                last: Some(std::net::IpAddr::V6(last)),
            } => write!(
                f,
                "[{}-{:x}]:{}",
                first.ip(),
                last.segments()[7],
                first.port()
            ),
        }
    }
}

impl<'de> Deserialize<'de> for GroupMember {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

impl Serialize for GroupMember {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}
