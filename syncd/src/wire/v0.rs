//! Version 0 sync messages (`net.ipv4.vs.sync_version = 0`): IPv4 only, no fwmark, no
//! timeout, no persistence-engine data.
//!
//! ```text
//!  header:  nr_conns | syncid | size (be16)
//!  entry:   reserved | protocol | cport | vport | dport | caddr | vaddr | daddr
//!           | flags (be16) | state (be16)                                  = 24 bytes
//!  then, when flags has IN_SEQ or OUT_SEQ: in_seq, out_seq (3 x u32 each) = 24 bytes
//! ```
//!
//! The sequence block is a `memcpy` of the sender's `struct ip_vs_sync_conn_options`, so its
//! words are in the sender's byte order; we read and write little-endian, the order of every
//! architecture IPVS directors run on in practice.

use std::net::Ipv4Addr;

use super::bytes::{be16, ipv4};
use super::{Decoded, EmitError, Error, ProtocolVersion, check_message_len, check_semantics};
use crate::conn::{Addrs, ConnFlags, Connection, Protocol, SeqData};

pub const HEADER_LEN: usize = 4;
/// `SIMPLE_CONN_SIZE`.
pub const ENTRY_LEN: usize = 24;
/// `FULL_CONN_SIZE`: entry plus sequence block.
pub const FULL_ENTRY_LEN: usize = ENTRY_LEN + SeqData::LEN;

mod field {
    use std::ops::Range;

    pub const NR_CONNS: usize = 0;
    pub const SYNC_ID: usize = 1;
    pub const SIZE: Range<usize> = 2..4;

    pub const E_RESERVED: usize = 0;
    pub const E_PROTOCOL: usize = 1;
    pub const E_CPORT: Range<usize> = 2..4;
    pub const E_VPORT: Range<usize> = 4..6;
    pub const E_DPORT: Range<usize> = 6..8;
    pub const E_CADDR: Range<usize> = 8..12;
    pub const E_VADDR: Range<usize> = 12..16;
    pub const E_DADDR: Range<usize> = 16..20;
    pub const E_FLAGS: Range<usize> = 20..22;
    pub const E_STATE: Range<usize> = 22..24;
    pub const E_SEQ: Range<usize> = 24..48;
}

/// A borrowed version 0 message.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Header length and size field equal to the datagram length.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<(), Error> {
        check_message_len(self.buffer.as_ref(), HEADER_LEN, field::SIZE)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn conn_count(&self) -> u8 {
        self.buffer.as_ref()[field::NR_CONNS]
    }

    pub fn sync_id(&self) -> u8 {
        self.buffer.as_ref()[field::SYNC_ID]
    }

    pub fn size(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SIZE)
    }

    pub fn entries(&self) -> Entries<'_> {
        Entries {
            buf: self.buffer.as_ref(),
            next: HEADER_LEN,
            index: 0,
            count: self.conn_count(),
            done: false,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_conn_count(&mut self, value: u8) {
        self.buffer.as_mut()[field::NR_CONNS] = value;
    }

    pub fn set_sync_id(&mut self, value: u8) {
        self.buffer.as_mut()[field::SYNC_ID] = value;
    }

    pub fn set_size(&mut self, value: u16) {
        self.buffer.as_mut()[field::SIZE].copy_from_slice(&value.to_be_bytes());
    }
}

/// Iterator over a version 0 message's entries; at most one `Err`, then it ends.
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    buf: &'a [u8],
    next: usize,
    index: u8,
    count: u8,
    done: bool,
}

impl<'a> Entries<'a> {
    /// Bytes after the last entry; meaningful once the iterator is exhausted.
    pub fn trailing_len(&self) -> usize {
        self.buf.len().saturating_sub(self.next)
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
        if start + ENTRY_LEN > self.buf.len() {
            self.done = true;
            return Some(Err(Error::EntryTruncated { index }));
        }
        let entry = Entry::new_unchecked(&self.buf[start..]);
        let len = entry.len();
        if start + len > self.buf.len() {
            self.done = true;
            return Some(Err(Error::EntryTruncated { index }));
        }
        self.next = start + len;
        Some(Ok(Entry::new_unchecked(&self.buf[start..start + len])))
    }
}

