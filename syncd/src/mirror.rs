//! A sans-IO copy of the connection table a kernel backup builds from sync messages, so a
//! backup that joins late can be given everything at once.
//!
//! Entries are keyed as `ip_vs_conn_in_get` / `ip_vs_ct_in_get` look them up: connections by
//! (protocol, client address and port, virtual address and port); templates by the same
//! tuple, where fwmark templates carry protocol 0 and the mark in place of the virtual
//! address, plus the persistence-engine data when there is some. The destination is not part
//! of a connection's key: a new destination for the same client tuple replaces the entry, as
//! in `ip_vs_proc_conn`.
//!
//! Storage is sized for millions of entries. Almost every entry is IPv4 without sequence or
//! persistence-engine data: those live as a 40-byte [`Compact`] record in a slab, found
//! through a hash table of 4-byte slot numbers hashed by the record's own key, so the key is
//! stored once. The rest (IPv6, sequence data, persistence engines) keep their whole
//! [`Connection`] in a second, small slab with an ordinary map. Expiry is a min-heap of
//! (deadline, slot) pairs with lazy deletion: a refresh pushes a new pair instead of finding
//! the old one, and pairs whose slot no longer has that deadline are skipped when they come
//! up (and swept when they outnumber the live entries). Deadlines are whole seconds after the
//! mirror's first `now`, rounded up, so an entry never expires before the kernel's would.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use hashbrown::HashTable;

use crate::conn::{Addrs, ConnFlags, Connection, Protocol, default_timeout_secs};
use crate::wire::{EmitError, MessageBuilder, ProtocolVersion};

/// Lookup key of a mirrored entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub template: bool,
    pub protocol: Protocol,
    pub client: std::net::IpAddr,
    pub cport: u16,
    pub virtual_addr: std::net::IpAddr,
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

    /// The packed form, when the key has one (IPv4, no persistence-engine data).
    fn packed(&self) -> Option<PackedKey> {
        match (self.client, self.virtual_addr, &self.pe_data) {
            (std::net::IpAddr::V4(client), std::net::IpAddr::V4(virtual_addr), None) => {
                Some(PackedKey {
                    client: client.to_bits(),
                    virtual_addr: virtual_addr.to_bits(),
                    cport: self.cport,
                    vport: self.vport,
                    protocol: self.protocol.0,
                    template: self.template,
                })
            }
            _ => None,
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

/// Deadline of a free compact slot; live deadlines are capped below it.
const FREE: u32 = u32::MAX;
/// Marks a slot number as one of the rare slab's in the shared expiry heap.
const RARE: u32 = 1 << 31;

/// The key of a compact entry, for hashing and comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PackedKey {
    client: u32,
    virtual_addr: u32,
    cport: u16,
    vport: u16,
    protocol: u8,
    template: bool,
}

impl PackedKey {
    fn of(conn: &Connection) -> Option<PackedKey> {
        let (client, virtual_addr, _) = conn.addrs.v4()?;
        if conn.is_template() && conn.pe_data.is_some() {
            return None;
        }
        Some(PackedKey {
            client: client.to_bits(),
            virtual_addr: virtual_addr.to_bits(),
            cport: conn.cport,
            vport: conn.vport,
            protocol: conn.protocol.0,
            template: conn.is_template(),
        })
    }
}

/// Everything needed to give back an IPv4 entry with neither sequence nor
/// persistence-engine data: 40 bytes against a [`Connection`]'s 152 plus its key.
#[derive(Debug, Clone, Copy)]
struct Compact {
    client: u32,
    virtual_addr: u32,
    dest: u32,
    fwmark: u32,
    flags: u32,
    timeout: u32,
    /// Seconds after the epoch; [`FREE`] when the slot is unused.
    deadline: u32,
    cport: u16,
    vport: u16,
    dport: u16,
    state: u16,
    protocol: u8,
}

impl Compact {
    fn of(conn: &Connection, deadline: u32) -> Option<Compact> {
        let (client, virtual_addr, dest) = conn.addrs.v4()?;
        if conn.seq.is_some() || conn.pe_data.is_some() || conn.pe_name.is_some() {
            return None;
        }
        Some(Compact {
            client: client.to_bits(),
            virtual_addr: virtual_addr.to_bits(),
            dest: dest.to_bits(),
            fwmark: conn.fwmark,
            flags: conn.flags.0,
            timeout: conn.timeout,
            deadline,
            cport: conn.cport,
            vport: conn.vport,
            dport: conn.dport,
            state: conn.state,
            protocol: conn.protocol.0,
        })
    }

    fn key(&self) -> PackedKey {
        PackedKey {
            client: self.client,
            virtual_addr: self.virtual_addr,
            cport: self.cport,
            vport: self.vport,
            protocol: self.protocol,
            template: ConnFlags(self.flags).is_template(),
        }
    }

    fn conn(&self) -> Connection {
        Connection {
            protocol: Protocol(self.protocol),
            addrs: Addrs::V4 {
                client: Ipv4Addr::from_bits(self.client),
                virtual_addr: Ipv4Addr::from_bits(self.virtual_addr),
                dest: Ipv4Addr::from_bits(self.dest),
            },
            cport: self.cport,
            vport: self.vport,
            dport: self.dport,
            fwmark: self.fwmark,
            flags: ConnFlags(self.flags),
            state: self.state,
            timeout: self.timeout,
            seq: None,
            pe_data: None,
            pe_name: None,
        }
    }
}

#[derive(Debug, Clone)]
struct Rare {
    conn: Connection,
    deadline: u32,
}

/// Where a resync walk has got to: templates of both slabs first, then connections, so a
/// backup has the templates before the connections they control. Slots never move, so an
/// entry that lives through the whole walk is visited exactly once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// 0, 1: templates of the compact and rare slabs; 2, 3: connections; 4: done.
    pass: u8,
    slot: u32,
}

