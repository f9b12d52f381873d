//! The BFD control packet (RFC 5880 section 4.1).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       My Discriminator                        |
//! |                      Your Discriminator                       |
//! |                    Desired Min TX Interval                    |
//! |                   Required Min RX Interval                    |
//! |                 Required Min Echo RX Interval                 |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   Auth Type   |   Auth Len    |    Authentication Data...     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Intervals are microseconds. [`Repr::parse`] applies the checks of section 6.8.6
//! that need no session (version, lengths, detect multiplier, multipoint, zero My
//! Discriminator); the session applies the rest.

/// Length of the mandatory section.
pub const HEADER_LEN: usize = 24;
/// The only version RFC 5880 defines.
pub const VERSION: u8 = 1;
/// Auth section header: type and length.
pub const AUTH_HEADER_LEN: usize = 2;
/// Keyed MD5 / SHA1 section lengths (section 4.3, 4.4).
pub const AUTH_MD5_LEN: usize = 24;
pub const AUTH_SHA1_LEN: usize = 28;
/// Simple password: 1 to 16 bytes (section 4.2).
pub const PASSWORD_MAX: usize = 16;

mod field {
    pub type Field = std::ops::Range<usize>;
    pub const VERS_DIAG: usize = 0;
    pub const FLAGS: usize = 1;
    pub const DETECT_MULT: usize = 2;
    pub const LENGTH: usize = 3;
    pub const MY_DISC: Field = 4..8;
    pub const YOUR_DISC: Field = 8..12;
    pub const DESIRED_MIN_TX: Field = 12..16;
    pub const REQUIRED_MIN_RX: Field = 16..20;
    pub const REQUIRED_MIN_ECHO_RX: Field = 20..24;
    pub const AUTH_TYPE: usize = 24;
    pub const AUTH_LEN: usize = 25;
}

mod flag {
    pub const POLL: u8 = 0x20;
    pub const FINAL: u8 = 0x10;
    pub const CPI: u8 = 0x08;
    pub const AUTH: u8 = 0x04;
    pub const DEMAND: u8 = 0x02;
    pub const MULTIPOINT: u8 = 0x01;
}

/// Auth Type codes (section 4.1).
pub mod auth_type {
    pub const SIMPLE: u8 = 1;
    pub const KEYED_MD5: u8 = 2;
    pub const METICULOUS_MD5: u8 = 3;
    pub const KEYED_SHA1: u8 = 4;
    pub const METICULOUS_SHA1: u8 = 5;
}

/// Why a datagram is not a well-formed BFD control packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("shorter than the {HEADER_LEN}-byte BFD header ({len} bytes)")]
    TooShort { len: usize },
    #[error("BFD version {0} is not 1")]
    BadVersion(u8),
    #[error("length field {field} does not fit a {len}-byte datagram")]
    BadLength { field: u8, len: usize },
    #[error("detect multiplier is zero")]
    ZeroDetectMult,
    #[error("multipoint bit set")]
    Multipoint,
    #[error("my discriminator is zero")]
    ZeroMyDiscriminator,
    #[error("authentication section is malformed")]
    BadAuthSection,
    #[error("unknown authentication type {0}")]
    AuthTypeUnknown(u8),
}

impl Error {
    /// Stable label for per-cause counters and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Error::TooShort { .. } => "too_short",
            Error::BadVersion(_) => "bad_version",
            Error::BadLength { .. } => "bad_length",
            Error::ZeroDetectMult => "zero_detect_mult",
            Error::Multipoint => "multipoint",
            Error::ZeroMyDiscriminator => "zero_my_discriminator",
            Error::BadAuthSection => "bad_auth_section",
            Error::AuthTypeUnknown(_) => "auth_type_unknown",
        }
    }
}

/// Session state (section 4.1, "Sta").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    AdminDown = 0,
    Down = 1,
    Init = 2,
    Up = 3,
}

impl State {
    pub fn from_bits(bits: u8) -> State {
        match bits & 3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::AdminDown => "admin_down",
            State::Down => "down",
            State::Init => "init",
            State::Up => "up",
        }
    }
}

/// Diagnostic code (section 4.1): why the session last left Up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diag {
    None,
    DetectionTimeExpired,
    EchoFailed,
    NeighborDown,
    ForwardingReset,
    PathDown,
    ConcatenatedPathDown,
    AdminDown,
    ReverseConcatenatedPathDown,
    /// 9-31: reserved, carried as received.
    Other(u8),
}

