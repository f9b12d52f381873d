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
pub fn validate(message: &[u8], ip: &IpPair, ttl: u8, cfg: &InstanceConfig) -> Result<ValidAdvert, Reject> {
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
    let same_list = received.len() == cfg.vips.len() && cfg.vips.iter().all(|vip| received.contains(vip));
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