impl Cursor {
    pub fn is_done(&self) -> bool {
        self.pass >= 4
    }
}

/// The mirror table. Time comes in as `now`; [`Mirror::next_expiry`] says when to call
/// [`Mirror::expire`] next.
#[derive(Debug, Clone, Default)]
pub struct Mirror {
    hasher: RandomState,
    /// Slot numbers into `compact`, hashed by the record's key.
    index: HashTable<u32>,
    compact: Vec<Compact>,
    compact_free: Vec<u32>,
    rare_index: HashMap<ConnKey, u32>,
    rare: Vec<Option<Rare>>,
    rare_free: Vec<u32>,
    /// (deadline, slot), earliest first; may hold outdated pairs (see the module comment),
    /// never one at the top.
    expiry: BinaryHeap<Reverse<(u32, u32)>>,
    /// What deadlines count from: the first `now` the mirror saw.
    epoch: Option<Instant>,
}

impl Mirror {
    pub fn new() -> Mirror {
        Mirror::default()
    }

    pub fn len(&self) -> usize {
        self.index.len() + self.rare_index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes the table holds (capacity, not just what is in use), for the metrics and
    /// the benchmark's cross-check.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.index.allocation_size()
            + self.compact.capacity() * size_of::<Compact>()
            + self.compact_free.capacity() * size_of::<u32>()
            + self.rare_index.capacity() * (size_of::<(ConnKey, u32)>() + 1)
            + self.rare.capacity() * size_of::<Option<Rare>>()
            + self.rare_free.capacity() * size_of::<u32>()
            + self.expiry.capacity() * size_of::<Reverse<(u32, u32)>>()
    }

    pub fn get(&self, key: &ConnKey) -> Option<Connection> {
        self.find(key).map(|slot| self.conn_at(slot))
    }

    /// Time left before `key` expires.
    pub fn remaining(&self, key: &ConnKey, now: Instant) -> Option<Duration> {
        let deadline = self.deadline_at(self.find(key)?)?;
        Some(self.instant(deadline).saturating_duration_since(now))
    }

