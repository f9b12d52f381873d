//! `[[bfd.session]]`: BFD sessions vrrpd runs (RFC 5880 asynchronous mode over RFC 5881
//! single hop or RFC 5883 multihop), keepalived's `bfd_instance` and FRR's `bfd peer`.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::diagnostic::KeyPath;
use crate::path;
use crate::values::Duration;

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bfd {
    #[serde(default)]
    pub session: Vec<BfdSession>,
}

/// One BFD session to a peer.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BfdSession {
    /// Names the session in status, metrics and `track_bfd` (keepalived's `bfd_instance NAME`).
    pub name: String,
    /// The peer's address (keepalived `neighbor_ip`, FRR `peer`).
    pub peer: IpAddr,
    /// Our source address, of the peer's family (keepalived `source_ip`, FRR `local-address`);
    /// absent: the kernel's choice of route source.
    pub local_address: Option<IpAddr>,
    /// Send and receive only over this interface (FRR `interface`); single hop only.
    pub interface: Option<String>,
    /// Desired Min TX Interval once Up; 1 s until then, as RFC 5880 requires (keepalived
    /// `min_tx`, FRR `transmit-interval`).
    #[serde(default = "default_interval")]
    pub interval: Duration,
    /// Required Min RX Interval; absent: `interval` (keepalived `min_rx`, FRR
    /// `receive-interval`).
    pub min_rx: Option<Duration>,
    /// Detect Mult: missed packets before the session is down (keepalived `multiplier`, FRR
    /// `detect-multiplier`).
    #[serde(default = "default_multiplier")]
    pub multiplier: u8,
    /// RFC 5883 multihop on UDP 4784 with any TTL, instead of RFC 5881 single hop on 3784
    /// with TTL 255 required (keepalived `max_hops` above 1, FRR `multihop`).
    #[serde(default)]
    pub multihop: bool,
    /// Send nothing until the peer has spoken (keepalived `passive`, FRR `passive-mode`).
    #[serde(default)]
    pub passive: bool,
    /// RFC 5880 authentication; keepalived and FRR 8.4 have none.
    pub authentication: Option<BfdAuthentication>,
}

/// `authentication = { type = "meticulous-sha1", key_id = 1, key_file = "..." }`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BfdAuthentication {
    /// password, md5, sha1, meticulous-md5 or meticulous-sha1.
    #[serde(rename = "type")]
    pub kind: BfdAuthType,
    /// Auth Key ID both ends use.
    #[serde(default = "default_key_id")]
    pub key_id: u8,
    /// The key itself: at most 16 bytes (password, MD5) or 20 (SHA1).
    pub key: Option<String>,
    /// A file holding the key (one line; the trailing newline is not part of it), read when
    /// vrrpd starts or reloads; instead of `key`.
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BfdAuthType {
    Password,
    Md5,
    Sha1,
    MeticulousMd5,
    MeticulousSha1,
}

impl BfdAuthType {
    /// The longest key the type carries (RFC 5880 sections 4.2-4.4).
    pub fn max_key_len(self) -> usize {
        match self {
            BfdAuthType::Password | BfdAuthType::Md5 | BfdAuthType::MeticulousMd5 => 16,
            BfdAuthType::Sha1 | BfdAuthType::MeticulousSha1 => 20,
        }
    }
}

/// `track_bfd = [{ name = "router", weight = 0 }]` in a `[[vrrp.instance]]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackBfd {
    /// A `[[bfd.session]]` name (keepalived `track_bfd { NAME }`).
    pub name: String,
    /// keepalived semantics: a negative weight is added to the priority while the session is
    /// not Up, a positive one while it is; 0 puts the instance in FAULT while it is not Up.
    #[serde(default)]
    pub weight: i32,
}

fn default_interval() -> Duration {
    Duration::from_millis(100)
}

fn default_multiplier() -> u8 {
    3
}

fn default_key_id() -> u8 {
    1
}

impl BfdSession {
    /// Required Min RX Interval: `min_rx`, or `interval` when absent.
    pub fn required_min_rx(&self) -> std::time::Duration {
        self.min_rx.unwrap_or(self.interval).get()
    }
}

