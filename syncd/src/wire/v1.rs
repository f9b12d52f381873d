//! Version 1 sync messages: 8-byte header, then entries of 36 (IPv4) or 72 (IPv6) bytes plus
//! option TLVs, each entry after the first starting on a 4-byte boundary.
//!
//! ```text
//!  header:  reserved=0 | syncid | size (be16) | nr_conns | version=1 | spare=0 (2)
//!  entry:   type | protocol | ver(4 bits)+size(12 bits) | flags (be32) | state (be16)
//!           cport | vport | dport | fwmark (be32) | timeout s (be32) | caddr vaddr daddr
//!  option:  type | length | data (length bytes, 1..=255)
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::bytes::{be16, be32};
use super::{Decoded, EmitError, Error, ProtocolVersion, check_message_len, check_semantics};
use crate::conn::{Addrs, ConnFlags, Connection, Protocol, SeqData};

pub const HEADER_LEN: usize = 8;
pub const VERSION: u8 = 1;
/// Fixed part of an IPv4 entry (`struct ip_vs_sync_v4`).
pub const ENTRY_V4_LEN: usize = 36;
/// Fixed part of an IPv6 entry (`struct ip_vs_sync_v6`).
pub const ENTRY_V6_LEN: usize = 72;
/// Type bit marking an IPv6 entry (`STYPE_F_INET6`).
pub const TYPE_F_INET6: u8 = 1;
/// `SVER_SHIFT` / `SVER_MASK`: the entry's own version sits above a 12-bit size.
pub const SVER_SHIFT: u16 = 12;
pub const SVER_MASK: u16 = 0x0fff;

pub const OPT_SEQ_DATA: u8 = 1;
pub const OPT_PE_DATA: u8 = 2;
pub const OPT_PE_NAME: u8 = 3;
/// Option types with this bit may be skipped by receivers that do not know them.
pub const OPT_F_PARAM: u8 = 1 << 6;
/// `IP_VS_PENAME_MAXLEN`.
pub const PE_NAME_MAX_LEN: usize = 16;
/// `IP_VS_PEDATA_MAXLEN`.
pub const PE_DATA_MAX_LEN: usize = 255;

mod field {
    use std::ops::Range;

    pub const RESERVED: usize = 0;
    pub const SYNC_ID: usize = 1;
    pub const SIZE: Range<usize> = 2..4;
    pub const NR_CONNS: usize = 4;
    pub const VERSION: usize = 5;
    pub const SPARE: Range<usize> = 6..8;

    pub const E_TYPE: usize = 0;
    pub const E_PROTOCOL: usize = 1;
    pub const E_VER_SIZE: Range<usize> = 2..4;
    pub const E_FLAGS: Range<usize> = 4..8;
    pub const E_STATE: Range<usize> = 8..10;
    pub const E_CPORT: Range<usize> = 10..12;
    pub const E_VPORT: Range<usize> = 12..14;
    pub const E_DPORT: Range<usize> = 14..16;
    pub const E_FWMARK: Range<usize> = 16..20;
    pub const E_TIMEOUT: Range<usize> = 20..24;
    pub const E_ADDRS: usize = 24;
}

fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

