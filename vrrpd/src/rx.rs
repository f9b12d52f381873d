//! Receive validation: RFC 3768 section 7.1 / RFC 5798 section 7.1, with
//! keepalived's choices where the RFCs leave room.
//!
//! Checks run in the RFCs' order: TTL / hop limit, then the wire-level ones
//! (length, version, type, checksum, known auth type), then those against the
//! instance (version, VRID, address family, auth, address list, v2 interval).
//! The first failure is returned, so every dropped packet is counted under
//! exactly one [`Reject::as_str`] label.

use std::net::IpAddr;
use std::time::Duration;

use crate::instance::{Advert, InstanceConfig, PRIORITY_OWNER};
use crate::wire::{self, Auth, IpPair, Packet, Repr, VRRP_TTL, Version};

/// Why a received packet is not processed by the instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("malformed: {0}")]
    Malformed(#[from] wire::Error),
    #[error("TTL / hop limit {0} is not 255 (sent from off-link?)")]
    Ttl(u8),
    #[error("VRRP version {got:?}, instance runs {want:?}")]
    VersionMismatch { got: Version, want: Version },
    #[error("VRID {got}, instance has {want}")]
    VridMismatch { got: u8, want: u8 },
    #[error("address family differs from the instance's")]
    FamilyMismatch,
    #[error("auth type {got}, instance expects {want}")]
    AuthTypeMismatch { got: u8, want: u8 },
    #[error("simple-text password does not match")]
    AuthFailure,
    #[error("address list differs from the configured virtual addresses")]
    AddressListMismatch,
    #[error("advert interval {got:?} differs from the configured {want:?} (VRRPv2)")]
    AdvertIntervalMismatch { got: Duration, want: Duration },
    #[error("advert interval of zero")]
    ZeroInterval,
}

impl Reject {
    /// Every label [`as_str`](Self::as_str) can return, to register counters
    /// up front.
    pub const LABELS: &'static [&'static str] = &[
        "too_short",
        "bad_version",
        "bad_type",
        "v2_over_ipv6",
        "address_count_mismatch",
        "bad_checksum",
        "auth_ah_deprecated",
        "auth_type_unknown",
        "ttl",
        "version_mismatch",
        "vrid_mismatch",
        "family_mismatch",
        "auth_type_mismatch",
        "auth_failure",
        "address_list_mismatch",
        "advert_interval_mismatch",
        "zero_interval",
    ];

    /// Stable label for per-cause counters; decode errors keep their own.
    pub fn as_str(&self) -> &'static str {
        match self {
            Reject::Malformed(e) => e.as_str(),
            Reject::Ttl(_) => "ttl",
            Reject::VersionMismatch { .. } => "version_mismatch",
            Reject::VridMismatch { .. } => "vrid_mismatch",
            Reject::FamilyMismatch => "family_mismatch",
            Reject::AuthTypeMismatch { .. } => "auth_type_mismatch",
            Reject::AuthFailure => "auth_failure",
            Reject::AddressListMismatch => "address_list_mismatch",
            Reject::AdvertIntervalMismatch { .. } => "advert_interval_mismatch",
            Reject::ZeroInterval => "zero_interval",
        }
    }
}

/// An advertisement that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidAdvert {
    pub repr: Repr,
    pub src: IpAddr,
    /// The address list differs from the configured VIPs but the sender is the
    /// address owner (priority 255). RFC 3768 7.1 says to log it and carry on;
    /// the daemon should count it under "address_list_mismatch" and log, as
    /// keepalived does, without dropping the packet.
    pub address_mismatch: bool,
}

impl ValidAdvert {
    /// The input [`crate::instance::Instance::handle_advert`] takes.
    pub fn advert(&self) -> Advert {
        Advert {
            priority: self.repr.priority,
            src: self.src,
            interval: self.repr.advert_interval(),
        }
    }
}

