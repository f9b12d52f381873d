//! VRRP advertisements: version 2 (RFC 3768 section 5) and version 3 (RFC 5798
//! section 5).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! v2: |   Auth Type   |   Adver Int   |          Checksum         |
//! v3: |(rsvd) |     Max Adver Int     |          Checksum         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 IPv4 (4 bytes) or IPv6 (16 bytes) addresses   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! v2 only: Authentication Data (8 bytes)
//! ```
//!
//! The buffer a [`Packet`] wraps is the whole VRRP message, i.e. the IP payload:
//! VRRP has no length field, so the checksum covers the buffer as given.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::IpPair;
use super::checksum;

/// Length of the fixed header shared by both versions.
pub const HEADER_LEN: usize = 8;
/// Length of the VRRPv2 authentication data trailer.
pub const AUTH_DATA_LEN: usize = 8;
/// The only packet type either version defines.
pub const TYPE_ADVERTISEMENT: u8 = 1;
/// VRRPv2 auth types (RFC 3768 section 5.3.6; type 2, IP AH, was dropped from
/// RFC 2338 and is refused).
pub const AUTH_TYPE_NONE: u8 = 0;
pub const AUTH_TYPE_SIMPLE: u8 = 1;
pub const AUTH_TYPE_AH: u8 = 2;
/// Largest VRRPv3 Max Adver Int: the field is 12 bits of centiseconds.
pub const MAX_ADVERT_INT_V3: u16 = 0x0fff;

mod field {
    pub type Field = std::ops::Range<usize>;
    pub const VER_TYPE: usize = 0;
    pub const VRID: usize = 1;
    pub const PRIORITY: usize = 2;
    pub const COUNT: usize = 3;
    pub const AUTH_TYPE: usize = 4;
    pub const ADVER_INT_V2: usize = 5;
    pub const ADVER_INT_V3: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
    pub const ADDRS: usize = 8;
}

/// Why a buffer is not a well-formed VRRP advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("shorter than the {HEADER_LEN}-byte VRRP header ({len} bytes)")]
    TooShort { len: usize },
    #[error("VRRP version {0} is neither 2 nor 3")]
    BadVersion(u8),
    #[error("VRRP packet type {0} is not an advertisement")]
    BadType(u8),
    #[error("VRRPv2 is IPv4-only (RFC 3768) but arrived over IPv6")]
    V2OverIpv6,
    #[error("{count} addresses do not fit a {len}-byte message (expected {expected} bytes)")]
    AddressCountMismatch {
        count: u8,
        len: usize,
        expected: usize,
    },
    #[error("checksum 0x{got:04x} is wrong")]
    BadChecksum { got: u16 },
    #[error("VRRPv2 auth type 2 (IP Authentication Header) is deprecated by RFC 3768")]
    AuthAhDeprecated,
    #[error("unknown VRRPv2 auth type {0}")]
    AuthTypeUnknown(u8),
}

impl Error {
    /// Stable label for per-cause counters and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Error::TooShort { .. } => "too_short",
            Error::BadVersion(_) => "bad_version",
            Error::BadType(_) => "bad_type",
            Error::V2OverIpv6 => "v2_over_ipv6",
            Error::AddressCountMismatch { .. } => "address_count_mismatch",
            Error::BadChecksum { .. } => "bad_checksum",
            Error::AuthAhDeprecated => "auth_ah_deprecated",
            Error::AuthTypeUnknown(_) => "auth_type_unknown",
        }
    }
}

/// Protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// RFC 3768: IPv4 only, interval in seconds, optional simple-text auth.
    V2,
    /// RFC 5798: IPv4 or IPv6, interval in centiseconds, pseudo-header checksum.
    V3,
}

impl Version {
    pub fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }

    pub fn from_number(n: u8) -> Option<Version> {
        match n {
            2 => Some(Version::V2),
            3 => Some(Version::V3),
            _ => None,
        }
    }
}

