//! Sans-IO framing: requests to bytes (netlink + genl headers around an [`IpvsMessage`])
//! and received datagrams to [`Reply`] values. The socket lives in [`crate::client`].

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_MULTIPART, NLM_F_REQUEST,
    NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NetlinkBuffer, NetlinkHeader,
    NetlinkMessage, NetlinkPayload, NlasIterator,
};
use netlink_packet_generic::constants::GENL_ID_CTRL;
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlHeader, GenlMessage};

use crate::attr;

const CTRL_CMD_NEWFAMILY: u8 = 1;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
use crate::constants::IPVS_GENL_NAME;
use crate::error::DecodeError;
use crate::message::{IpvsMessage, Request};

const NLMSG_HDRLEN: usize = 16;
const GENL_HDRLEN: usize = 4;
/// `NLMSGERR_ATTR_MSG` in the extended ack TLVs after an NLMSG_ERROR.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// Serializes `msg` for `family_id` with the given netlink flags, sequence number and port.
pub fn encode(msg: &IpvsMessage, family_id: u16, flags: u16, seq: u32, port: u32) -> Vec<u8> {
    let genl = GenlMessage::from_payload(msg.clone());
    let mut genl = genl;
    genl.set_resolved_family_id(family_id);
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    header.port_number = port;
    let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(genl));
    nl.finalize();
    let mut buf = vec![0u8; nl.buffer_len()];
    nl.serialize(&mut buf);
    buf
}

/// The netlink flags a request is sent with: always an ack (so errors and completion
/// are reported per request, as ipvsadm does), plus NLM_F_DUMP for table reads.
pub fn request_flags(req: &Request) -> u16 {
    let mut flags = NLM_F_REQUEST | NLM_F_ACK;
    if req.is_dump() {
        flags |= NLM_F_DUMP;
    }
    flags
}

pub fn encode_request(req: &Request, family_id: u16, seq: u32, port: u32) -> Vec<u8> {
    encode(&req.message(), family_id, request_flags(req), seq, port)
}

