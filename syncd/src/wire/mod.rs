//! The kernel's IPVS connection-sync wire format (net/netfilter/ipvs/ip_vs_sync.c).
//!
//! [`v1`] is what kernels send by default (`net.ipv4.vs.sync_version = 1`), [`v0`] the
//! original IPv4-only format. Both share the first four bytes' layout closely enough that a
//! receiver tells them apart the way the kernel does ([`ProtocolVersion::detect`]).
//!
//! Checks follow `ip_vs_process_message` and `ip_vs_proc_sync_conn`. Each [`Error`] says how
//! a kernel backup would treat the same input ([`Error::scope`]): drop the datagram, drop
//! only that entry, or accept it although it is not what a kernel sends.

/// Big-endian fields at fixed ranges; callers have checked the lengths.
mod bytes {
    use std::net::Ipv4Addr;
    use std::ops::Range;

    pub fn be16(b: &[u8], r: Range<usize>) -> u16 {
        let mut a = [0; 2];
        a.copy_from_slice(&b[r]);
        u16::from_be_bytes(a)
    }

    pub fn be32(b: &[u8], r: Range<usize>) -> u32 {
        let mut a = [0; 4];
        a.copy_from_slice(&b[r]);
        u32::from_be_bytes(a)
    }

    pub fn ipv4(b: &[u8], r: Range<usize>) -> Ipv4Addr {
        Ipv4Addr::from(be32(b, r))
    }
}

/// What both formats check first, as `ip_vs_process_message` does: a whole header, and a size
/// field equal to the datagram's length.
fn check_message_len(
    buf: &[u8],
    header_len: usize,
    size_field: std::ops::Range<usize>,
) -> Result<(), Error> {
    let len = buf.len();
    if len < header_len {
        return Err(Error::HeaderTruncated);
    }
    let size = bytes::be16(buf, size_field);
    if usize::from(size) != len {
        return Err(Error::SizeMismatch {
            field: size,
            actual: len,
        });
    }
    Ok(())
}

/// The owned message of one format: its sync id and connections. `parse` is strict:
/// entry-scope faults and lints are errors too.
macro_rules! message_repr {
    ($version:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Repr {
            pub sync_id: u8,
            pub conns: Vec<Connection>,
        }

        impl Repr {
            pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, Error> {
                let (sync_id, conns) = decode_packet(packet)?.strict()?;
                Ok(Repr { sync_id, conns })
            }

            pub fn buffer_len(&self) -> Result<usize, EmitError> {
                $version.message_len(&self.conns)
            }

            /// Writes the message into `packet`, whose buffer must be exactly
            /// [`Repr::buffer_len`] long or longer (the size field then says how much of it is
            /// the message).
            pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
                &self,
                packet: &mut Packet<T>,
            ) -> Result<(), EmitError> {
                $version.emit_message(self.sync_id, &self.conns, packet.buffer.as_mut())
            }

            pub fn to_bytes(&self) -> Result<Vec<u8>, EmitError> {
                $version.message_bytes(self.sync_id, &self.conns)
            }
        }
    };
}

mod builder;
pub mod hello;
pub mod v0;
pub mod v1;

pub use builder::{MessageBuilder, build_messages};

use crate::conn::Connection;

/// Multicast group the kernel daemons use by default.
pub const SYNC_GROUP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(224, 0, 0, 81);
/// UDP port of sync thread 0; thread n uses `SYNC_PORT + n`.
pub const SYNC_PORT: u16 = 8848;
/// A master's message limit at a 1500-byte MTU: 1500 - IPv4 header - UDP header.
pub const DEFAULT_MAX_LEN: usize = 1472;

/// Which wire format a message uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolVersion {
    V0,
    V1,
}

impl ProtocolVersion {
    /// The kernel's test: version byte 1 with reserved and spare zero is version 1, anything
    /// else is read as version 0. We refuse the ambiguous remainder (first byte 0, so a
    /// version 0 message of zero entries, yet longer than a bare header) as
    /// [`Error::UnknownVersion`] rather than silently treating it as empty.
    pub fn detect(buf: &[u8]) -> Result<ProtocolVersion, Error> {
        if buf.len() < v0::HEADER_LEN {
            return Err(Error::HeaderTruncated);
        }
        if buf[0] != 0 {
            return Ok(ProtocolVersion::V0);
        }
        if buf.len() >= v1::HEADER_LEN && buf[5] == 1 && buf[6] == 0 && buf[7] == 0 {
            return Ok(ProtocolVersion::V1);
        }
        if buf.len() == v0::HEADER_LEN {
            return Ok(ProtocolVersion::V0);
        }
        Err(Error::UnknownVersion(buf.get(5).copied().unwrap_or(0)))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolVersion::V0 => "v0",
            ProtocolVersion::V1 => "v1",
        }
    }
}