/// A read/write view of a VRRP message.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len), so the fixed-header
    /// accessors cannot panic.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// The fixed header must be present. Whether the address list fits depends on
    /// the address family, which only the IP layer knows: [`Repr::parse`] checks it.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            Err(Error::TooShort { len })
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Length of the whole message, which is what the checksum covers.
    pub fn len(&self) -> usize {
        self.buffer.as_ref().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] >> 4
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] & 0x0f
    }

    pub fn vrid(&self) -> u8 {
        self.buffer.as_ref()[field::VRID]
    }

    pub fn priority(&self) -> u8 {
        self.buffer.as_ref()[field::PRIORITY]
    }

    pub fn addr_count(&self) -> u8 {
        self.buffer.as_ref()[field::COUNT]
    }

    /// VRRPv2 auth type.
    pub fn auth_type(&self) -> u8 {
        self.buffer.as_ref()[field::AUTH_TYPE]
    }

    /// VRRPv2 advertisement interval in seconds.
    pub fn advert_int_v2(&self) -> u8 {
        self.buffer.as_ref()[field::ADVER_INT_V2]
    }

    /// VRRPv3 four reserved bits in front of the interval.
    pub fn reserved_v3(&self) -> u8 {
        self.buffer.as_ref()[field::ADVER_INT_V3.start] >> 4
    }

    /// VRRPv3 maximum advertisement interval in centiseconds (12 bits).
    pub fn max_advert_int_v3(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::ADVER_INT_V3];
        u16::from_be_bytes([b[0], b[1]]) & MAX_ADVERT_INT_V3
    }

    pub fn checksum(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::CHECKSUM];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The `index`-th address read as IPv4, `None` past the end of the buffer.
    pub fn ipv4_addr(&self, index: usize) -> Option<Ipv4Addr> {
        let start = field::ADDRS.checked_add(index.checked_mul(4)?)?;
        let bytes: [u8; 4] = self
            .buffer
            .as_ref()
            .get(start..start + 4)?
            .try_into()
            .ok()?;
        Some(Ipv4Addr::from(bytes))
    }

    /// The `index`-th address read as IPv6, `None` past the end of the buffer.
    pub fn ipv6_addr(&self, index: usize) -> Option<Ipv6Addr> {
        let start = field::ADDRS.checked_add(index.checked_mul(16)?)?;
        let bytes: [u8; 16] = self
            .buffer
            .as_ref()
            .get(start..start + 16)?
            .try_into()
            .ok()?;
        Some(Ipv6Addr::from(bytes))
    }

    /// VRRPv2 authentication data: the 8 bytes after the IPv4 address list,
    /// `None` when the buffer ends before them.
    pub fn auth_data(&self) -> Option<[u8; AUTH_DATA_LEN]> {
        let start = field::ADDRS + usize::from(self.addr_count()) * 4;
        self.buffer
            .as_ref()
            .get(start..start + AUTH_DATA_LEN)?
            .try_into()
            .ok()
    }

    /// Whether the checksum is right for this message carried in `ip`.
    pub fn verify_checksum(&self, ip: &IpPair) -> bool {
        self.compute_sum(ip) == 0xffff
    }

    /// One's-complement sum over the message (with the pseudo-header for v3);
    /// a correct checksum makes it 0xffff.
    fn compute_sum(&self, ip: &IpPair) -> u16 {
        let data = self.buffer.as_ref();
        let body = checksum::data(data);
        if self.version() == 3 {
            checksum::combine(&[checksum::pseudo_header(ip, data.len()), body])
        } else {
            body
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_version_type(&mut self, version: u8, msg_type: u8) {
        self.buffer.as_mut()[field::VER_TYPE] = (version << 4) | (msg_type & 0x0f);
    }

    pub fn set_vrid(&mut self, vrid: u8) {
        self.buffer.as_mut()[field::VRID] = vrid;
    }

    pub fn set_priority(&mut self, priority: u8) {
        self.buffer.as_mut()[field::PRIORITY] = priority;
    }

    pub fn set_addr_count(&mut self, count: u8) {
        self.buffer.as_mut()[field::COUNT] = count;
    }

    pub fn set_auth_type(&mut self, auth_type: u8) {
        self.buffer.as_mut()[field::AUTH_TYPE] = auth_type;
    }

    pub fn set_advert_int_v2(&mut self, seconds: u8) {
        self.buffer.as_mut()[field::ADVER_INT_V2] = seconds;
    }

    /// Writes the 12-bit interval with the reserved bits zero, as RFC 5798 requires.
    pub fn set_max_advert_int_v3(&mut self, centiseconds: u16) {
        let raw = (centiseconds & MAX_ADVERT_INT_V3).to_be_bytes();
        self.buffer.as_mut()[field::ADVER_INT_V3].copy_from_slice(&raw);
    }

    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Panics if the address does not fit the buffer.
    pub fn set_ipv4_addr(&mut self, index: usize, addr: Ipv4Addr) {
        let start = field::ADDRS + index * 4;
        self.buffer.as_mut()[start..start + 4].copy_from_slice(&addr.octets());
    }

    /// Panics if the address does not fit the buffer.
    pub fn set_ipv6_addr(&mut self, index: usize, addr: Ipv6Addr) {
        let start = field::ADDRS + index * 16;
        self.buffer.as_mut()[start..start + 16].copy_from_slice(&addr.octets());
    }

    /// Writes the v2 trailer after `addr_count()` IPv4 addresses; panics if it
    /// does not fit.
    pub fn set_auth_data(&mut self, data: &[u8; AUTH_DATA_LEN]) {
        let start = field::ADDRS + usize::from(self.addr_count()) * 4;
        self.buffer.as_mut()[start..start + AUTH_DATA_LEN].copy_from_slice(data);
    }

    /// Computes and stores the checksum over the whole buffer.
    pub fn fill_checksum(&mut self, ip: &IpPair) {
        self.set_checksum(0);
        let sum = self.compute_sum(ip);
        self.set_checksum(!sum);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// VRRPv2 authentication (RFC 3768 section 5.3.6).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Auth {
    None,
    /// Simple text password, zero-padded to 8 bytes as keepalived sends it.
    Simple([u8; AUTH_DATA_LEN]),
}

impl Auth {
    /// `None` if the password is longer than the 8-byte field. keepalived
    /// silently truncates longer ones; refusing is kinder to operators.
    pub fn simple(password: &str) -> Option<Auth> {
        let bytes = password.as_bytes();
        if bytes.len() > AUTH_DATA_LEN {
            return None;
        }
        let mut data = [0u8; AUTH_DATA_LEN];
        data[..bytes.len()].copy_from_slice(bytes);
        Some(Auth::Simple(data))
    }

    pub fn type_code(&self) -> u8 {
        match self {
            Auth::None => AUTH_TYPE_NONE,
            Auth::Simple(_) => AUTH_TYPE_SIMPLE,
        }
    }
}

// Passwords stay out of logs and panic messages.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Simple(_) => f.write_str("Simple(..)"),
        }
    }
}