/// Validates `message` (the IP payload) received in `ip` with `ttl` (IPv4 TTL
/// or IPv6 hop limit) for the instance configured by `cfg`.
///
/// Address list: a mismatch from a non-owner is dropped
/// ([`Reject::AddressListMismatch`]) as RFC 3768/5798 require ("MUST drop")
/// and keepalived does; from the owner it is accepted with
/// [`ValidAdvert::address_mismatch`] set. The list is compared as a set.
///
/// Interval: VRRPv2 drops a mismatch (RFC 3768 "MUST verify", keepalived
/// drops it to avoid two masters); VRRPv3 accepts any non-zero interval and
/// the backup learns it (RFC 5798 6.4.2).
pub fn validate(
    message: &[u8],
    ip: &IpPair,
    ttl: u8,
    cfg: &InstanceConfig,
) -> Result<ValidAdvert, Reject> {
    if ttl != VRRP_TTL {
        return Err(Reject::Ttl(ttl));
    }
    let repr = Repr::parse(&Packet::new_checked(message)?, ip)?;
    if repr.version() != cfg.version {
        return Err(Reject::VersionMismatch {
            got: repr.version(),
            want: cfg.version,
        });
    }
    if repr.vrid != cfg.vrid {
        return Err(Reject::VridMismatch {
            got: repr.vrid,
            want: cfg.vrid,
        });
    }
    if ip.is_ipv4() != cfg.primary_addr.is_ipv4() {
        return Err(Reject::FamilyMismatch);
    }
    check_auth(repr.auth(), cfg.auth)?;

    let received = repr.addresses();
    let same_list =
        received.len() == cfg.vips.len() && cfg.vips.iter().all(|vip| received.contains(vip));
    if !same_list && repr.priority != PRIORITY_OWNER {
        return Err(Reject::AddressListMismatch);
    }

    let interval = repr.advert_interval();
    match cfg.version {
        Version::V2 if interval != cfg.advert_interval => {
            return Err(Reject::AdvertIntervalMismatch {
                got: interval,
                want: cfg.advert_interval,
            });
        }
        // A zero interval would make Master_Down zero and flap the backup.
        Version::V3 if interval.is_zero() => return Err(Reject::ZeroInterval),
        _ => {}
    }

    Ok(ValidAdvert {
        repr,
        src: ip.src(),
        address_mismatch: !same_list,
    })
}

fn check_auth(got: Auth, want: Auth) -> Result<(), Reject> {
    if got.type_code() != want.type_code() {
        return Err(Reject::AuthTypeMismatch {
            got: got.type_code(),
            want: want.type_code(),
        });
    }
    match (got, want) {
        (Auth::Simple(a), Auth::Simple(b)) if !constant_time_eq(&a, &b) => Err(Reject::AuthFailure),
        _ => Ok(()),
    }
}