/// How a kernel backup treats input that produced an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The whole datagram is dropped (entries before the fault were already applied).
    Message,
    /// Only this entry is skipped; the rest of the message is processed.
    Entry,
    /// The kernel accepts it; no kernel sends it. Reported so peers can be diagnosed.
    Lint,
}

/// Why a sync message or entry does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("message shorter than its header")]
    HeaderTruncated,
    #[error("size field says {field} bytes, datagram has {actual}")]
    SizeMismatch { field: u16, actual: usize },
    #[error("first byte 0 but version byte {0} (or spare non-zero): not a known version")]
    UnknownVersion(u8),
    #[error("entry {index} runs past the end of the message")]
    EntryTruncated { index: u8 },
    #[error("entry {index} size {size} is smaller than its fixed part")]
    EntrySizeTooSmall { index: u8, size: u16 },
    #[error("entry {index} has version {version}, only 0 is known")]
    EntryVersion { index: u8, version: u8 },
    #[error("entry {index} has unknown type {entry_type:#04x}")]
    EntryType { index: u8, entry_type: u8 },
    #[error("option header runs past the end of its entry")]
    OptionTruncated,
    #[error("option {kind} has length 0")]
    OptionEmpty { kind: u8 },
    #[error("option {kind} of {len} bytes runs past the end of its entry")]
    OptionOverflow { kind: u8, len: u8 },
    #[error("sequence option of {0} bytes, expected 24")]
    SeqDataLength(u8),
    #[error("option {0} appears twice in one entry")]
    OptionDuplicate(u8),
    #[error("persistence-engine name of {0} bytes, at most 16 allowed")]
    PeNameTooLong(u8),
    #[error("unknown mandatory option {0}")]
    OptionUnknownMandatory(u8),
    #[error("persistence-engine data without a persistence-engine name")]
    PeDataWithoutName,
    #[error("protocol {0} is not one a kernel backup accepts")]
    UnsupportedProtocol(u8),
    #[error("state {state} is out of range for protocol {protocol}")]
    InvalidState { protocol: u8, state: u16 },
    #[error("padding between entries is not zero")]
    PaddingNonZero,
    #[error("{0} bytes after the last entry")]
    TrailingBytes(usize),
}

impl Error {
    /// Stable label for per-cause counters.
    pub fn as_str(&self) -> &'static str {
        match self {
            Error::HeaderTruncated => "header_truncated",
            Error::SizeMismatch { .. } => "size_mismatch",
            Error::UnknownVersion(_) => "unknown_version",
            Error::EntryTruncated { .. } => "entry_truncated",
            Error::EntrySizeTooSmall { .. } => "entry_size_too_small",
            Error::EntryVersion { .. } => "entry_version",
            Error::EntryType { .. } => "entry_type",
            Error::OptionTruncated => "option_truncated",
            Error::OptionEmpty { .. } => "option_empty",
            Error::OptionOverflow { .. } => "option_overflow",
            Error::SeqDataLength(_) => "seq_data_length",
            Error::OptionDuplicate(_) => "option_duplicate",
            Error::PeNameTooLong(_) => "pe_name_too_long",
            Error::OptionUnknownMandatory(_) => "option_unknown_mandatory",
            Error::PeDataWithoutName => "pe_data_without_name",
            Error::UnsupportedProtocol(_) => "unsupported_protocol",
            Error::InvalidState { .. } => "invalid_state",
            Error::PaddingNonZero => "padding_nonzero",
            Error::TrailingBytes(_) => "trailing_bytes",
        }
    }

    /// Every label, for pre-registering counters.
    pub const LABELS: &'static [&'static str] = &[
        "header_truncated",
        "size_mismatch",
        "unknown_version",
        "entry_truncated",
        "entry_size_too_small",
        "entry_version",
        "entry_type",
        "option_truncated",
        "option_empty",
        "option_overflow",
        "seq_data_length",
        "option_duplicate",
        "pe_name_too_long",
        "option_unknown_mandatory",
        "pe_data_without_name",
        "unsupported_protocol",
        "invalid_state",
        "padding_nonzero",
        "trailing_bytes",
    ];

    pub fn scope(&self) -> Scope {
        match self {
            Error::OptionUnknownMandatory(_)
            | Error::PeDataWithoutName
            | Error::UnsupportedProtocol(_)
            | Error::InvalidState { .. } => Scope::Entry,
            Error::PaddingNonZero | Error::TrailingBytes(_) => Scope::Lint,
            _ => Scope::Message,
        }
    }
}

