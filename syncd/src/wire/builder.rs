//! Packs connections into sync messages the way a kernel master fills its sync buffers.

use super::{DEFAULT_MAX_LEN, EmitError, ProtocolVersion};
use crate::conn::Connection;

/// Builds sync messages of one version and sync id, each at most `max_len` bytes, starting a
/// new message when the next entry (with its padding) would not fit or the one-byte entry
/// count is exhausted. An entry larger than `max_len` on its own gets a message to itself,
/// as the kernel does.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    version: ProtocolVersion,
    sync_id: u8,
    max_len: usize,
    buf: Vec<u8>,
    count: u8,
}

impl MessageBuilder {
    pub fn new(version: ProtocolVersion, sync_id: u8) -> MessageBuilder {
        let mut builder = MessageBuilder {
            version,
            sync_id,
            max_len: DEFAULT_MAX_LEN,
            buf: Vec::with_capacity(DEFAULT_MAX_LEN),
            count: 0,
        };
        builder.reset();
        builder
    }

    /// Message size limit; at most 65535, the size field's range.
    pub fn with_max_len(mut self, max_len: usize) -> MessageBuilder {
        self.max_len = max_len.min(usize::from(u16::MAX));
        self
    }

    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    pub fn sync_id(&self) -> u8 {
        self.sync_id
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.buf.resize(self.version.header_len(), 0);
        self.count = 0;
    }

    /// Entries in the message being built.
    pub fn pending(&self) -> usize {
        usize::from(self.count)
    }

    /// Adds `conn`. Returns the previous message when `conn` did not fit in it.
    /// On error nothing is added and the message being built is unchanged.
    pub fn push(&mut self, conn: &Connection) -> Result<Option<Vec<u8>>, EmitError> {
        let len = self.version.entry_len(conn)?;
        let pad = self.version.entry_start(self.buf.len()) - self.buf.len();
        let full = self.count == u8::MAX || self.buf.len() + pad + len > self.max_len;
        let finished = if self.count > 0 && full {
            self.flush()
        } else {
            None
        };
        let pad = if finished.is_some() { 0 } else { pad };
        let start = self.buf.len() + pad;
        self.buf.resize(start + len, 0);
        let written = self.version.emit_entry(conn, &mut self.buf[start..]);
        if let Err(e) = written {
            self.buf.truncate(start - pad);
            return Err(e);
        }
        self.count += 1;
        Ok(finished)
    }

    /// The message being built, if it has entries; the builder starts a new one.
    pub fn flush(&mut self) -> Option<Vec<u8>> {
        if self.count == 0 {
            return None;
        }
        let size = self.buf.len() as u16;
        self.version
            .emit_header(&mut self.buf, self.sync_id, size, self.count);
        let message = std::mem::replace(&mut self.buf, Vec::with_capacity(self.max_len));
        self.reset();
        Some(message)
    }
}

/// All of `conns` as messages of at most `max_len` bytes.
pub fn build_messages<'a>(
    version: ProtocolVersion,
    sync_id: u8,
    max_len: usize,
    conns: impl IntoIterator<Item = &'a Connection>,
) -> Result<Vec<Vec<u8>>, EmitError> {
    let mut builder = MessageBuilder::new(version, sync_id).with_max_len(max_len);
    let mut messages = Vec::new();
    for conn in conns {
        messages.extend(builder.push(conn)?);
    }
    messages.extend(builder.flush());
    Ok(messages)
}
