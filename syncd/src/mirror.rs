//! A sans-IO copy of the connection table a kernel backup builds from sync messages, so a
//! backup that joins late can be given everything at once.
//!
//! Entries are keyed as `ip_vs_conn_in_get` / `ip_vs_ct_in_get` look them up: connections by
//! (protocol, client address and port, virtual address and port); templates by the same
//! tuple, where fwmark templates carry protocol 0 and the mark in place of the virtual
//! address, plus the persistence-engine data when there is some. The destination is not part
//! of a connection's key: a new destination for the same client tuple replaces the entry, as
//! in `ip_vs_proc_conn`.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::conn::{ConnFlags, Connection, Protocol, default_timeout_secs};
use crate::wire::{EmitError, MessageBuilder, ProtocolVersion};

/// Lookup key of a mirrored entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub template: bool,
    pub protocol: Protocol,
    pub client: IpAddr,
    pub cport: u16,
    pub virtual_addr: IpAddr,
    pub vport: u16,
    /// Templates of a persistence engine (SIP) are told apart by its data.
    pub pe_data: Option<Vec<u8>>,
}

impl ConnKey {
    pub fn of(conn: &Connection) -> ConnKey {
        ConnKey {
            template: conn.is_template(),
            protocol: conn.protocol,
            client: conn.addrs.client(),
            cport: conn.cport,
            virtual_addr: conn.addrs.virtual_addr(),
            vport: conn.vport,
            pe_data: if conn.is_template() {
                conn.pe_data.clone()
            } else {
                None
            },
        }
    }
}

/// What [`Mirror::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Inserted,
    /// Same key and destination: state, timeout and the updatable flags were refreshed.
    Updated,
    /// Same client tuple, new destination: the old connection was dropped.
    Replaced {
        previous: Connection,
    },
    /// An INACTIVE entry for a tuple that already has another destination: the kernel reads
    /// this as the late expiry notice of the connection that was replaced, and ignores it.
    IgnoredStale,
}

#[derive(Debug, Clone)]
struct Slot {
    conn: Connection,
    deadline: Instant,
    id: u64,
}

/// The mirror table. Time comes in as `now`; [`Mirror::next_expiry`] says when to call
/// [`Mirror::expire`] next.
#[derive(Debug, Clone, Default)]
pub struct Mirror {
    slots: HashMap<ConnKey, Slot>,
    deadlines: BTreeMap<(Instant, u64), ConnKey>,
    next_id: u64,
}

/// Flags a kernel backup takes from an update of an existing entry
/// (`IP_VS_CONN_F_BACKUP_UPD_MASK`); the rest stay as first learned.
const UPDATE_MASK: u32 = ConnFlags::INACTIVE | ConnFlags::SEQ_MASK;

/// Lifetime of an entry: its own timeout, or the kernel's default for its state when the
/// entry carries none (version 0).
pub fn lifetime(conn: &Connection) -> Duration {
    let secs = if conn.timeout != 0 {
        conn.timeout
    } else {
        default_timeout_secs(conn.protocol, conn.state, conn.is_template())
    };
    Duration::from_secs(u64::from(secs))
}

impl Mirror {
    pub fn new() -> Mirror {
        Mirror::default()
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn get(&self, key: &ConnKey) -> Option<&Connection> {
        self.slots.get(key).map(|slot| &slot.conn)
    }

    /// Time left before `key` expires.
    pub fn remaining(&self, key: &ConnKey, now: Instant) -> Option<Duration> {
        self.slots
            .get(key)
            .map(|slot| slot.deadline.saturating_duration_since(now))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Connection> {
        self.slots.values().map(|slot| &slot.conn)
    }

    /// Learns one received or observed entry at `now`.
    pub fn apply(&mut self, conn: Connection, now: Instant) -> Applied {
        let key = ConnKey::of(&conn);
        let deadline = now + lifetime(&conn);
        let Some(old) = self.slots.get(&key) else {
            self.insert(key, conn, deadline);
            return Applied::Inserted;
        };
        let moved = !conn.is_template()
            && (old.conn.addrs.dest() != conn.addrs.dest() || old.conn.dport != conn.dport);
        if moved {
            if conn.flags.is_inactive() {
                return Applied::IgnoredStale;
            }
            let previous = self.remove(&key).map(|c| c.0);
            self.insert(key, conn, deadline);
            return match previous {
                Some(previous) => Applied::Replaced { previous },
                None => Applied::Inserted,
            };
        }
        let mut conn = conn;
        conn.flags = ConnFlags((conn.flags.0 & UPDATE_MASK) | (old.conn.flags.0 & !UPDATE_MASK));
        self.remove(&key);
        self.insert(key, conn, deadline);
        Applied::Updated
    }

    fn insert(&mut self, key: ConnKey, conn: Connection, deadline: Instant) {
        let id = self.next_id;
        self.next_id += 1;
        self.deadlines.insert((deadline, id), key.clone());
        self.slots.insert(key, Slot { conn, deadline, id });
    }

    /// Removes `key`, returning the connection and the deadline it had.
    pub fn remove(&mut self, key: &ConnKey) -> Option<(Connection, Instant)> {
        let slot = self.slots.remove(key)?;
        self.deadlines.remove(&(slot.deadline, slot.id));
        Some((slot.conn, slot.deadline))
    }

    pub fn clear(&mut self) {
        self.slots.clear();
        self.deadlines.clear();
    }

    /// Drops every entry whose deadline is at or before `now` and returns them.
    pub fn expire(&mut self, now: Instant) -> Vec<Connection> {
        let mut expired = Vec::new();
        while let Some(entry) = self.deadlines.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            if let Some(slot) = self.slots.remove(&key) {
                expired.push(slot.conn);
            }
        }
        expired
    }

    /// When the next entry expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.deadlines.first_key_value().map(|((at, _), _)| *at)
    }

    /// Every live entry with its timeout set to what remains of it at `now` (whole seconds,
    /// rounded up so a backup never drops an entry earlier than we would), templates first
    /// so a backup has them before the connections they control.
    pub fn snapshot(&self, now: Instant) -> Vec<Connection> {
        let mut out: Vec<Connection> = self
            .slots
            .values()
            .filter(|slot| slot.deadline > now)
            .map(|slot| {
                let left = slot.deadline - now;
                let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                let mut conn = slot.conn.clone();
                conn.timeout = u32::try_from(secs).unwrap_or(u32::MAX);
                conn
            })
            .collect();
        out.sort_by_key(|conn| !conn.is_template());
        out
    }

    /// A full resync as messages. Version 0 cannot carry IPv6 entries: they are left out and
    /// counted in the second value.
    pub fn resync_messages(
        &self,
        now: Instant,
        version: ProtocolVersion,
        sync_id: u8,
        max_len: usize,
    ) -> Result<(Vec<Vec<u8>>, usize), EmitError> {
        let mut builder = MessageBuilder::new(version, sync_id).with_max_len(max_len);
        let mut messages = Vec::new();
        let mut skipped = 0;
        for conn in self.snapshot(now) {
            match builder.push(&conn) {
                Ok(done) => messages.extend(done),
                Err(EmitError::Ipv6InV0) => skipped += 1,
                Err(e) => return Err(e),
            }
        }
        messages.extend(builder.flush());
        Ok((messages, skipped))
    }
}