/// The address list of a VRRPv3 advertisement: all one family, the family of the
/// IP packet carrying it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Addresses {
    V4(Vec<Ipv4Addr>),
    V6(Vec<Ipv6Addr>),
}

impl Addresses {
    pub fn len(&self) -> usize {
        match self {
            Addresses::V4(a) => a.len(),
            Addresses::V6(a) => a.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_ipv4(&self) -> bool {
        matches!(self, Addresses::V4(_))
    }

    pub fn to_ip_addrs(&self) -> Vec<IpAddr> {
        match self {
            Addresses::V4(a) => a.iter().copied().map(IpAddr::V4).collect(),
            Addresses::V6(a) => a.iter().copied().map(IpAddr::V6).collect(),
        }
    }

    fn addr_len(&self) -> usize {
        if self.is_ipv4() { 4 } else { 16 }
    }
}

/// The version-specific part of an advertisement. Each variant only holds what
/// its version can encode, so an IPv6 list in a v2 message or an auth field in
/// a v3 one cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Body {
    V2 {
        /// Seconds.
        advert_int: u8,
        auth: Auth,
        addrs: Vec<Ipv4Addr>,
    },
    V3 {
        /// Centiseconds; only the low 12 bits are sent.
        max_advert_int: u16,
        addrs: Addresses,
    },
}

/// A decoded VRRP advertisement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repr {
    pub vrid: u8,
    pub priority: u8,
    pub body: Body,
}