/// RFC 5880 intervals are 32-bit microseconds; below 1 ms no timer here keeps up.
const MIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(1);
const MAX_INTERVAL: std::time::Duration = std::time::Duration::from_micros(u32::MAX as u64);

/// Each instance's `track_bfd` names a session, with a weight in keepalived's range.
pub(crate) fn validate_tracking(
    bfd: &Bfd,
    instances: &[crate::VrrpInstance],
    add: &mut dyn FnMut(KeyPath, String),
) {
    for (i, instance) in instances.iter().enumerate() {
        if let Some(name) = &instance.bfd_takeover {
            let at = path!["vrrp", "instance", i, "bfd_takeover"];
            match bfd.session.iter().find(|s| s.name == *name) {
                None => add(at, format!("no [[bfd.session]] is named {name:?}")),
                Some(session) if session.multihop => add(
                    at,
                    format!("{name:?} is multihop: a takeover needs the adverts' own link"),
                ),
                Some(_) => {}
            }
        }
        for (j, track) in instance.track_bfd.iter().enumerate() {
            let at = path!["vrrp", "instance", i, "track_bfd", j];
            if !bfd.session.iter().any(|s| s.name == track.name) {
                add(
                    at.join("name"),
                    format!("no [[bfd.session]] is named {:?}", track.name),
                );
            }
            if !(-254..=254).contains(&track.weight) {
                add(
                    at.join("weight"),
                    "tracking weight must be between -254 and 254".into(),
                );
            }
        }
    }
}

pub(crate) fn validate(bfd: &Bfd, add: &mut dyn FnMut(KeyPath, String)) {
    let mut names = HashSet::new();
    let mut peers = HashSet::new();
    for (i, session) in bfd.session.iter().enumerate() {
        let at = path!["bfd", "session", i];
        if session.name.is_empty() {
            add(at.join("name"), "session name must not be empty".into());
        } else if !names.insert(session.name.as_str()) {
            add(
                at.join("name"),
                format!("duplicate BFD session name {:?}", session.name),
            );
        }
        if session.peer.is_unspecified() || session.peer.is_multicast() {
            add(
                at.join("peer"),
                format!("{} cannot be a BFD peer", session.peer),
            );
        }
        if let Some(local) = session.local_address
            && local.is_ipv6() != session.peer.is_ipv6()
        {
            add(
                at.join("local_address"),
                format!("{local} is not of the peer's family"),
            );
        }
        if session.multihop && session.interface.is_some() {
            add(
                at.join("interface"),
                "a multihop session is not bound to an interface".into(),
            );
        }
        if session.interface.as_ref().is_some_and(String::is_empty) {
            add(at.join("interface"), "interface must not be empty".into());
        }
        if !peers.insert((session.peer, session.local_address, session.multihop)) {
            add(
                at.join("peer"),
                format!("another session already runs to {}", session.peer),
            );
        }
        let intervals = [
            ("interval", Some(session.interval)),
            ("min_rx", session.min_rx),
        ];
        for (key, value) in intervals {
            if let Some(value) = value
                && !(MIN_INTERVAL..=MAX_INTERVAL).contains(&value.get())
            {
                add(
                    at.join(key),
                    format!("{value} is outside 1ms..{}", Duration(MAX_INTERVAL)),
                );
            }
        }
        if session.multiplier == 0 {
            add(at.join("multiplier"), "multiplier must be 1..255".into());
        }
        if let Some(auth) = &session.authentication {
            authentication(auth, &at.join("authentication"), add);
        }
    }
}

fn authentication(auth: &BfdAuthentication, at: &KeyPath, add: &mut dyn FnMut(KeyPath, String)) {
    match (&auth.key, &auth.key_file) {
        (Some(_), Some(_)) => add(at.join("key_file"), "set key or key_file, not both".into()),
        (None, None) => add(at.clone(), "key or key_file is required".into()),
        (Some(key), None) if key.is_empty() || key.len() > auth.kind.max_key_len() => add(
            at.join("key"),
            format!(
                "the key is {} bytes; this type takes 1 to {}",
                key.len(),
                auth.kind.max_key_len()
            ),
        ),
        _ => {}
    }
}