    /// Every entry, as learned (its original timeout).
    pub fn iter(&self) -> impl Iterator<Item = Connection> + '_ {
        self.entries().map(|(conn, _)| conn)
    }

    /// Every entry with the time it has left at `now`.
    pub fn iter_remaining(&self, now: Instant) -> impl Iterator<Item = (Connection, Duration)> {
        self.entries().map(move |(conn, deadline)| {
            (conn, self.instant(deadline).saturating_duration_since(now))
        })
    }

    fn entries(&self) -> impl Iterator<Item = (Connection, u32)> + '_ {
        let compact = self
            .compact
            .iter()
            .filter(|c| c.deadline != FREE)
            .map(|c| (c.conn(), c.deadline));
        let rare = self
            .rare
            .iter()
            .flatten()
            .map(|r| (r.conn.clone(), r.deadline));
        compact.chain(rare)
    }

    /// Learns one received or observed entry at `now`.
    pub fn apply(&mut self, conn: Connection, now: Instant) -> Applied {
        let deadline = self.deadline(now, lifetime(&conn));
        let Some(slot) = self.find_conn(&conn) else {
            self.insert(conn, deadline);
            return Applied::Inserted;
        };
        let (old_dest, old_dport, old_flags) = self.dest_at(slot);
        let moved = !conn.is_template() && (old_dest != conn.addrs || old_dport != conn.dport);
        if moved {
            if conn.flags.is_inactive() {
                return Applied::IgnoredStale;
            }
            let (previous, _) = self.remove_slot(slot);
            self.insert(conn, deadline);
            return Applied::Replaced { previous };
        }
        let mut conn = conn;
        conn.flags = ConnFlags((conn.flags.0 & UPDATE_MASK) | (old_flags & !UPDATE_MASK));
        // The common refresh: the record is rewritten where it is, no hashing.
        if slot & RARE == 0
            && let Some(record) = Compact::of(&conn, deadline)
        {
            self.compact[slot as usize] = record;
            self.expiry.push(Reverse((deadline, slot)));
            self.tidy();
            return Applied::Updated;
        }
        self.remove_slot(slot);
        self.insert(conn, deadline);
        Applied::Updated
    }

    /// Whether an entry with `conn`'s key is held (an update of it adds nothing).
    pub fn holds(&self, conn: &Connection) -> bool {
        self.find_conn(conn).is_some()
    }

    /// Removes `key`, returning the connection and the deadline it had.
    pub fn remove(&mut self, key: &ConnKey) -> Option<(Connection, Instant)> {
        let slot = self.find(key)?;
        let (conn, deadline) = self.remove_slot(slot);
        self.tidy();
        Some((conn, self.instant(deadline)))
    }

    pub fn clear(&mut self) {
        *self = Mirror {
            hasher: self.hasher.clone(),
            epoch: self.epoch,
            ..Mirror::default()
        };
    }

    /// Drops every entry whose deadline is at or before `now` and returns them.
    pub fn expire(&mut self, now: Instant) -> Vec<Connection> {
        let Some(epoch) = self.epoch else {
            return Vec::new();
        };
        let now_secs = secs_u32(now.saturating_duration_since(epoch).as_secs());
        let mut expired = Vec::new();
        while let Some(&Reverse((deadline, slot))) = self.expiry.peek() {
            if deadline > now_secs {
                break;
            }
            self.expiry.pop();
            // Only the pair matching the slot's current deadline counts.
            if self.deadline_at(slot) == Some(deadline) {
                expired.push(self.remove_slot(slot).0);
            }
        }
        self.tidy();
        expired
    }

    /// When the next entry expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiry
            .peek()
            .map(|Reverse((deadline, _))| self.instant(*deadline))
    }

    /// Every live entry with its timeout set to what remains of it at `now` (whole seconds,
    /// rounded up so a backup never drops an entry earlier than we would), templates first
    /// so a backup has them before the connections they control.
    pub fn snapshot(&self, now: Instant) -> Vec<Connection> {
        let mut out = Vec::with_capacity(self.len());
        self.resync_batch(&mut Cursor::default(), now, usize::MAX, &mut out);
        out
    }

    /// Appends up to `limit` entries live at `now` from where `cursor` is, as
    /// [`Mirror::snapshot`] gives them, and moves the cursor past them.
    pub fn resync_batch(
        &self,
        cursor: &mut Cursor,
        now: Instant,
        limit: usize,
        out: &mut Vec<Connection>,
    ) {
        let now_offset = self.epoch.map(|epoch| now.saturating_duration_since(epoch));
        let left = |deadline: u32| -> Option<u32> {
            let left = Duration::from_secs(u64::from(deadline)).checked_sub(now_offset?)?;
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            (secs > 0).then(|| secs_u32(secs))
        };
        let mut taken = 0;
        while !cursor.is_done() && taken < limit {
            let templates = cursor.pass < 2;
            let slot = cursor.slot as usize;
            let entry = if cursor.pass.is_multiple_of(2) {
                self.compact.get(slot).map(|c| {
                    let wanted =
                        c.deadline != FREE && ConnFlags(c.flags).is_template() == templates;
                    (wanted, c.deadline, None)
                })
            } else {
                self.rare.get(slot).map(|r| match r {
                    Some(r) if r.conn.is_template() == templates => {
                        (true, r.deadline, Some(&r.conn))
                    }
                    _ => (false, 0, None),
                })
            };
            let Some((wanted, deadline, rare)) = entry else {
                cursor.pass += 1;
                cursor.slot = 0;
                continue;
            };
            cursor.slot += 1;
            if !wanted {
                continue;
            }
            let Some(timeout) = left(deadline) else {
                continue;
            };
            let mut conn = match rare {
                Some(conn) => conn.clone(),
                None => self.compact[slot].conn(),
            };
            conn.timeout = timeout;
            out.push(conn);
            taken += 1;
        }
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

    /// Deadline in whole seconds after the epoch, rounded up.
    fn deadline(&mut self, now: Instant, lifetime: Duration) -> u32 {
        let epoch = *self.epoch.get_or_insert(now);
        let at = now.saturating_duration_since(epoch) + lifetime;
        secs_u32(at.as_secs() + u64::from(at.subsec_nanos() > 0)).min(FREE - 1)
    }

    fn instant(&self, deadline: u32) -> Instant {
        // A deadline exists only once `apply` has set the epoch.
        let epoch = self.epoch.unwrap_or_else(Instant::now);
        epoch + Duration::from_secs(u64::from(deadline))
    }

    fn hash(&self, key: &PackedKey) -> u64 {
        self.hasher.hash_one(key)
    }

    fn find(&self, key: &ConnKey) -> Option<u32> {
        if let Some(packed) = key.packed()
            && let Some(slot) = self.find_packed(&packed)
        {
            return Some(slot);
        }
        self.rare_index.get(key).map(|&i| i | RARE)
    }

    fn find_packed(&self, key: &PackedKey) -> Option<u32> {
        let compact = &self.compact;
        self.index
            .find(self.hash(key), |&i| compact[i as usize].key() == *key)
            .copied()
    }

    /// The slot holding `conn`'s key. An IPv4 key is in the compact slab unless its entry
    /// carries data only the rare one keeps.
    fn find_conn(&self, conn: &Connection) -> Option<u32> {
        if let Some(packed) = PackedKey::of(conn)
            && let Some(slot) = self.find_packed(&packed)
        {
            return Some(slot);
        }
        if self.rare_index.is_empty() {
            return None;
        }
        self.rare_index.get(&ConnKey::of(conn)).map(|&i| i | RARE)
    }

    fn conn_at(&self, slot: u32) -> Connection {
        if slot & RARE == 0 {
            self.compact[slot as usize].conn()
        } else {
            self.rare_entry(slot).conn.clone()
        }
    }

    fn rare_entry(&self, slot: u32) -> &Rare {
        self.rare[(slot & !RARE) as usize]
            .as_ref()
            .expect("the index only names live rare slots")
    }

    /// Destination addresses, port and flags of a live slot.
    fn dest_at(&self, slot: u32) -> (Addrs, u16, u32) {
        if slot & RARE == 0 {
            let c = &self.compact[slot as usize];
            (c.conn().addrs, c.dport, c.flags)
        } else {
            let r = &self.rare_entry(slot).conn;
            (r.addrs, r.dport, r.flags.0)
        }
    }

    fn deadline_at(&self, slot: u32) -> Option<u32> {
        if slot & RARE == 0 {
            let deadline = self.compact.get(slot as usize)?.deadline;
            (deadline != FREE).then_some(deadline)
        } else {
            self.rare
                .get((slot & !RARE) as usize)?
                .as_ref()
                .map(|r| r.deadline)
        }
    }

    fn insert(&mut self, conn: Connection, deadline: u32) {
        let slot = match Compact::of(&conn, deadline) {
            Some(record) => {
                let slot = place(&mut self.compact, &mut self.compact_free, record);
                let hash = self.hash(&record.key());
                let (hasher, compact) = (&self.hasher, &self.compact);
                self.index
                    .insert_unique(hash, slot, |&i| hasher.hash_one(compact[i as usize].key()));
                slot
            }
            None => {
                let key = ConnKey::of(&conn);
                let record = Some(Rare { conn, deadline });
                let index = place(&mut self.rare, &mut self.rare_free, record);
                self.rare_index.insert(key, index);
                index | RARE
            }
        };
        self.expiry.push(Reverse((deadline, slot)));
        self.tidy();
    }

    /// Frees a live slot; its expiry pair goes stale and is dropped when it surfaces.
    fn remove_slot(&mut self, slot: u32) -> (Connection, u32) {
        if slot & RARE == 0 {
            let record = self.compact[slot as usize];
            let hash = self.hash(&record.key());
            if let Ok(entry) = self.index.find_entry(hash, |&i| i == slot) {
                entry.remove();
            }
            self.compact[slot as usize].deadline = FREE;
            self.compact_free.push(slot);
            (record.conn(), record.deadline)
        } else {
            let index = slot & !RARE;
            let rare = self.rare[index as usize]
                .take()
                .expect("the index only names live rare slots");
            self.rare_index.remove(&ConnKey::of(&rare.conn));
            self.rare_free.push(index);
            (rare.conn, rare.deadline)
        }
    }

    /// Keeps the heap's top current (so [`Mirror::next_expiry`] is exact) and rebuilds the
    /// heap once outdated pairs outnumber live entries, which bounds it to twice the table.
    fn tidy(&mut self) {
        while let Some(&Reverse((deadline, slot))) = self.expiry.peek() {
            if self.deadline_at(slot) == Some(deadline) {
                break;
            }
            self.expiry.pop();
        }
        if self.expiry.len() > 2 * self.len() + 64 {
            let live: Vec<Reverse<(u32, u32)>> =
                self.compact
                    .iter()
                    .zip(0u32..)
                    .filter(|(c, _)| c.deadline != FREE)
                    .map(|(c, slot)| Reverse((c.deadline, slot)))
                    .chain(
                        self.rare.iter().zip(0u32..).filter_map(|(r, i)| {
                            r.as_ref().map(|r| Reverse((r.deadline, i | RARE)))
                        }),
                    )
                    .collect();
            self.expiry = BinaryHeap::from(live);
        }
    }
}

/// Puts `item` in a free slot of `slab`, or a new one at the end; returns the slot.
fn place<T>(slab: &mut Vec<T>, free: &mut Vec<u32>, item: T) -> u32 {
    if let Some(slot) = free.pop() {
        slab[slot as usize] = item;
        return slot;
    }
    slab.push(item);
    u32::try_from(slab.len() - 1)
        .ok()
        .filter(|slot| slot & RARE == 0)
        .expect("under 2^31 entries")
}

fn secs_u32(secs: u64) -> u32 {
    u32::try_from(secs).unwrap_or(u32::MAX)
}