impl Diag {
    pub fn from_code(code: u8) -> Diag {
        match code & 0x1f {
            0 => Diag::None,
            1 => Diag::DetectionTimeExpired,
            2 => Diag::EchoFailed,
            3 => Diag::NeighborDown,
            4 => Diag::ForwardingReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdminDown,
            8 => Diag::ReverseConcatenatedPathDown,
            other => Diag::Other(other),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Diag::None => 0,
            Diag::DetectionTimeExpired => 1,
            Diag::EchoFailed => 2,
            Diag::NeighborDown => 3,
            Diag::ForwardingReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdminDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::Other(code) => code & 0x1f,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Diag::None => "none",
            Diag::DetectionTimeExpired => "detection_time_expired",
            Diag::EchoFailed => "echo_failed",
            Diag::NeighborDown => "neighbor_down",
            Diag::ForwardingReset => "forwarding_reset",
            Diag::PathDown => "path_down",
            Diag::ConcatenatedPathDown => "concatenated_path_down",
            Diag::AdminDown => "admin_down",
            Diag::ReverseConcatenatedPathDown => "reverse_concatenated_path_down",
            Diag::Other(_) => "reserved",
        }
    }
}

/// A read/write view of a BFD control packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len), so every accessor of the
    /// mandatory section and of the auth header (when the A bit is set) is in range.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Section 6.8.6: Length at least 24 (26 with the A bit) and at most the datagram.
    /// Bytes past Length (UDP padding) are ignored, as the RFC allows.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::TooShort { len });
        }
        let field = self.length();
        let min = if self.auth_present() {
            HEADER_LEN + AUTH_HEADER_LEN
        } else {
            HEADER_LEN
        };
        if usize::from(field) < min || usize::from(field) > len {
            return Err(Error::BadLength { field, len });
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u32_at(&self, range: field::Field) -> u32 {
        let b = &self.buffer.as_ref()[range];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERS_DIAG] >> 5
    }

    pub fn diag(&self) -> Diag {
        Diag::from_code(self.buffer.as_ref()[field::VERS_DIAG])
    }

    pub fn state(&self) -> State {
        State::from_bits(self.buffer.as_ref()[field::FLAGS] >> 6)
    }

    fn flag(&self, bit: u8) -> bool {
        self.buffer.as_ref()[field::FLAGS] & bit != 0
    }

    pub fn poll(&self) -> bool {
        self.flag(flag::POLL)
    }

    pub fn final_(&self) -> bool {
        self.flag(flag::FINAL)
    }

    pub fn cpi(&self) -> bool {
        self.flag(flag::CPI)
    }

    pub fn auth_present(&self) -> bool {
        self.flag(flag::AUTH)
    }

    pub fn demand(&self) -> bool {
        self.flag(flag::DEMAND)
    }

    pub fn multipoint(&self) -> bool {
        self.flag(flag::MULTIPOINT)
    }

    pub fn detect_mult(&self) -> u8 {
        self.buffer.as_ref()[field::DETECT_MULT]
    }

    pub fn length(&self) -> u8 {
        self.buffer.as_ref()[field::LENGTH]
    }

    pub fn my_discriminator(&self) -> u32 {
        self.u32_at(field::MY_DISC)
    }

    pub fn your_discriminator(&self) -> u32 {
        self.u32_at(field::YOUR_DISC)
    }

    pub fn desired_min_tx(&self) -> u32 {
        self.u32_at(field::DESIRED_MIN_TX)
    }

    pub fn required_min_rx(&self) -> u32 {
        self.u32_at(field::REQUIRED_MIN_RX)
    }

    pub fn required_min_echo_rx(&self) -> u32 {
        self.u32_at(field::REQUIRED_MIN_ECHO_RX)
    }

    /// Auth Type, `None` without the A bit or when the section is cut short.
    pub fn auth_type(&self) -> Option<u8> {
        self.auth_present()
            .then(|| self.buffer.as_ref().get(field::AUTH_TYPE).copied())
            .flatten()
    }

    /// The whole auth section as Auth Len says, `None` unless it ends at Length.
    pub fn auth_section(&self) -> Option<&[u8]> {
        if !self.auth_present() {
            return None;
        }
        let data = self.buffer.as_ref();
        let auth_len = usize::from(*data.get(field::AUTH_LEN)?);
        let end = field::AUTH_TYPE.checked_add(auth_len)?;
        // The section runs to the end of the packet: digests cover exactly Length.
        if end != usize::from(self.length()) || auth_len < AUTH_HEADER_LEN {
            return None;
        }
        data.get(field::AUTH_TYPE..end)
    }

    /// The packet as Length says (what a digest covers).
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[..usize::from(self.length()).min(data.len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_u32_at(&mut self, range: field::Field, value: u32) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_version_diag(&mut self, version: u8, diag: Diag) {
        self.buffer.as_mut()[field::VERS_DIAG] = (version << 5) | diag.code();
    }

    /// State and the six flag bits in one byte.
    pub fn set_state_flags(&mut self, state: State, flags: u8) {
        self.buffer.as_mut()[field::FLAGS] = ((state as u8) << 6) | (flags & 0x3f);
    }

    pub fn set_detect_mult(&mut self, mult: u8) {
        self.buffer.as_mut()[field::DETECT_MULT] = mult;
    }

    pub fn set_length(&mut self, len: u8) {
        self.buffer.as_mut()[field::LENGTH] = len;
    }

    pub fn set_my_discriminator(&mut self, value: u32) {
        self.set_u32_at(field::MY_DISC, value);
    }

    pub fn set_your_discriminator(&mut self, value: u32) {
        self.set_u32_at(field::YOUR_DISC, value);
    }

    pub fn set_desired_min_tx(&mut self, value: u32) {
        self.set_u32_at(field::DESIRED_MIN_TX, value);
    }

    pub fn set_required_min_rx(&mut self, value: u32) {
        self.set_u32_at(field::REQUIRED_MIN_RX, value);
    }

    pub fn set_required_min_echo_rx(&mut self, value: u32) {
        self.set_u32_at(field::REQUIRED_MIN_ECHO_RX, value);
    }

    /// The bytes after the mandatory section; panics past the buffer.
    pub fn auth_section_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::AUTH_TYPE..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The authentication section as carried (section 4.2-4.4). Digests are checked by
/// [`crate::auth`], which needs the key and the whole packet.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum AuthSection {
    /// Simple password: key id and 1 to 16 bytes.
    Simple { key_id: u8, password: Vec<u8> },
    /// Keyed or meticulous MD5 / SHA1: `auth_type` is one of [`auth_type`]'s codes 2-5;
    /// the digest is 16 (MD5) or 20 (SHA1) bytes.
    Keyed {
        auth_type: u8,
        key_id: u8,
        sequence: u32,
        digest: Vec<u8>,
    },
}

// Passwords and digests stay out of logs.
impl std::fmt::Debug for AuthSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthSection::Simple { key_id, .. } => write!(f, "Simple {{ key_id: {key_id}, .. }}"),
            AuthSection::Keyed {
                auth_type,
                key_id,
                sequence,
                ..
            } => write!(
                f,
                "Keyed {{ auth_type: {auth_type}, key_id: {key_id}, sequence: {sequence}, .. }}"
            ),
        }
    }
}

