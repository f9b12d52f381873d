//! Nested statistics (IPVS_SVC_ATTR_STATS / STATS64, IPVS_DEST_ATTR_STATS / STATS64).

use netlink_packet_core::{DefaultNla, Nla, NlaBuffer, Parseable};

use crate::attr;
use crate::constants::*;
use crate::error::DecodeError;

/// Which counter an attribute carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatsField {
    Conns,
    InPkts,
    OutPkts,
    InBytes,
    OutBytes,
    Cps,
    InPps,
    OutPps,
    InBps,
    OutBps,
}

impl StatsField {
    pub fn kind(self) -> u16 {
        match self {
            StatsField::Conns => IPVS_STATS_ATTR_CONNS,
            StatsField::InPkts => IPVS_STATS_ATTR_INPKTS,
            StatsField::OutPkts => IPVS_STATS_ATTR_OUTPKTS,
            StatsField::InBytes => IPVS_STATS_ATTR_INBYTES,
            StatsField::OutBytes => IPVS_STATS_ATTR_OUTBYTES,
            StatsField::Cps => IPVS_STATS_ATTR_CPS,
            StatsField::InPps => IPVS_STATS_ATTR_INPPS,
            StatsField::OutPps => IPVS_STATS_ATTR_OUTPPS,
            StatsField::InBps => IPVS_STATS_ATTR_INBPS,
            StatsField::OutBps => IPVS_STATS_ATTR_OUTBPS,
        }
    }

    pub fn from_kind(kind: u16) -> Option<Self> {
        Some(match kind {
            IPVS_STATS_ATTR_CONNS => StatsField::Conns,
            IPVS_STATS_ATTR_INPKTS => StatsField::InPkts,
            IPVS_STATS_ATTR_OUTPKTS => StatsField::OutPkts,
            IPVS_STATS_ATTR_INBYTES => StatsField::InBytes,
            IPVS_STATS_ATTR_OUTBYTES => StatsField::OutBytes,
            IPVS_STATS_ATTR_CPS => StatsField::Cps,
            IPVS_STATS_ATTR_INPPS => StatsField::InPps,
            IPVS_STATS_ATTR_OUTPPS => StatsField::OutPps,
            IPVS_STATS_ATTR_INBPS => StatsField::InBps,
            IPVS_STATS_ATTR_OUTBPS => StatsField::OutBps,
            _ => return None,
        })
    }

    const ALL: [StatsField; 10] = [
        StatsField::Conns,
        StatsField::InPkts,
        StatsField::OutPkts,
        StatsField::InBytes,
        StatsField::OutBytes,
        StatsField::Cps,
        StatsField::InPps,
        StatsField::OutPps,
        StatsField::InBps,
        StatsField::OutBps,
    ];
}

/// A counter is a u32 or a u64 depending on the container (the 32-bit STATS set carries
/// the byte counters as u64 too), so the width is kept for exact re-emission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsValue {
    U32(u32),
    U64(u64),
}

