//! Checked readers and writers for attribute payloads, shared by the nested attribute sets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{NlaBuffer, NlasIterator};

use crate::constants::{AF_INET, AF_INET6};
use crate::error::DecodeError;

/// Walks the attributes in `buf`, mapping malformed headers to [`DecodeError::Attribute`].
pub(crate) fn iter(buf: &[u8]) -> impl Iterator<Item = Result<NlaBuffer<&[u8]>, DecodeError>> {
    NlasIterator::new(buf).map(|r| r.map_err(|e| DecodeError::Attribute(e.to_string())))
}

fn exact<'a>(
    nla: &'a NlaBuffer<&'a [u8]>,
    attr: &'static str,
    len: usize,
) -> Result<&'a [u8], DecodeError> {
    let v = nla.value();
    if v.len() != len {
        return Err(DecodeError::AttrLength {
            attr,
            expected: len,
            got: v.len(),
        });
    }
    Ok(v)
}

pub(crate) fn u8(nla: &NlaBuffer<&[u8]>, attr: &'static str) -> Result<u8, DecodeError> {
    Ok(exact(nla, attr, 1)?[0])
}

pub(crate) fn u16(nla: &NlaBuffer<&[u8]>, attr: &'static str) -> Result<u16, DecodeError> {
    let v = exact(nla, attr, 2)?;
    Ok(u16::from_ne_bytes([v[0], v[1]]))
}

/// A `__be16` carried in an NLA_U16 attribute (ports).
pub(crate) fn be16(nla: &NlaBuffer<&[u8]>, attr: &'static str) -> Result<u16, DecodeError> {
    let v = exact(nla, attr, 2)?;
    Ok(u16::from_be_bytes([v[0], v[1]]))
}

pub(crate) fn u32(nla: &NlaBuffer<&[u8]>, attr: &'static str) -> Result<u32, DecodeError> {
    let v = exact(nla, attr, 4)?;
    Ok(u32::from_ne_bytes([v[0], v[1], v[2], v[3]]))
}

/// A `__be32` carried in an NLA_U32 attribute (netmask, IPv4 group).
pub(crate) fn be32(nla: &NlaBuffer<&[u8]>, attr: &'static str) -> Result<u32, DecodeError> {
    let v = exact(nla, attr, 4)?;
    Ok(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
}

pub(crate) fn u64(nla: &NlaBuffer<&[u8]>, attr: &'static str) -> Result<u64, DecodeError> {
    let v = exact(nla, attr, 8)?;
    let mut b = [0u8; 8];
    b.copy_from_slice(v);
    Ok(u64::from_ne_bytes(b))
}

/// NLA_NUL_STRING: the kernel always sends the NUL; we accept a missing one.
pub(crate) fn string(nla: &NlaBuffer<&[u8]>, attr: &'static str) -> Result<String, DecodeError> {
    let v = nla.value();
    let v = match v.iter().position(|&b| b == 0) {
        Some(i) => &v[..i],
        None => v,
    };
    std::str::from_utf8(v)
        .map(str::to_owned)
        .map_err(|_| DecodeError::BadString { attr })
}

/// `union nf_inet_addr`: 16 bytes on the wire; an IPv4 address sits in the first 4.
pub(crate) fn raw_addr(
    nla: &NlaBuffer<&[u8]>,
    attr: &'static str,
) -> Result<[u8; 16], DecodeError> {
    let v = nla.value();
    let mut a = [0u8; 16];
    match v.len() {
        4 | 16 => a[..v.len()].copy_from_slice(v),
        got => {
            return Err(DecodeError::AttrLength {
                attr,
                expected: 16,
                got,
            });
        }
    }
    Ok(a)
}

pub(crate) fn addr_from_raw(af: u16, raw: &[u8; 16]) -> Result<IpAddr, DecodeError> {
    match af {
        AF_INET => Ok(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
        AF_INET6 => Ok(IpAddr::V6(Ipv6Addr::from(*raw))),
        other => Err(DecodeError::UnknownAddressFamily(other)),
    }
}

pub(crate) fn raw_from_addr(addr: &IpAddr) -> [u8; 16] {
    let mut a = [0u8; 16];
    match addr {
        IpAddr::V4(v4) => a[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => a.copy_from_slice(&v6.octets()),
    }
    a
}

pub(crate) fn emit_string(buf: &mut [u8], s: &str) {
    buf[..s.len()].copy_from_slice(s.as_bytes());
    buf[s.len()] = 0;
}