/// A borrowed version 1 message.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Checks what `ip_vs_process_message` checks before looking at entries: header length,
    /// size field equal to the datagram length, reserved 0, version 1, spare 0.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        if packet.reserved() != 0 || packet.version() != VERSION || packet.spare() != 0 {
            return Err(Error::UnknownVersion(packet.version()));
        }
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<(), Error> {
        check_message_len(self.buffer.as_ref(), HEADER_LEN, field::SIZE)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn reserved(&self) -> u8 {
        self.buffer.as_ref()[field::RESERVED]
    }

    pub fn sync_id(&self) -> u8 {
        self.buffer.as_ref()[field::SYNC_ID]
    }

    pub fn size(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SIZE)
    }

    pub fn conn_count(&self) -> u8 {
        self.buffer.as_ref()[field::NR_CONNS]
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    pub fn spare(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SPARE)
    }

    /// Entries as the kernel walks them: `conn_count` of them, each at the 4-byte boundary
    /// after the previous one.
    pub fn entries(&self) -> Entries<'_> {
        Entries {
            buf: self.buffer.as_ref(),
            next: HEADER_LEN,
            end_of_last: HEADER_LEN,
            index: 0,
            count: self.conn_count(),
            done: false,
            padding_nonzero: false,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_reserved(&mut self, value: u8) {
        self.buffer.as_mut()[field::RESERVED] = value;
    }

    pub fn set_sync_id(&mut self, value: u8) {
        self.buffer.as_mut()[field::SYNC_ID] = value;
    }

    pub fn set_size(&mut self, value: u16) {
        self.buffer.as_mut()[field::SIZE].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_conn_count(&mut self, value: u8) {
        self.buffer.as_mut()[field::NR_CONNS] = value;
    }

    pub fn set_version(&mut self, value: u8) {
        self.buffer.as_mut()[field::VERSION] = value;
    }

    pub fn set_spare(&mut self, value: u16) {
        self.buffer.as_mut()[field::SPARE].copy_from_slice(&value.to_be_bytes());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// Iterator over a message's entries. Yields at most one `Err` (a framing fault, after which
/// a kernel stops reading the datagram) and then ends.
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    buf: &'a [u8],
    next: usize,
    end_of_last: usize,
    index: u8,
    count: u8,
    done: bool,
    padding_nonzero: bool,
}

impl<'a> Entries<'a> {
    /// Bytes after the last entry's `size`; meaningful once the iterator is exhausted.
    pub fn trailing_len(&self) -> usize {
        self.buf.len().saturating_sub(self.end_of_last)
    }

    /// Whether any padding between entries seen so far was not zero.
    pub fn padding_nonzero(&self) -> bool {
        self.padding_nonzero
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<&'a [u8]>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.index == self.count {
            return None;
        }
        let index = self.index;
        self.index += 1;
        let start = self.next;
        // The kernel wants a whole IPv4 entry's worth before it even reads the size.
        if start + ENTRY_V4_LEN > self.buf.len() {
            self.done = true;
            return Some(Err(Error::EntryTruncated { index }));
        }
        if self.buf[self.end_of_last..start].iter().any(|&b| b != 0) {
            self.padding_nonzero = true;
        }
        let ver_size = be16(self.buf, start + 2..start + 4);
        let size = usize::from(ver_size & SVER_MASK);
        let end = start + size;
        if end > self.buf.len() {
            self.done = true;
            return Some(Err(Error::EntryTruncated { index }));
        }
        // At least the IPv4 fixed part, so a too-small size reads as such, not as truncation.
        let slice = &self.buf[start..end.max(start + ENTRY_V4_LEN)];
        let result = Entry::new_checked(slice).map_err(|e| with_index(e, index));
        if result.is_err() {
            self.done = true;
        }
        self.end_of_last = end;
        self.next = start + pad4(size);
        Some(result)
    }
}

fn with_index(e: Error, index: u8) -> Error {
    match e {
        Error::EntryTruncated { .. } => Error::EntryTruncated { index },
        Error::EntrySizeTooSmall { size, .. } => Error::EntrySizeTooSmall { index, size },
        Error::EntryVersion { version, .. } => Error::EntryVersion { index, version },
        Error::EntryType { entry_type, .. } => Error::EntryType { index, entry_type },
        other => other,
    }
}

/// A borrowed version 1 entry. The buffer may extend past the entry; [`Entry::size`] bounds
/// the options.
#[derive(Debug, Clone)]
pub struct Entry<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Entry<T> {
    pub fn new_unchecked(buffer: T) -> Entry<T> {
        Entry { buffer }
    }

    /// Checks the entry version, type and that `size` covers the fixed part and fits the buffer.
    pub fn new_checked(buffer: T) -> Result<Entry<T>, Error> {
        let entry = Entry::new_unchecked(buffer);
        entry.check_len()?;
        Ok(entry)
    }

    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < field::E_VER_SIZE.end {
            return Err(Error::EntryTruncated { index: 0 });
        }
        let size = self.size();
        if usize::from(size) > len {
            return Err(Error::EntryTruncated { index: 0 });
        }
        if self.version() != 0 {
            return Err(Error::EntryVersion {
                index: 0,
                version: self.version(),
            });
        }
        let entry_type = self.entry_type();
        if entry_type & TYPE_F_INET6 == 0 && entry_type != 0 {
            return Err(Error::EntryType {
                index: 0,
                entry_type,
            });
        }
        if usize::from(size) < self.fixed_len() {
            return Err(Error::EntrySizeTooSmall { index: 0, size });
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn entry_type(&self) -> u8 {
        self.buffer.as_ref()[field::E_TYPE]
    }

    /// The kernel reads any type with the IPv6 bit set as IPv6.
    pub fn is_ipv6(&self) -> bool {
        self.entry_type() & TYPE_F_INET6 != 0
    }

    pub fn fixed_len(&self) -> usize {
        if self.is_ipv6() {
            ENTRY_V6_LEN
        } else {
            ENTRY_V4_LEN
        }
    }

    pub fn protocol(&self) -> Protocol {
        Protocol(self.buffer.as_ref()[field::E_PROTOCOL])
    }

    pub fn version(&self) -> u8 {
        (be16(self.buffer.as_ref(), field::E_VER_SIZE) >> SVER_SHIFT) as u8
    }

    /// Entry length without padding, options included.
    pub fn size(&self) -> u16 {
        be16(self.buffer.as_ref(), field::E_VER_SIZE) & SVER_MASK
    }

    pub fn flags(&self) -> ConnFlags {
        ConnFlags(be32(self.buffer.as_ref(), field::E_FLAGS))
    }

    pub fn state(&self) -> u16 {
        be16(self.buffer.as_ref(), field::E_STATE)
    }

    pub fn cport(&self) -> u16 {
        be16(self.buffer.as_ref(), field::E_CPORT)
    }

    pub fn vport(&self) -> u16 {
        be16(self.buffer.as_ref(), field::E_VPORT)
    }

    pub fn dport(&self) -> u16 {
        be16(self.buffer.as_ref(), field::E_DPORT)
    }

    pub fn fwmark(&self) -> u32 {
        be32(self.buffer.as_ref(), field::E_FWMARK)
    }

    pub fn timeout(&self) -> u32 {
        be32(self.buffer.as_ref(), field::E_TIMEOUT)
    }

    fn addr(&self, n: usize) -> IpAddr {
        let b = self.buffer.as_ref();
        if self.is_ipv6() {
            let at = field::E_ADDRS + 16 * n;
            let mut a = [0; 16];
            a.copy_from_slice(&b[at..at + 16]);
            Ipv6Addr::from(a).into()
        } else {
            let at = field::E_ADDRS + 4 * n;
            let mut a = [0; 4];
            a.copy_from_slice(&b[at..at + 4]);
            Ipv4Addr::from(a).into()
        }
    }

    pub fn client_addr(&self) -> IpAddr {
        self.addr(0)
    }

    pub fn virtual_addr(&self) -> IpAddr {
        self.addr(1)
    }

    pub fn dest_addr(&self) -> IpAddr {
        self.addr(2)
    }

    pub fn addrs(&self) -> Addrs {
        match (self.client_addr(), self.virtual_addr(), self.dest_addr()) {
            (IpAddr::V4(client), IpAddr::V4(virtual_addr), IpAddr::V4(dest)) => Addrs::V4 {
                client,
                virtual_addr,
                dest,
            },
            (IpAddr::V6(client), IpAddr::V6(virtual_addr), IpAddr::V6(dest)) => Addrs::V6 {
                client,
                virtual_addr,
                dest,
            },
            _ => unreachable!("one family bit selects all three addresses"),
        }
    }

    /// Option TLVs between the fixed part and `size`.
    pub fn options(&self) -> Options<'_> {
        let b = self.buffer.as_ref();
        Options {
            buf: &b[self.fixed_len()..usize::from(self.size())],
            done: false,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Entry<T> {
    pub fn set_entry_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::E_TYPE] = value;
    }

    pub fn set_protocol(&mut self, value: Protocol) {
        self.buffer.as_mut()[field::E_PROTOCOL] = value.0;
    }

    /// Version 0 and `size`, which must fit 12 bits.
    pub fn set_size(&mut self, size: u16) {
        let v = size & SVER_MASK;
        self.buffer.as_mut()[field::E_VER_SIZE].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_flags(&mut self, value: ConnFlags) {
        self.buffer.as_mut()[field::E_FLAGS].copy_from_slice(&value.0.to_be_bytes());
    }

    pub fn set_state(&mut self, value: u16) {
        self.buffer.as_mut()[field::E_STATE].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_cport(&mut self, value: u16) {
        self.buffer.as_mut()[field::E_CPORT].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_vport(&mut self, value: u16) {
        self.buffer.as_mut()[field::E_VPORT].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_dport(&mut self, value: u16) {
        self.buffer.as_mut()[field::E_DPORT].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_fwmark(&mut self, value: u32) {
        self.buffer.as_mut()[field::E_FWMARK].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_timeout(&mut self, value: u32) {
        self.buffer.as_mut()[field::E_TIMEOUT].copy_from_slice(&value.to_be_bytes());
    }

    /// Writes the type byte and the three addresses.
    pub fn set_addrs(&mut self, addrs: &Addrs) {
        let b = self.buffer.as_mut();
        match addrs {
            Addrs::V4 {
                client,
                virtual_addr,
                dest,
            } => {
                b[field::E_TYPE] = 0;
                for (n, a) in [client, virtual_addr, dest].into_iter().enumerate() {
                    let at = field::E_ADDRS + 4 * n;
                    b[at..at + 4].copy_from_slice(&a.octets());
                }
            }
            Addrs::V6 {
                client,
                virtual_addr,
                dest,
            } => {
                b[field::E_TYPE] = TYPE_F_INET6;
                for (n, a) in [client, virtual_addr, dest].into_iter().enumerate() {
                    let at = field::E_ADDRS + 16 * n;
                    b[at..at + 16].copy_from_slice(&a.octets());
                }
            }
        }
    }
}

/// One option TLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryOption<'a> {
    pub kind: u8,
    pub data: &'a [u8],
}

/// Iterator over an entry's option TLVs; yields at most one `Err`, then ends.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    buf: &'a [u8],
    done: bool,
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<EntryOption<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.buf.is_empty() {
            return None;
        }
        let fail = |s: &mut Self, e| {
            s.done = true;
            Some(Err(e))
        };
        if self.buf.len() < 2 {
            return fail(self, Error::OptionTruncated);
        }
        let (kind, len) = (self.buf[0], self.buf[1]);
        if len == 0 {
            return fail(self, Error::OptionEmpty { kind });
        }
        let end = 2 + usize::from(len);
        if end > self.buf.len() {
            return fail(self, Error::OptionOverflow { kind, len });
        }
        let data = &self.buf[2..end];
        self.buf = &self.buf[end..];
        Some(Ok(EntryOption { kind, data }))
    }
}

fn parse_seq(data: &[u8]) -> SeqData {
    SeqData::read(data, u32::from_be_bytes)
}

fn emit_seq(seq: &SeqData, out: &mut [u8]) {
    seq.write(out, u32::to_be_bytes);
}

/// Decodes one entry with the checks of `ip_vs_proc_sync_conn`, in its order.
pub fn parse_entry<T: AsRef<[u8]>>(entry: &Entry<T>) -> Result<Connection, Error> {
    entry.check_len()?;
    let mut seq = None;
    let mut pe_data = None;
    let mut pe_name = None;
    for option in entry.options() {
        let option = option?;
        match option.kind & !OPT_F_PARAM {
            OPT_SEQ_DATA => {
                if option.data.len() != SeqData::LEN {
                    return Err(Error::SeqDataLength(option.data.len() as u8));
                }
                if seq.is_some() {
                    return Err(Error::OptionDuplicate(option.kind));
                }
                seq = Some(parse_seq(option.data));
            }
            OPT_PE_DATA => {
                if pe_data.is_some() {
                    return Err(Error::OptionDuplicate(option.kind));
                }
                pe_data = Some(option.data.to_vec());
            }
            OPT_PE_NAME => {
                if option.data.len() > PE_NAME_MAX_LEN {
                    return Err(Error::PeNameTooLong(option.data.len() as u8));
                }
                if pe_name.is_some() {
                    return Err(Error::OptionDuplicate(option.kind));
                }
                pe_name = Some(option.data.to_vec());
            }
            kind if option.kind & OPT_F_PARAM == 0 => {
                return Err(Error::OptionUnknownMandatory(kind));
            }
            _ => {}
        }
    }
    let conn = Connection {
        protocol: entry.protocol(),
        addrs: entry.addrs(),
        cport: entry.cport(),
        vport: entry.vport(),
        dport: entry.dport(),
        fwmark: entry.fwmark(),
        flags: entry.flags(),
        state: entry.state(),
        timeout: entry.timeout(),
        seq,
        pe_data,
        pe_name,
    };
    check_semantics(&conn)?;
    if conn.pe_data.is_some() && conn.pe_name.is_none() {
        return Err(Error::PeDataWithoutName);
    }
    Ok(conn)
}

/// Length of the entry for `conn`, options included, padding excluded.
pub fn entry_len(conn: &Connection) -> Result<usize, EmitError> {
    let mut len = if conn.addrs.is_ipv6() {
        ENTRY_V6_LEN
    } else {
        ENTRY_V4_LEN
    };
    if conn.seq.is_some() {
        len += 2 + SeqData::LEN;
    }
    if let Some(data) = &conn.pe_data {
        if data.is_empty() || data.len() > PE_DATA_MAX_LEN {
            return Err(EmitError::PeDataTooLong(data.len()));
        }
        len += 2 + data.len();
    }
    if let Some(name) = &conn.pe_name {
        if name.is_empty() || name.len() > PE_NAME_MAX_LEN {
            return Err(EmitError::PeNameTooLong(name.len()));
        }
        len += 2 + name.len();
    }
    Ok(len)
}

/// Writes `conn` at the start of `entry`'s buffer; options in the kernel's order (sequence
/// data, PE data, PE name).
pub fn emit_entry<T: AsRef<[u8]> + AsMut<[u8]>>(
    conn: &Connection,
    entry: &mut Entry<T>,
) -> Result<(), EmitError> {
    let len = entry_len(conn)?;
    let actual = entry.buffer.as_ref().len();
    if actual < len {
        return Err(EmitError::BufferTooSmall {
            needed: len,
            actual,
        });
    }
    entry.set_addrs(&conn.addrs);
    entry.set_protocol(conn.protocol);
    entry.set_size(len as u16);
    entry.set_flags(conn.flags);
    entry.set_state(conn.state);
    entry.set_cport(conn.cport);
    entry.set_vport(conn.vport);
    entry.set_dport(conn.dport);
    entry.set_fwmark(conn.fwmark);
    entry.set_timeout(conn.timeout);
    let fixed = entry.fixed_len();
    let mut at = fixed;
    let b = entry.buffer.as_mut();
    if let Some(seq) = &conn.seq {
        b[at] = OPT_SEQ_DATA;
        b[at + 1] = SeqData::LEN as u8;
        emit_seq(seq, &mut b[at + 2..at + 2 + SeqData::LEN]);
        at += 2 + SeqData::LEN;
    }
    for (kind, value) in [(OPT_PE_DATA, &conn.pe_data), (OPT_PE_NAME, &conn.pe_name)] {
        if let Some(value) = value {
            b[at] = kind;
            b[at + 1] = value.len() as u8;
            b[at + 2..at + 2 + value.len()].copy_from_slice(value);
            at += 2 + value.len();
        }
    }
    Ok(())
}

message_repr!(ProtocolVersion::V1, "An owned version 1 message.");

fn decode_packet<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Decoded, Error> {
    let mut entries = packet.entries();
    let mut decoded = Decoded::read(
        ProtocolVersion::V1,
        packet.sync_id(),
        packet.conn_count(),
        &mut entries,
        parse_entry,
    )?;
    if entries.padding_nonzero() {
        decoded.issues.push(Error::PaddingNonZero);
    }
    if entries.trailing_len() > 0 {
        decoded
            .issues
            .push(Error::TrailingBytes(entries.trailing_len()));
    }
    Ok(decoded)
}

/// Lenient decode of a version 1 datagram; see [`super::decode`].
pub fn decode(buf: &[u8]) -> Result<Decoded, Error> {
    decode_packet(&Packet::new_checked(buf)?)
}