impl StatsValue {
    pub fn get(self) -> u64 {
        match self {
            StatsValue::U32(v) => u64::from(v),
            StatsValue::U64(v) => v,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsNla {
    Value(StatsField, StatsValue),
    /// IPVS_STATS_ATTR_PAD: inserted by `nla_put_u64_64bit` on kernels without efficient
    /// unaligned access (UML among them) so the next u64 is 8-byte aligned. Kept, with its
    /// payload length, so replies re-emit byte for byte.
    Pad(usize),
    Other(DefaultNla),
}

impl Nla for StatsNla {
    fn value_len(&self) -> usize {
        match self {
            StatsNla::Value(_, StatsValue::U32(_)) => 4,
            StatsNla::Value(_, StatsValue::U64(_)) => 8,
            StatsNla::Pad(n) => *n,
            StatsNla::Other(o) => o.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            StatsNla::Value(f, _) => f.kind(),
            StatsNla::Pad(_) => IPVS_STATS_ATTR_PAD,
            StatsNla::Other(o) => o.kind(),
        }
    }

    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            StatsNla::Value(_, StatsValue::U32(v)) => buf[..4].copy_from_slice(&v.to_ne_bytes()),
            StatsNla::Value(_, StatsValue::U64(v)) => buf[..8].copy_from_slice(&v.to_ne_bytes()),
            StatsNla::Pad(n) => buf[..*n].fill(0),
            StatsNla::Other(o) => o.emit_value(buf),
        }
    }
}

impl StatsNla {
    pub fn parse(nla: &NlaBuffer<&[u8]>) -> Result<Self, DecodeError> {
        let kind = nla.kind();
        if kind == IPVS_STATS_ATTR_PAD {
            return Ok(StatsNla::Pad(nla.value_length()));
        }
        match StatsField::from_kind(kind) {
            Some(field) => {
                let value = match nla.value_length() {
                    4 => StatsValue::U32(attr::u32(nla, "IPVS_STATS_ATTR")?),
                    _ => StatsValue::U64(attr::u64(nla, "IPVS_STATS_ATTR")?),
                };
                Ok(StatsNla::Value(field, value))
            }
            None => DefaultNla::parse(nla)
                .map(StatsNla::Other)
                .map_err(|e| DecodeError::Attribute(e.to_string())),
        }
    }

    pub fn parse_all(buf: &[u8]) -> Result<Vec<Self>, DecodeError> {
        attr::iter(buf)
            .map(|n| n.and_then(|n| StatsNla::parse(&n)))
            .collect()
    }
}

/// Counters of a service or destination: totals since creation (or the last zero) and
/// the estimator's current rates (per second; bytes per second for the bps fields).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

impl Stats {
    fn field_mut(&mut self, f: StatsField) -> &mut u64 {
        match f {
            StatsField::Conns => &mut self.conns,
            StatsField::InPkts => &mut self.inpkts,
            StatsField::OutPkts => &mut self.outpkts,
            StatsField::InBytes => &mut self.inbytes,
            StatsField::OutBytes => &mut self.outbytes,
            StatsField::Cps => &mut self.cps,
            StatsField::InPps => &mut self.inpps,
            StatsField::OutPps => &mut self.outpps,
            StatsField::InBps => &mut self.inbps,
            StatsField::OutBps => &mut self.outbps,
        }
    }

    pub fn get(&self, f: StatsField) -> u64 {
        let mut copy = *self;
        *copy.field_mut(f)
    }

    pub fn from_nlas(nlas: &[StatsNla]) -> Self {
        let mut s = Stats::default();
        for n in nlas {
            if let StatsNla::Value(f, v) = n {
                *s.field_mut(*f) = v.get();
            }
        }
        s
    }

    /// The 32-bit set as the kernel fills it: byte counters u64, the rest truncated.
    pub fn to_nlas32(&self) -> Vec<StatsNla> {
        StatsField::ALL
            .iter()
            .map(|&f| {
                let v = self.get(f);
                let value = match f {
                    StatsField::InBytes | StatsField::OutBytes => StatsValue::U64(v),
                    _ => StatsValue::U32(v as u32),
                };
                StatsNla::Value(f, value)
            })
            .collect()
    }

    pub fn to_nlas64(&self) -> Vec<StatsNla> {
        StatsField::ALL
            .iter()
            .map(|&f| StatsNla::Value(f, StatsValue::U64(self.get(f))))
            .collect()
    }
}

/// Emits a nested list; shared by the nested attribute sets.
pub(crate) fn nested_len<T: Nla>(nlas: &[T]) -> usize {
    use netlink_packet_core::Emitable;
    nlas.buffer_len()
}

pub(crate) fn nested_emit<T: Nla>(nlas: &[T], buf: &mut [u8]) {
    use netlink_packet_core::Emitable;
    nlas.emit(buf);
}