/// Why a connection cannot be put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    #[error("version 0 carries IPv4 connections only")]
    Ipv6InV0,
    #[error("persistence-engine data of {0} bytes, at most 255 fit")]
    PeDataTooLong(usize),
    #[error("persistence-engine name of {0} bytes, at most 16 allowed")]
    PeNameTooLong(usize),
    #[error("buffer of {actual} bytes, {needed} needed")]
    BufferTooSmall { needed: usize, actual: usize },
    #[error("{0} entries do not fit the one-byte count")]
    TooManyEntries(usize),
    #[error("message of {0} bytes does not fit the 16-bit size field")]
    MessageTooLong(usize),
}

impl EmitError {
    pub fn as_str(&self) -> &'static str {
        match self {
            EmitError::Ipv6InV0 => "ipv6_in_v0",
            EmitError::PeDataTooLong(_) => "pe_data_too_long",
            EmitError::PeNameTooLong(_) => "pe_name_too_long",
            EmitError::BufferTooSmall { .. } => "buffer_too_small",
            EmitError::TooManyEntries(_) => "too_many_entries",
            EmitError::MessageTooLong(_) => "message_too_long",
        }
    }
}

/// What differs between the two formats, so that building, emitting and decoding a message
/// are written once for both.
impl ProtocolVersion {
    pub fn header_len(self) -> usize {
        match self {
            ProtocolVersion::V0 => v0::HEADER_LEN,
            ProtocolVersion::V1 => v1::HEADER_LEN,
        }
    }

    /// Where the next entry starts when the message so far is `len` bytes: version 1 pads
    /// entries to 4 bytes.
    pub fn entry_start(self, len: usize) -> usize {
        match self {
            ProtocolVersion::V0 => len,
            ProtocolVersion::V1 => len.next_multiple_of(4),
        }
    }

    pub fn entry_len(self, conn: &Connection) -> Result<usize, EmitError> {
        match self {
            ProtocolVersion::V0 => v0::entry_len(conn),
            ProtocolVersion::V1 => v1::entry_len(conn),
        }
    }

    /// Writes `conn` into `entry`, exactly [`ProtocolVersion::entry_len`] bytes.
    pub fn emit_entry(self, conn: &Connection, entry: &mut [u8]) -> Result<(), EmitError> {
        match self {
            ProtocolVersion::V0 => v0::emit_entry(conn, &mut v0::Entry::new_unchecked(entry)),
            ProtocolVersion::V1 => v1::emit_entry(conn, &mut v1::Entry::new_unchecked(entry)),
        }
    }

    /// Writes the header of a message of `size` bytes and `count` entries.
    pub fn emit_header(self, message: &mut [u8], sync_id: u8, size: u16, count: u8) {
        match self {
            ProtocolVersion::V0 => {
                let mut packet = v0::Packet::new_unchecked(message);
                packet.set_conn_count(count);
                packet.set_sync_id(sync_id);
                packet.set_size(size);
            }
            ProtocolVersion::V1 => {
                let mut packet = v1::Packet::new_unchecked(message);
                packet.set_reserved(0);
                packet.set_sync_id(sync_id);
                packet.set_size(size);
                packet.set_conn_count(count);
                packet.set_version(v1::VERSION);
                packet.set_spare(0);
            }
        }
    }

    /// The length of a message holding `conns`: header, entries and version 1's padding.
    pub fn message_len(self, conns: &[Connection]) -> Result<usize, EmitError> {
        let mut len = self.header_len();
        for conn in conns {
            len = self.entry_start(len) + self.entry_len(conn)?;
        }
        Ok(len)
    }

    /// Writes a whole message into `buf`, which must be at least
    /// [`ProtocolVersion::message_len`] long (the size field says how much is the message).
    pub fn emit_message(
        self,
        sync_id: u8,
        conns: &[Connection],
        buf: &mut [u8],
    ) -> Result<(), EmitError> {
        let len = self.message_len(conns)?;
        if conns.len() > usize::from(u8::MAX) {
            return Err(EmitError::TooManyEntries(conns.len()));
        }
        if len > usize::from(u16::MAX) {
            return Err(EmitError::MessageTooLong(len));
        }
        if buf.len() < len {
            return Err(EmitError::BufferTooSmall {
                needed: len,
                actual: buf.len(),
            });
        }
        self.emit_header(buf, sync_id, len as u16, conns.len() as u8);
        let mut at = self.header_len();
        for conn in conns {
            let start = self.entry_start(at);
            buf[at..start].fill(0);
            let end = start + self.entry_len(conn)?;
            self.emit_entry(conn, &mut buf[start..end])?;
            at = end;
        }
        Ok(())
    }