impl AuthSection {
    pub fn auth_type(&self) -> u8 {
        match self {
            AuthSection::Simple { .. } => auth_type::SIMPLE,
            AuthSection::Keyed { auth_type, .. } => *auth_type,
        }
    }

    pub fn key_id(&self) -> u8 {
        match self {
            AuthSection::Simple { key_id, .. } | AuthSection::Keyed { key_id, .. } => *key_id,
        }
    }

    pub fn buffer_len(&self) -> usize {
        match self {
            AuthSection::Simple { password, .. } => AUTH_HEADER_LEN + 1 + password.len(),
            AuthSection::Keyed { digest, .. } => AUTH_HEADER_LEN + 6 + digest.len(),
        }
    }

    /// Digest length of a keyed type, `None` for others.
    pub fn digest_len(auth_type: u8) -> Option<usize> {
        match auth_type {
            auth_type::KEYED_MD5 | auth_type::METICULOUS_MD5 => Some(16),
            auth_type::KEYED_SHA1 | auth_type::METICULOUS_SHA1 => Some(20),
            _ => None,
        }
    }

    fn parse(section: &[u8]) -> Result<AuthSection, Error> {
        let auth_type = section[0];
        let len = section.len();
        if auth_type == auth_type::SIMPLE {
            if !(AUTH_HEADER_LEN + 2..=AUTH_HEADER_LEN + 1 + PASSWORD_MAX).contains(&len) {
                return Err(Error::BadAuthSection);
            }
            return Ok(AuthSection::Simple {
                key_id: section[2],
                password: section[3..].to_vec(),
            });
        }
        let digest_len = Self::digest_len(auth_type).ok_or(Error::AuthTypeUnknown(auth_type))?;
        if len != AUTH_HEADER_LEN + 6 + digest_len {
            return Err(Error::BadAuthSection);
        }
        Ok(AuthSection::Keyed {
            auth_type,
            key_id: section[2],
            sequence: u32::from_be_bytes([section[4], section[5], section[6], section[7]]),
            digest: section[8..].to_vec(),
        })
    }

