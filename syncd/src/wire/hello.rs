//! syncd's own datagram, sent between syncd instances on the sync port next to kernel-format
//! messages. Kernels never see it: it goes unicast to a peer's syncd, and a kernel backup's
//! socket is bound to the multicast group.
//!
//! ```text
//!  0               1               2               3
//!  +---------------+---------------+---------------+---------------+
//!  |  'L'  0x4c    |  'V'  0x56    |  'S'  0x53    |  'H'  0x48    |  magic
//!  +---------------+---------------+---------------+---------------+
//!  | format 1      | kind          | sync id       | reserved 0    |
//!  +---------------+---------------+---------------+---------------+
//!  | entries (be32): 0 in a Hello, the entries sent in a ResyncDone  |
//!  +---------------------------------------------------------------+
//! ```
//!
//! kind 1 `Hello`: "I am a backup and want the whole table" (sent at start and every few
//! seconds until a resync arrives); kind 2 `ResyncDone`: "the messages before this one were a
//! full resync of that many entries". The magic cannot start a kernel message a kernel
//! backup would take: as version 0 its first byte (76 entries) disagrees with the size
//! field, and version 1 needs a first byte of 0, so a stray hello is dropped, not applied.

pub const MAGIC: [u8; 4] = *b"LVSH";
pub const FORMAT: u8 = 1;
pub const LEN: usize = 12;

/// Why a datagram is not a hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("not a syncd hello (magic differs)")]
    NotHello,
    #[error("hello of {0} bytes, {LEN} expected")]
    Length(usize),
    #[error("hello format {0}, only {FORMAT} is known")]
    Format(u8),
    #[error("hello kind {0} is unknown")]
    Kind(u8),
}

impl Error {
    pub fn as_str(&self) -> &'static str {
        match self {
            Error::NotHello => "hello_magic",
            Error::Length(_) => "hello_length",
            Error::Format(_) => "hello_format",
            Error::Kind(_) => "hello_kind",
        }
    }
}

/// True when `buf` starts like a hello: the receiver decides which decoder to use by this.
pub fn is_hello(buf: &[u8]) -> bool {
    buf.starts_with(&MAGIC)
}

mod field {
    use std::ops::Range;
    pub const MAGIC: Range<usize> = 0..4;
    pub const FORMAT: usize = 4;
    pub const KIND: usize = 5;
    pub const SYNC_ID: usize = 6;
    pub const RESERVED: usize = 7;
    pub const ENTRIES: Range<usize> = 8..12;
}

/// A borrowed view of a hello datagram.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<(), Error> {
        let buf = self.buffer.as_ref();
        if !is_hello(buf) {
            return Err(Error::NotHello);
        }
        if buf.len() != LEN {
            return Err(Error::Length(buf.len()));
        }
        Ok(())
    }

    pub fn magic(&self) -> &[u8] {
        &self.buffer.as_ref()[field::MAGIC]
    }

    pub fn format(&self) -> u8 {
        self.buffer.as_ref()[field::FORMAT]
    }

    pub fn kind(&self) -> u8 {
        self.buffer.as_ref()[field::KIND]
    }

    pub fn sync_id(&self) -> u8 {
        self.buffer.as_ref()[field::SYNC_ID]
    }

    pub fn reserved(&self) -> u8 {
        self.buffer.as_ref()[field::RESERVED]
    }

    pub fn entries(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::ENTRIES];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_magic(&mut self) {
        self.buffer.as_mut()[field::MAGIC].copy_from_slice(&MAGIC);
    }

    pub fn set_format(&mut self, value: u8) {
        self.buffer.as_mut()[field::FORMAT] = value;
    }

    pub fn set_kind(&mut self, value: u8) {
        self.buffer.as_mut()[field::KIND] = value;
    }

    pub fn set_sync_id(&mut self, value: u8) {
        self.buffer.as_mut()[field::SYNC_ID] = value;
    }

    pub fn set_reserved(&mut self, value: u8) {
        self.buffer.as_mut()[field::RESERVED] = value;
    }

    pub fn set_entries(&mut self, value: u32) {
        self.buffer.as_mut()[field::ENTRIES].copy_from_slice(&value.to_be_bytes());
    }
}

/// What a hello says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr {
    /// A backup asks for the whole table.
    Hello { sync_id: u8 },
    /// A full resync of `entries` entries was just sent.
    ResyncDone { sync_id: u8, entries: u32 },
}

const KIND_HELLO: u8 = 1;
const KIND_RESYNC_DONE: u8 = 2;

impl Repr {
    /// Reserved bits are ignored so a later format can use them.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, Error> {
        packet.check_len()?;
        if packet.format() != FORMAT {
            return Err(Error::Format(packet.format()));
        }
        match packet.kind() {
            KIND_HELLO => Ok(Repr::Hello {
                sync_id: packet.sync_id(),
            }),
            KIND_RESYNC_DONE => Ok(Repr::ResyncDone {
                sync_id: packet.sync_id(),
                entries: packet.entries(),
            }),
            other => Err(Error::Kind(other)),
        }
    }

    pub fn buffer_len(&self) -> usize {
        LEN
    }

    /// `packet` must hold at least [`LEN`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let (kind, sync_id, entries) = match *self {
            Repr::Hello { sync_id } => (KIND_HELLO, sync_id, 0),
            Repr::ResyncDone { sync_id, entries } => (KIND_RESYNC_DONE, sync_id, entries),
        };
        packet.set_magic();
        packet.set_format(FORMAT);
        packet.set_kind(kind);
        packet.set_sync_id(sync_id);
        packet.set_reserved(0);
        packet.set_entries(entries);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = vec![0; LEN];
        self.emit(&mut Packet::new_unchecked(&mut buf[..]));
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: [u8; 12] = [0x4c, 0x56, 0x53, 0x48, 1, 1, 5, 0, 0, 0, 0, 0];
    const DONE: [u8; 12] = [0x4c, 0x56, 0x53, 0x48, 1, 2, 5, 0, 0, 0, 0x01, 0x2c];

    #[test]
    fn fixtures_parse_and_round_trip() {
        let hello = Repr::parse(&Packet::new_checked(&HELLO[..]).unwrap()).unwrap();
        assert_eq!(hello, Repr::Hello { sync_id: 5 });
        assert_eq!(hello.to_bytes(), HELLO);
        let done = Repr::parse(&Packet::new_checked(&DONE[..]).unwrap()).unwrap();
        assert_eq!(
            done,
            Repr::ResyncDone {
                sync_id: 5,
                entries: 300
            }
        );
        assert_eq!(done.to_bytes(), DONE);
    }

    #[test]
    fn rejects_each_fault() {
        assert_eq!(
            Packet::new_checked(&[0u8, 5, 0, 8, 0, 1, 0, 0][..]).unwrap_err(),
            Error::NotHello
        );
        assert_eq!(
            Packet::new_checked(&HELLO[..11]).unwrap_err(),
            Error::Length(11)
        );
        let mut bad = HELLO;
        bad[4] = 2;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&bad[..])).unwrap_err(),
            Error::Format(2)
        );
        let mut bad = HELLO;
        bad[5] = 9;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&bad[..])).unwrap_err(),
            Error::Kind(9)
        );
    }

    #[test]
    fn a_kernel_backup_would_drop_a_hello() {
        assert!(crate::wire::decode(&HELLO).is_err());
    }
}