/// CTRL_CMD_GETFAMILY for "IPVS". (ipvsadm's libnl sends controller version 1; the
/// netlink-packet-generic controller uses 2; nlctrl accepts both.)
pub fn encode_family_query(seq: u32, port: u32) -> Vec<u8> {
    let ctrl = GenlCtrl {
        cmd: GenlCtrlCmd::GetFamily,
        nlas: vec![GenlCtrlAttrs::FamilyName(IPVS_GENL_NAME.to_string())],
    };
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK;
    header.sequence_number = seq;
    header.port_number = port;
    let mut nl = NetlinkMessage::new(
        header,
        NetlinkPayload::InnerMessage(GenlMessage::from_payload(ctrl)),
    );
    nl.finalize();
    let mut buf = vec![0u8; nl.buffer_len()];
    nl.serialize(&mut buf);
    buf
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyKind {
    /// An IPVS message; `multi` is NLM_F_MULTI (part of a dump).
    Ipvs { msg: IpvsMessage, multi: bool },
    /// The family id from a nlctrl NEWFAMILY reply.
    Family { id: u16 },
    /// NLMSG_ERROR with code 0.
    Ack,
    /// NLMSG_ERROR with a negative code; `errno` is positive.
    Error { errno: i32, extack: Option<String> },
    /// NLMSG_DONE; a non-zero `errno` means the dump failed part way.
    Done { errno: i32 },
    /// Anything else (NOOP, other families).
    Ignored { message_type: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub seq: u32,
    pub port: u32,
    pub flags: u16,
    pub kind: ReplyKind,
}

/// Splits one received datagram into its netlink messages and decodes each.
pub fn decode_datagram(buf: &[u8], family_id: u16) -> Result<Vec<Reply>, DecodeError> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + NLMSG_HDRLEN <= buf.len() {
        let nl = NetlinkBuffer::new_checked(&buf[off..])
            .map_err(|e| DecodeError::Netlink(e.to_string()))?;
        let len = nl.length() as usize;
        out.push(decode_one(&nl, family_id)?);
        off += (len + 3) & !3;
    }
    Ok(out)
}

fn decode_one(nl: &NetlinkBuffer<&[u8]>, family_id: u16) -> Result<Reply, DecodeError> {
    let payload = nl.payload();
    let ty = nl.message_type();
    let flags = nl.flags();
    let kind = match ty {
        NLMSG_ERROR => {
            if payload.len() < 4 {
                return Err(DecodeError::Netlink(format!(
                    "NLMSG_ERROR of {} bytes",
                    payload.len()
                )));
            }
            let code = i32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]);
            if code == 0 {
                ReplyKind::Ack
            } else {
                ReplyKind::Error {
                    errno: code.saturating_neg(),
                    extack: extack_msg(payload, flags),
                }
            }
        }
        NLMSG_DONE => {
            let errno = if payload.len() >= 4 {
                i32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]])
                    .saturating_neg()
            } else {
                0
            };
            ReplyKind::Done { errno }
        }
        NLMSG_OVERRUN => return Err(DecodeError::Netlink("NLMSG_OVERRUN".into())),
        NLMSG_NOOP => ReplyKind::Ignored { message_type: ty },
        GENL_ID_CTRL => {
            if payload.len() < GENL_HDRLEN {
                return Err(DecodeError::TruncatedHeader(payload.len()));
            }
            // Only CTRL_ATTR_FAMILY_ID is needed, so the top-level attributes are scanned here:
            // netlink-packet-generic's full nlctrl parser panics on some malformed nested
            // policy attributes (found by tests/mutation.rs).
            let mut id = None;
            for nla in NlasIterator::new(&payload[GENL_HDRLEN..]) {
                let nla = nla.map_err(|e| DecodeError::Attribute(e.to_string()))?;
                if nla.kind() == CTRL_ATTR_FAMILY_ID {
                    let value = nla.value();
                    if value.len() != 2 {
                        return Err(DecodeError::AttrLength {
                            attr: "CTRL_ATTR_FAMILY_ID",
                            expected: 2,
                            got: value.len(),
                        });
                    }
                    id = Some(u16::from_ne_bytes([value[0], value[1]]));
                }
            }
            match (payload[0], id) {
                (_, Some(id)) => ReplyKind::Family { id },
                (CTRL_CMD_NEWFAMILY, None) => {
                    return Err(DecodeError::MissingAttr("CTRL_ATTR_FAMILY_ID"));
                }
                // Our own GETFAMILY query, when decoding a capture.
                _ => ReplyKind::Ignored { message_type: ty },
            }
        }
        t if t == family_id => {
            if payload.len() < GENL_HDRLEN {
                return Err(DecodeError::TruncatedHeader(payload.len()));
            }
            let header = GenlHeader {
                cmd: payload[0],
                version: payload[1],
            };
            let msg = IpvsMessage::parse(&payload[GENL_HDRLEN..], header)?;
            ReplyKind::Ipvs {
                msg,
                multi: flags & NLM_F_MULTIPART != 0,
            }
        }
        other => ReplyKind::Ignored {
            message_type: other,
        },
    };
    Ok(Reply {
        seq: nl.sequence_number(),
        port: nl.port_number(),
        flags,
        kind,
    })
}

/// Extended ack text: after the code comes the offending request (just its header when
/// NLM_F_CAPPED), then TLVs when NLM_F_ACK_TLVS.
fn extack_msg(payload: &[u8], flags: u16) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 || payload.len() < 4 + NLMSG_HDRLEN {
        return None;
    }
    let orig_len = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        u32::from_ne_bytes([payload[4], payload[5], payload[6], payload[7]]) as usize
    };
    let start = 4 + ((orig_len + 3) & !3);
    let tlvs = payload.get(start..)?;
    for nla in attr::iter(tlvs) {
        let nla = nla.ok()?;
        if nla.kind() == NLMSGERR_ATTR_MSG {
            return attr::string(&nla, "NLMSGERR_ATTR_MSG").ok();
        }
    }
    None
}