    fn emit(&self, out: &mut [u8]) {
        out[0] = self.auth_type();
        out[1] = u8::try_from(self.buffer_len()).expect("auth section fits a byte");
        out[2] = self.key_id();
        match self {
            AuthSection::Simple { password, .. } => out[3..].copy_from_slice(password),
            AuthSection::Keyed {
                sequence, digest, ..
            } => {
                out[3] = 0;
                out[4..8].copy_from_slice(&sequence.to_be_bytes());
                out[8..].copy_from_slice(digest);
            }
        }
    }
}

/// A decoded control packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repr {
    pub diag: Diag,
    pub state: State,
    pub poll: bool,
    pub final_: bool,
    /// Control Plane Independent.
    pub cpi: bool,
    /// Demand mode: parsed, never acted on.
    pub demand: bool,
    pub detect_mult: u8,
    pub my_discriminator: u32,
    pub your_discriminator: u32,
    /// Microseconds.
    pub desired_min_tx: u32,
    pub required_min_rx: u32,
    pub required_min_echo_rx: u32,
    pub auth: Option<AuthSection>,
}

impl Repr {
    /// Decodes `packet` with the session-independent checks of section 6.8.6.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr, Error> {
        packet.check_len()?;
        if packet.version() != VERSION {
            return Err(Error::BadVersion(packet.version()));
        }
        if packet.detect_mult() == 0 {
            return Err(Error::ZeroDetectMult);
        }
        if packet.multipoint() {
            return Err(Error::Multipoint);
        }
        if packet.my_discriminator() == 0 {
            return Err(Error::ZeroMyDiscriminator);
        }
        let auth = if packet.auth_present() {
            let section = packet.auth_section().ok_or(Error::BadAuthSection)?;
            Some(AuthSection::parse(section)?)
        } else {
            None
        };
        Ok(Repr {
            diag: packet.diag(),
            state: packet.state(),
            poll: packet.poll(),
            final_: packet.final_(),
            cpi: packet.cpi(),
            demand: packet.demand(),
            detect_mult: packet.detect_mult(),
            my_discriminator: packet.my_discriminator(),
            your_discriminator: packet.your_discriminator(),
            desired_min_tx: packet.desired_min_tx(),
            required_min_rx: packet.required_min_rx(),
            required_min_echo_rx: packet.required_min_echo_rx(),
            auth,
        })
    }

    /// Convenience: check and parse a datagram.
    pub fn decode(bytes: &[u8]) -> Result<Repr, Error> {
        Repr::parse(&Packet::new_checked(bytes)?)
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.auth.as_ref().map_or(0, AuthSection::buffer_len)
    }

    fn flags(&self) -> u8 {
        let mut flags = 0;
        for (on, bit) in [
            (self.poll, flag::POLL),
            (self.final_, flag::FINAL),
            (self.cpi, flag::CPI),
            (self.auth.is_some(), flag::AUTH),
            (self.demand, flag::DEMAND),
        ] {
            if on {
                flags |= bit;
            }
        }
        flags
    }

    /// Writes the packet; the buffer must be exactly [`buffer_len`](Self::buffer_len)
    /// bytes (a caller bug otherwise, which panics).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let len = self.buffer_len();
        assert_eq!(packet.as_ref().len(), len, "BFD emit buffer length");
        packet.set_version_diag(VERSION, self.diag);
        packet.set_state_flags(self.state, self.flags());
        packet.set_detect_mult(self.detect_mult);
        packet.set_length(u8::try_from(len).expect("BFD packet fits the length byte"));
        packet.set_my_discriminator(self.my_discriminator);
        packet.set_your_discriminator(self.your_discriminator);
        packet.set_desired_min_tx(self.desired_min_tx);
        packet.set_required_min_rx(self.required_min_rx);
        packet.set_required_min_echo_rx(self.required_min_echo_rx);
        if let Some(auth) = &self.auth {
            auth.emit(packet.auth_section_mut());
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = vec![0u8; self.buffer_len()];
        self.emit(&mut Packet::new_unchecked(&mut buf[..]));
        buf
    }
}