/// A borrowed version 0 entry, with its sequence block when the flags announce one.
#[derive(Debug, Clone)]
pub struct Entry<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Entry<T> {
    pub fn new_unchecked(buffer: T) -> Entry<T> {
        Entry { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Entry<T>, Error> {
        let entry = Entry::new_unchecked(buffer);
        entry.check_len()?;
        Ok(entry)
    }

    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < ENTRY_LEN || len < self.len() {
            return Err(Error::EntryTruncated { index: 0 });
        }
        Ok(())
    }

    /// 24, or 48 with the sequence block.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        if self.has_seq() {
            FULL_ENTRY_LEN
        } else {
            ENTRY_LEN
        }
    }

    pub fn has_seq(&self) -> bool {
        u32::from(self.flags()) & ConnFlags::SEQ_MASK != 0
    }

    pub fn reserved(&self) -> u8 {
        self.buffer.as_ref()[field::E_RESERVED]
    }

    pub fn protocol(&self) -> Protocol {
        Protocol(self.buffer.as_ref()[field::E_PROTOCOL])
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

    pub fn client_addr(&self) -> Ipv4Addr {
        ipv4(self.buffer.as_ref(), field::E_CADDR)
    }

    pub fn virtual_addr(&self) -> Ipv4Addr {
        ipv4(self.buffer.as_ref(), field::E_VADDR)
    }

    pub fn dest_addr(&self) -> Ipv4Addr {
        ipv4(self.buffer.as_ref(), field::E_DADDR)
    }

    pub fn flags(&self) -> u16 {
        be16(self.buffer.as_ref(), field::E_FLAGS)
    }

    pub fn state(&self) -> u16 {
        be16(self.buffer.as_ref(), field::E_STATE)
    }

    /// The sequence block, when present (see the module note on byte order).
    pub fn seq(&self) -> Option<SeqData> {
        if !self.has_seq() {
            return None;
        }
        Some(SeqData::read(
            &self.buffer.as_ref()[field::E_SEQ],
            u32::from_le_bytes,
        ))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Entry<T> {
    pub fn set_reserved(&mut self, value: u8) {
        self.buffer.as_mut()[field::E_RESERVED] = value;
    }

    pub fn set_protocol(&mut self, value: Protocol) {
        self.buffer.as_mut()[field::E_PROTOCOL] = value.0;
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

    pub fn set_client_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::E_CADDR].copy_from_slice(&value.octets());
    }

    pub fn set_virtual_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::E_VADDR].copy_from_slice(&value.octets());
    }

    pub fn set_dest_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::E_DADDR].copy_from_slice(&value.octets());
    }

    pub fn set_flags(&mut self, value: u16) {
        self.buffer.as_mut()[field::E_FLAGS].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_state(&mut self, value: u16) {
        self.buffer.as_mut()[field::E_STATE].copy_from_slice(&value.to_be_bytes());
    }

    /// Writes the sequence block; the buffer must hold [`FULL_ENTRY_LEN`] bytes.
    pub fn set_seq(&mut self, seq: &SeqData) {
        seq.write(&mut self.buffer.as_mut()[field::E_SEQ], u32::to_le_bytes);
    }
}

/// Decodes one entry with the checks of `ip_vs_process_message_v0`.
pub fn parse_entry<T: AsRef<[u8]>>(entry: &Entry<T>) -> Result<Connection, Error> {
    entry.check_len()?;
    let conn = Connection {
        protocol: entry.protocol(),
        addrs: Addrs::V4 {
            client: entry.client_addr(),
            virtual_addr: entry.virtual_addr(),
            dest: entry.dest_addr(),
        },
        cport: entry.cport(),
        vport: entry.vport(),
        dport: entry.dport(),
        fwmark: 0,
        flags: ConnFlags(u32::from(entry.flags())),
        state: entry.state(),
        timeout: 0,
        seq: entry.seq(),
        pe_data: None,
        pe_name: None,
    };
    check_semantics(&conn)?;
    Ok(conn)
}

/// Length of `conn` as a version 0 entry.
pub fn entry_len(conn: &Connection) -> Result<usize, EmitError> {
    if conn.addrs.is_ipv6() {
        return Err(EmitError::Ipv6InV0);
    }
    Ok(if conn.flags.0 & ConnFlags::SEQ_MASK != 0 {
        FULL_ENTRY_LEN
    } else {
        ENTRY_LEN
    })
}

/// Writes `conn` as a version 0 entry. Like the kernel's version 0 sender, what the format
/// cannot carry is left out: flags above 16 bits, fwmark, timeout, persistence-engine data.
/// Flags are otherwise written as given (the kernel strips its internal HASHED bit before
/// this point; a [`Connection`] holds wire flags).
/// The sequence block follows the flags; with the flags set and no data, it is zeros.
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
    let Some((client, virtual_addr, dest)) = conn.addrs.v4() else {
        return Err(EmitError::Ipv6InV0);
    };
    entry.set_reserved(0);
    entry.set_protocol(conn.protocol);
    entry.set_cport(conn.cport);
    entry.set_vport(conn.vport);
    entry.set_dport(conn.dport);
    entry.set_client_addr(client);
    entry.set_virtual_addr(virtual_addr);
    entry.set_dest_addr(dest);
    entry.set_flags(conn.flags.0 as u16);
    entry.set_state(conn.state);
    if len == FULL_ENTRY_LEN {
        entry.set_seq(&conn.seq.unwrap_or_default());
    }
    Ok(())
}

message_repr!(ProtocolVersion::V0, "An owned version 0 message.");

fn decode_packet<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Decoded, Error> {
    let mut entries = packet.entries();
    let mut decoded = Decoded::read(
        ProtocolVersion::V0,
        packet.sync_id(),
        packet.conn_count(),
        &mut entries,
        parse_entry,
    )?;
    if entries.trailing_len() > 0 {
        decoded
            .issues
            .push(Error::TrailingBytes(entries.trailing_len()));
    }
    Ok(decoded)
}

/// Lenient decode of a version 0 datagram; see [`super::decode`].
pub fn decode(buf: &[u8]) -> Result<Decoded, Error> {
    decode_packet(&Packet::new_checked(buf)?)
}