impl Repr {
    /// Decodes and verifies `packet`, which travelled in an IP packet from/to `ip`.
    ///
    /// The message must be exactly as long as its address count says (as
    /// keepalived requires); the kernel has already trimmed link-layer padding.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>, ip: &IpPair) -> Result<Repr, Error> {
        packet.check_len()?;
        let version =
            Version::from_number(packet.version()).ok_or(Error::BadVersion(packet.version()))?;
        if packet.msg_type() != TYPE_ADVERTISEMENT {
            return Err(Error::BadType(packet.msg_type()));
        }
        if version == Version::V2 && !ip.is_ipv4() {
            return Err(Error::V2OverIpv6);
        }
        let count = packet.addr_count();
        let addr_len = if ip.is_ipv4() { 4 } else { 16 };
        let trailer = if version == Version::V2 {
            AUTH_DATA_LEN
        } else {
            0
        };
        let expected = HEADER_LEN + usize::from(count) * addr_len + trailer;
        if packet.len() != expected {
            return Err(Error::AddressCountMismatch {
                count,
                len: packet.len(),
                expected,
            });
        }
        if !packet.verify_checksum(ip) {
            return Err(Error::BadChecksum {
                got: packet.checksum(),
            });
        }
        // Lengths were checked above, so every address index is in range.
        let v4_addrs = || -> Vec<Ipv4Addr> {
            (0..usize::from(count))
                .filter_map(|i| packet.ipv4_addr(i))
                .collect()
        };
        let body = match version {
            Version::V2 => {
                let auth = match packet.auth_type() {
                    AUTH_TYPE_NONE => Auth::None,
                    AUTH_TYPE_SIMPLE => Auth::Simple(packet.auth_data().unwrap_or_default()),
                    AUTH_TYPE_AH => return Err(Error::AuthAhDeprecated),
                    other => return Err(Error::AuthTypeUnknown(other)),
                };
                Body::V2 {
                    advert_int: packet.advert_int_v2(),
                    auth,
                    addrs: v4_addrs(),
                }
            }
            Version::V3 => {
                let addrs = if ip.is_ipv4() {
                    Addresses::V4(v4_addrs())
                } else {
                    Addresses::V6(
                        (0..usize::from(count))
                            .filter_map(|i| packet.ipv6_addr(i))
                            .collect(),
                    )
                };
                Body::V3 {
                    max_advert_int: packet.max_advert_int_v3(),
                    addrs,
                }
            }
        };
        Ok(Repr {
            vrid: packet.vrid(),
            priority: packet.priority(),
            body,
        })
    }

    pub fn version(&self) -> Version {
        match self.body {
            Body::V2 { .. } => Version::V2,
            Body::V3 { .. } => Version::V3,
        }
    }

    /// The advertisement interval as a duration, whatever the version's unit.
    pub fn advert_interval(&self) -> Duration {
        match self.body {
            Body::V2 { advert_int, .. } => Duration::from_secs(advert_int.into()),
            Body::V3 { max_advert_int, .. } => {
                Duration::from_millis(u64::from(max_advert_int & MAX_ADVERT_INT_V3) * 10)
            }
        }
    }

    pub fn addr_count(&self) -> usize {
        match &self.body {
            Body::V2 { addrs, .. } => addrs.len(),
            Body::V3 { addrs, .. } => addrs.len(),
        }
    }

    pub fn addresses(&self) -> Vec<IpAddr> {
        match &self.body {
            Body::V2 { addrs, .. } => addrs.iter().copied().map(IpAddr::V4).collect(),
            Body::V3 { addrs, .. } => addrs.to_ip_addrs(),
        }
    }

    /// Auth of a v2 message; v3 has none.
    pub fn auth(&self) -> Auth {
        match self.body {
            Body::V2 { auth, .. } => auth,
            Body::V3 { .. } => Auth::None,
        }
    }

    /// Exact length of the emitted message.
    pub fn buffer_len(&self) -> usize {
        match &self.body {
            Body::V2 { addrs, .. } => HEADER_LEN + addrs.len() * 4 + AUTH_DATA_LEN,
            Body::V3 { addrs, .. } => HEADER_LEN + addrs.len() * addrs.addr_len(),
        }
    }

    /// Writes the message and its checksum for carriage in `ip`.
    ///
    /// The buffer must be exactly [`buffer_len`](Self::buffer_len) bytes long,
    /// since the checksum covers all of it; at most 255 addresses fit the
    /// count field. Both are caller bugs and panic.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>, ip: &IpPair) {
        assert_eq!(packet.len(), self.buffer_len(), "VRRP emit buffer length");
        let count = u8::try_from(self.addr_count()).expect("at most 255 VRRP addresses");
        packet.set_version_type(self.version().number(), TYPE_ADVERTISEMENT);
        packet.set_vrid(self.vrid);
        packet.set_priority(self.priority);
        packet.set_addr_count(count);
        match &self.body {
            Body::V2 {
                advert_int,
                auth,
                addrs,
            } => {
                packet.set_auth_type(auth.type_code());
                packet.set_advert_int_v2(*advert_int);
                for (i, a) in addrs.iter().enumerate() {
                    packet.set_ipv4_addr(i, *a);
                }
                let data = match auth {
                    Auth::None => [0; AUTH_DATA_LEN],
                    Auth::Simple(data) => *data,
                };
                packet.set_auth_data(&data);
            }
            Body::V3 {
                max_advert_int,
                addrs,
            } => {
                packet.set_max_advert_int_v3(*max_advert_int);
                match addrs {
                    Addresses::V4(list) => {
                        for (i, a) in list.iter().enumerate() {
                            packet.set_ipv4_addr(i, *a);
                        }
                    }
                    Addresses::V6(list) => {
                        for (i, a) in list.iter().enumerate() {
                            packet.set_ipv6_addr(i, *a);
                        }
                    }
                }
            }
        }
        packet.fill_checksum(ip);
    }

    /// Convenience: a fresh buffer holding the emitted message.
    pub fn to_bytes(&self, ip: &IpPair) -> Vec<u8> {
        let mut buf = vec![0u8; self.buffer_len()];
        self.emit(&mut Packet::new_unchecked(&mut buf[..]), ip);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_pair() -> IpPair {
        IpPair::V4 {
            src: Ipv4Addr::new(192, 0, 2, 1),
            dst: super::super::VRRP_GROUP_V4,
        }
    }

    fn v6_pair() -> IpPair {
        IpPair::V6 {
            src: "fe80::1".parse().unwrap(),
            dst: super::super::VRRP_GROUP_V6,
        }
    }

    fn v2_repr() -> Repr {
        Repr {
            vrid: 51,
            priority: 150,
            body: Body::V2 {
                advert_int: 1,
                auth: Auth::None,
                addrs: vec![Ipv4Addr::new(192, 0, 2, 100), Ipv4Addr::new(192, 0, 2, 101)],
            },
        }
    }

    fn v3_repr_v6() -> Repr {
        Repr {
            vrid: 7,
            priority: 100,
            body: Body::V3 {
                max_advert_int: 50,
                addrs: Addresses::V6(vec!["2001:db8::7".parse().unwrap()]),
            },
        }
    }

    fn parse(bytes: &[u8], ip: &IpPair) -> Result<Repr, Error> {
        Repr::parse(&Packet::new_checked(bytes)?, ip)
    }

    #[test]
    fn v2_round_trip() {
        let repr = v2_repr();
        let bytes = repr.to_bytes(&v4_pair());
        assert_eq!(bytes.len(), 24);
        assert_eq!(&bytes[..6], &[0x21, 51, 150, 2, 0, 1]);
        assert_eq!(parse(&bytes, &v4_pair()), Ok(repr));
    }

    #[test]
    fn v2_checksum_ignores_ip_addresses() {
        let bytes = v2_repr().to_bytes(&v4_pair());
        let other = IpPair::V4 {
            src: Ipv4Addr::new(192, 0, 2, 99),
            dst: Ipv4Addr::new(192, 0, 2, 2),
        };
        assert!(parse(&bytes, &other).is_ok());
    }

    #[test]
    fn v3_checksum_covers_pseudo_header() {
        let repr = v3_repr_v6();
        let bytes = repr.to_bytes(&v6_pair());
        assert_eq!(parse(&bytes, &v6_pair()), Ok(repr));
        let other = IpPair::V6 {
            src: "fe80::2".parse().unwrap(),
            dst: super::super::VRRP_GROUP_V6,
        };
        assert!(matches!(
            parse(&bytes, &other),
            Err(Error::BadChecksum { .. })
        ));
    }

    #[test]
    fn v3_interval_is_twelve_bits_of_centiseconds() {
        let repr = Repr {
            vrid: 1,
            priority: 1,
            body: Body::V3 {
                max_advert_int: MAX_ADVERT_INT_V3,
                addrs: Addresses::V4(vec![]),
            },
        };
        let bytes = repr.to_bytes(&v4_pair());
        assert_eq!(&bytes[4..6], &[0x0f, 0xff]);
        let parsed = parse(&bytes, &v4_pair()).unwrap();
        assert_eq!(parsed.advert_interval(), Duration::from_millis(40_950));
    }

    #[test]
    fn v3_reserved_bits_are_ignored_on_receive() {
        let mut bytes = v3_repr_v6().to_bytes(&v6_pair());
        bytes[4] |= 0xa0;
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.fill_checksum(&v6_pair());
        assert_eq!(packet.reserved_v3(), 0xa);
        assert_eq!(parse(&bytes, &v6_pair()), Ok(v3_repr_v6()));
    }

    #[test]
    fn simple_auth_pads_and_refuses_long_passwords() {
        assert_eq!(Auth::simple("ab"), Some(Auth::Simple(*b"ab\0\0\0\0\0\0")));
        assert_eq!(Auth::simple("123456789"), None);
        assert_eq!(
            format!("{:?}", Auth::simple("s3cret").unwrap()),
            "Simple(..)"
        );
    }

    #[test]
    fn decode_errors_one_per_cause() {
        let good = v2_repr().to_bytes(&v4_pair());
        let ip = v4_pair();
        let refill = |mut b: Vec<u8>| {
            Packet::new_unchecked(&mut b[..]).fill_checksum(&ip);
            b
        };

        assert_eq!(parse(&good[..7], &ip), Err(Error::TooShort { len: 7 }));

        let mut b = good.clone();
        b[0] = 0x41;
        assert_eq!(parse(&refill(b), &ip), Err(Error::BadVersion(4)));

        let mut b = good.clone();
        b[0] = 0x22;
        assert_eq!(parse(&refill(b), &ip), Err(Error::BadType(2)));

        assert_eq!(parse(&good, &v6_pair()), Err(Error::V2OverIpv6));

        let mut b = good.clone();
        b[3] = 3;
        assert_eq!(
            parse(&refill(b), &ip),
            Err(Error::AddressCountMismatch {
                count: 3,
                len: 24,
                expected: 28
            })
        );
        let mut b = good.clone();
        b.extend_from_slice(&[0, 0]);
        assert!(matches!(
            parse(&refill(b), &ip),
            Err(Error::AddressCountMismatch { .. })
        ));

        let mut b = good.clone();
        b[9] ^= 0x01;
        assert!(matches!(parse(&b, &ip), Err(Error::BadChecksum { .. })));

        let mut b = good.clone();
        b[4] = AUTH_TYPE_AH;
        assert_eq!(parse(&refill(b), &ip), Err(Error::AuthAhDeprecated));

        let mut b = good.clone();
        b[4] = 9;
        assert_eq!(parse(&refill(b), &ip), Err(Error::AuthTypeUnknown(9)));
    }

    #[test]
    fn labels_are_distinct() {
        let all = [
            Error::TooShort { len: 0 },
            Error::BadVersion(0),
            Error::BadType(0),
            Error::V2OverIpv6,
            Error::AddressCountMismatch {
                count: 0,
                len: 0,
                expected: 0,
            },
            Error::BadChecksum { got: 0 },
            Error::AuthAhDeprecated,
            Error::AuthTypeUnknown(0),
        ];
        let mut labels: Vec<_> = all.iter().map(Error::as_str).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), all.len());
    }

    #[test]
    fn accessors_are_bounds_checked() {
        let bytes = v2_repr().to_bytes(&v4_pair());
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.ipv4_addr(1), Some(Ipv4Addr::new(192, 0, 2, 101)));
        assert_eq!(packet.ipv4_addr(4), None);
        assert_eq!(packet.ipv6_addr(1), None);
        assert_eq!(packet.auth_data(), Some([0; 8]));
        assert_eq!(
            Packet::new_checked(&bytes[..3]).unwrap_err().as_str(),
            "too_short"
        );
    }
}