// The simple-text password travels in clear anyway, but there is no reason to
// hand out a timing oracle.
fn constant_time_eq(a: &[u8; 8], b: &[u8; 8]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::instance::GarpConfig;
    use crate::wire::{Addresses, Body, VRRP_GROUP_V4, VRRP_GROUP_V6};

    const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

    fn vip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, last)
    }

    fn cfg_v2() -> InstanceConfig {
        InstanceConfig {
            vrid: 51,
            version: Version::V2,
            priority: 100,
            advert_interval: Duration::from_secs(1),
            preempt: true,
            preempt_delay: Duration::ZERO,
            primary_addr: Ipv4Addr::new(192, 0, 2, 2).into(),
            vips: vec![vip(100).into(), vip(101).into()],
            auth: Auth::simple("s3cret").unwrap(),
            garp: GarpConfig::default(),
        }
    }

    fn cfg_v3() -> InstanceConfig {
        InstanceConfig {
            version: Version::V3,
            auth: Auth::None,
            ..cfg_v2()
        }
    }

    fn ip4() -> IpPair {
        IpPair::V4 {
            src: PEER,
            dst: VRRP_GROUP_V4,
        }
    }

    /// What the peer configured like `cfg` would send, with `edit` applied.
    fn sent_by_peer(cfg: &InstanceConfig, edit: impl FnOnce(&mut Repr)) -> Vec<u8> {
        let mut repr = cfg.advert(150);
        edit(&mut repr);
        repr.to_bytes(&ip4())
    }

    fn reject(bytes: &[u8], ip: &IpPair, ttl: u8, cfg: &InstanceConfig) -> Reject {
        validate(bytes, ip, ttl, cfg).unwrap_err()
    }

    #[test]
    fn accepts_matching_advert() {
        let cfg = cfg_v2();
        let bytes = sent_by_peer(&cfg, |_| {});
        let valid = validate(&bytes, &ip4(), 255, &cfg).unwrap();
        assert!(!valid.address_mismatch);
        assert_eq!(
            valid.advert(),
            Advert {
                priority: 150,
                src: PEER.into(),
                interval: Duration::from_secs(1)
            }
        );
    }

    #[test]
    fn ttl_must_be_255() {
        let cfg = cfg_v2();
        let bytes = sent_by_peer(&cfg, |_| {});
        assert_eq!(reject(&bytes, &ip4(), 254, &cfg), Reject::Ttl(254));
    }

    #[test]
    fn decode_errors_keep_their_labels() {
        let cfg = cfg_v2();
        let mut bytes = sent_by_peer(&cfg, |_| {});
        bytes[10] ^= 0xff;
        let r = reject(&bytes, &ip4(), 255, &cfg);
        assert!(matches!(
            r,
            Reject::Malformed(wire::Error::BadChecksum { .. })
        ));
        assert_eq!(r.as_str(), "bad_checksum");
    }

    #[test]
    fn version_must_match() {
        let bytes = sent_by_peer(&cfg_v3(), |_| {});
        assert_eq!(
            reject(&bytes, &ip4(), 255, &cfg_v2()),
            Reject::VersionMismatch {
                got: Version::V3,
                want: Version::V2
            }
        );
    }

    #[test]
    fn vrid_must_match() {
        let cfg = cfg_v2();
        let bytes = sent_by_peer(&cfg, |r| r.vrid = 52);
        assert_eq!(
            reject(&bytes, &ip4(), 255, &cfg),
            Reject::VridMismatch { got: 52, want: 51 }
        );
    }

    #[test]
    fn family_must_match() {
        let cfg = cfg_v3();
        let ip6 = IpPair::V6 {
            src: "fe80::1".parse().unwrap(),
            dst: VRRP_GROUP_V6,
        };
        let repr = Repr {
            vrid: 51,
            priority: 150,
            body: Body::V3 {
                max_advert_int: 100,
                addrs: Addresses::V6(vec!["2001:db8::1".parse().unwrap()]),
            },
        };
        let bytes = repr.to_bytes(&ip6);
        assert_eq!(reject(&bytes, &ip6, 255, &cfg), Reject::FamilyMismatch);
    }

    #[test]
    fn auth_type_and_password_must_match() {
        let cfg = cfg_v2();
        let none = sent_by_peer(&cfg, |r| {
            if let Body::V2 { auth, .. } = &mut r.body {
                *auth = Auth::None;
            }
        });
        assert_eq!(
            reject(&none, &ip4(), 255, &cfg),
            Reject::AuthTypeMismatch { got: 0, want: 1 }
        );
        let wrong = sent_by_peer(&cfg, |r| {
            if let Body::V2 { auth, .. } = &mut r.body {
                *auth = Auth::simple("s3cre7").unwrap();
            }
        });
        assert_eq!(reject(&wrong, &ip4(), 255, &cfg), Reject::AuthFailure);
    }

    #[test]
    fn address_list_mismatch_drops_unless_owner() {
        let cfg = cfg_v2();
        let set_addrs = |prio: u8, list: Vec<Ipv4Addr>| {
            sent_by_peer(&cfg, move |r| {
                r.priority = prio;
                if let Body::V2 { addrs, .. } = &mut r.body {
                    *addrs = list;
                }
            })
        };
        // Order does not matter.
        let swapped = set_addrs(150, vec![vip(101), vip(100)]);
        assert!(
            !validate(&swapped, &ip4(), 255, &cfg)
                .unwrap()
                .address_mismatch
        );

        let other = set_addrs(150, vec![vip(100), vip(102)]);
        assert_eq!(
            reject(&other, &ip4(), 255, &cfg),
            Reject::AddressListMismatch
        );
        let fewer = set_addrs(150, vec![vip(100)]);
        assert_eq!(
            reject(&fewer, &ip4(), 255, &cfg),
            Reject::AddressListMismatch
        );

        let owner = set_addrs(255, vec![vip(100)]);
        let valid = validate(&owner, &ip4(), 255, &cfg).unwrap();
        assert!(valid.address_mismatch);
    }

    #[test]
    fn v2_interval_mismatch_drops() {
        let cfg = cfg_v2();
        let bytes = sent_by_peer(&cfg, |r| {
            if let Body::V2 { advert_int, .. } = &mut r.body {
                *advert_int = 2;
            }
        });
        assert_eq!(
            reject(&bytes, &ip4(), 255, &cfg),
            Reject::AdvertIntervalMismatch {
                got: Duration::from_secs(2),
                want: Duration::from_secs(1)
            }
        );
    }

    #[test]
    fn v3_interval_mismatch_accepted_but_not_zero() {
        let cfg = cfg_v3();
        let set_int = |cs: u16| {
            sent_by_peer(&cfg, move |r| {
                if let Body::V3 { max_advert_int, .. } = &mut r.body {
                    *max_advert_int = cs;
                }
            })
        };
        let valid = validate(&set_int(20), &ip4(), 255, &cfg).unwrap();
        assert_eq!(valid.advert().interval, Duration::from_millis(200));
        assert_eq!(reject(&set_int(0), &ip4(), 255, &cfg), Reject::ZeroInterval);
    }

    #[test]
    fn labels_are_listed_and_distinct() {
        let mut labels = Reject::LABELS.to_vec();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Reject::LABELS.len());
        let samples = [
            Reject::Malformed(wire::Error::AuthAhDeprecated),
            Reject::Ttl(1),
            Reject::VersionMismatch {
                got: Version::V2,
                want: Version::V3,
            },
            Reject::VridMismatch { got: 1, want: 2 },
            Reject::FamilyMismatch,
            Reject::AuthTypeMismatch { got: 0, want: 1 },
            Reject::AuthFailure,
            Reject::AddressListMismatch,
            Reject::AdvertIntervalMismatch {
                got: Duration::ZERO,
                want: Duration::ZERO,
            },
            Reject::ZeroInterval,
        ];
        let wire_errors = [
            wire::Error::TooShort { len: 0 },
            wire::Error::BadVersion(0),
            wire::Error::BadType(0),
            wire::Error::V2OverIpv6,
            wire::Error::AddressCountMismatch {
                count: 0,
                len: 0,
                expected: 0,
            },
            wire::Error::BadChecksum { got: 0 },
            wire::Error::AuthAhDeprecated,
            wire::Error::AuthTypeUnknown(0),
        ];
        let all: Vec<Reject> = samples
            .into_iter()
            .chain(wire_errors.into_iter().map(Reject::Malformed))
            .collect();
        for r in &all {
            assert!(
                Reject::LABELS.contains(&r.as_str()),
                "{} not listed",
                r.as_str()
            );
        }
        // Every listed label is reachable: the samples cover each cause.
        let mut used: Vec<_> = all.iter().map(Reject::as_str).collect();
        used.sort_unstable();
        used.dedup();
        assert_eq!(used.len(), Reject::LABELS.len());
    }
}