    pub fn message_bytes(self, sync_id: u8, conns: &[Connection]) -> Result<Vec<u8>, EmitError> {
        let mut buf = vec![0; self.message_len(conns)?];
        self.emit_message(sync_id, conns, &mut buf)?;
        Ok(buf)
    }
}

/// A message decoded the way a kernel backup reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub version: ProtocolVersion,
    pub sync_id: u8,
    /// Entries a kernel backup would apply, in message order.
    pub conns: Vec<Connection>,
    /// Entry-scope faults (the entry was skipped) and lints (the entry was kept).
    pub issues: Vec<Error>,
}

impl Decoded {
    /// Reads `entries` with the kernel's tolerance: a message-scope fault drops the whole
    /// datagram, an entry-scope one skips the entry and is listed in `issues`.
    pub(crate) fn read<E>(
        version: ProtocolVersion,
        sync_id: u8,
        count: u8,
        entries: impl Iterator<Item = Result<E, Error>>,
        parse: impl Fn(&E) -> Result<Connection, Error>,
    ) -> Result<Decoded, Error> {
        let mut conns = Vec::with_capacity(usize::from(count));
        let mut issues = Vec::new();
        for entry in entries {
            match parse(&entry?) {
                Ok(conn) => conns.push(conn),
                Err(e) if e.scope() == Scope::Entry => issues.push(e),
                Err(e) => return Err(e),
            }
        }
        Ok(Decoded {
            version,
            sync_id,
            conns,
            issues,
        })
    }

    /// The strict reading: any issue, lints included, is the error.
    pub fn strict(self) -> Result<(u8, Vec<Connection>), Error> {
        match self.issues.first() {
            Some(issue) => Err(*issue),
            None => Ok((self.sync_id, self.conns)),
        }
    }
}

/// Decode any sync message with the kernel's tolerance: `Err` where a kernel backup drops
/// the datagram (before applying anything, unlike the kernel, which has applied the entries
/// ahead of the fault), skipped entries and lints listed in [`Decoded::issues`].
pub fn decode(buf: &[u8]) -> Result<Decoded, Error> {
    match ProtocolVersion::detect(buf)? {
        ProtocolVersion::V1 => v1::decode(buf),
        ProtocolVersion::V0 => v0::decode(buf),
    }
}

/// A backup accepts a message if its own sync id is 0 or equal to the message's.
pub fn sync_id_accepted(own: u8, message: u8) -> bool {
    own == 0 || own == message
}

/// The kernel backup's entry checks that are not about framing: protocol and state range.
/// Templates are exempt, as in `ip_vs_proc_sync_conn`.
pub(crate) fn check_semantics(conn: &Connection) -> Result<(), Error> {
    if conn.is_template() {
        return Ok(());
    }
    let states = crate::conn::num_states(conn.protocol)
        .ok_or(Error::UnsupportedProtocol(conn.protocol.0))?;
    if conn.state >= states {
        return Err(Error::InvalidState {
            protocol: conn.protocol.0,
            state: conn.state,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_complete_and_unique() {
        let mut labels = Error::LABELS.to_vec();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Error::LABELS.len());
        for e in [
            Error::HeaderTruncated,
            Error::TrailingBytes(1),
            Error::InvalidState {
                protocol: 6,
                state: 11,
            },
        ] {
            assert!(Error::LABELS.contains(&e.as_str()));
        }
    }

    #[test]
    fn detect_follows_the_kernel() {
        assert_eq!(
            ProtocolVersion::detect(&[0, 5, 0]),
            Err(Error::HeaderTruncated)
        );
        assert_eq!(
            ProtocolVersion::detect(&[0, 5, 0, 8, 0, 1, 0, 0]),
            Ok(ProtocolVersion::V1)
        );
        assert_eq!(
            ProtocolVersion::detect(&[1, 5, 0, 8, 0, 1, 0, 0]),
            Ok(ProtocolVersion::V0)
        );
        assert_eq!(
            ProtocolVersion::detect(&[0, 5, 0, 8, 0, 2, 0, 0]),
            Err(Error::UnknownVersion(2))
        );
        assert_eq!(
            ProtocolVersion::detect(&[0, 5, 0, 8, 0, 1, 0, 1]),
            Err(Error::UnknownVersion(1))
        );
        assert_eq!(
            ProtocolVersion::detect(&[0, 5, 0, 4]),
            Ok(ProtocolVersion::V0)
        );
    }

    #[test]
    fn sync_id_filter() {
        assert!(sync_id_accepted(0, 9));
        assert!(sync_id_accepted(5, 5));
        assert!(!sync_id_accepted(5, 6));
    }
}
