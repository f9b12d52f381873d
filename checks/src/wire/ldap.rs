//! LDAPv3 as far as a health check goes (RFC 4511): a simple BindRequest, a base-object
//! SearchRequest, UnbindRequest, and the protocolOp and resultCode of a reply, in BER with
//! definite lengths.

use super::WireError;

pub const BIND_RESPONSE: u8 = 0x61;
pub const SEARCH_RESULT_ENTRY: u8 = 0x64;
pub const SEARCH_RESULT_DONE: u8 = 0x65;
pub const SEARCH_RESULT_REFERENCE: u8 = 0x73;

/// BER definite length.
fn ber_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
}

fn ber(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    ber_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

fn message(id: u8, op: Vec<u8>) -> Vec<u8> {
    let mut content = ber(0x02, &[id]);
    content.extend(op);
    ber(0x30, &content)
}

/// LDAPv3 simple BindRequest (RFC 4511 4.2); empty DN and password is an anonymous bind.
pub fn bind(id: u8, dn: &str, password: &str) -> Vec<u8> {
    let mut op = ber(0x02, &[3]);
    op.extend(ber(0x04, dn.as_bytes()));
    op.extend(ber(0x80, password.as_bytes()));
    message(id, ber(0x60, &op))
}

/// Base-object SearchRequest for (objectClass=*), no attributes (RFC 4511 4.5.1).
pub fn search_base(id: u8, base: &str) -> Vec<u8> {
    let mut op = ber(0x04, base.as_bytes());
    op.extend_from_slice(&[0x0a, 1, 0, 0x0a, 1, 0, 0x02, 1, 1, 0x02, 1, 0, 0x01, 1, 0]);
    op.extend(ber(0x87, b"objectClass"));
    op.extend_from_slice(&[0x30, 0]);
    message(id, ber(0x63, &op))
}

/// UnbindRequest, so the server logs a clean close rather than a dropped connection.
pub fn unbind(id: u8) -> Vec<u8> {
    message(id, vec![0x42, 0])
}

/// The length of an LDAPMessage from its first two bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// The content length itself.
    Short(usize),
    /// The length is in the next this many bytes, big-endian ([`long_length`]).
    Long(usize),
}

/// Reads the SEQUENCE tag and length byte that start every LDAPMessage.
pub fn message_length(head: [u8; 2]) -> Result<Length, WireError> {
    if head[0] != 0x30 {
        return Err(WireError::NotLdap);
    }
    if head[1] & 0x80 == 0 {
        return Ok(Length::Short(usize::from(head[1])));
    }
    match usize::from(head[1] & 0x7f) {
        n @ 1..=3 => Ok(Length::Long(n)),
        _ => Err(WireError::BadBerLength),
    }
}

pub fn long_length(bytes: &[u8]) -> usize {
    bytes.iter().fold(0, |acc, &b| acc << 8 | usize::from(b))
}

/// The protocolOp tag of a message's content and, when the op is a result, its resultCode.
pub fn parse_op(body: &[u8]) -> Result<(u8, Option<u8>), WireError> {
    // messageID INTEGER, then the protocolOp.
    let mut at = 2 + usize::from(*body.get(1).ok_or(WireError::Truncated)?);
    let op = *body.get(at).ok_or(WireError::Truncated)?;
    at += 1;
    let op_len_byte = *body.get(at).ok_or(WireError::Truncated)?;
    at += 1 + if op_len_byte & 0x80 != 0 {
        usize::from(op_len_byte & 0x7f)
    } else {
        0
    };
    // An LDAPResult starts with resultCode ENUMERATED.
    let code = match body.get(at..at + 3) {
        Some([0x0a, 1, code]) => Some(*code),
        _ => None,
    };
    Ok((op, code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_bind_bytes() {
        // RFC 4511 BindRequest, messageID 1, version 3, empty name, empty simple password:
        // the 14 bytes ldapsearch -x sends.
        assert_eq!(
            bind(1, "", ""),
            [
                0x30, 0x0c, 0x02, 0x01, 0x01, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x80, 0x00
            ]
        );
    }

    #[test]
    fn unbind_bytes() {
        assert_eq!(unbind(3), [0x30, 0x05, 0x02, 0x01, 0x03, 0x42, 0x00]);
    }

    #[test]
    fn search_of_a_long_base_uses_a_long_length() {
        let base = "dc=".repeat(50);
        let msg = search_base(2, &base);
        assert_eq!(&msg[..2], [0x30, 0x81]);
        assert_eq!(message_length([msg[0], msg[1]]), Ok(Length::Long(1)));
        assert_eq!(long_length(&msg[2..3]), msg.len() - 3);
    }

    #[test]
    fn bind_response() {
        // OpenLDAP's success: messageID 1, BindResponse, resultCode 0, empty DN and message.
        let reply = [
            0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00,
        ];
        assert_eq!(message_length([reply[0], reply[1]]), Ok(Length::Short(12)));
        assert_eq!(parse_op(&reply[2..]), Ok((BIND_RESPONSE, Some(0))));
        // invalidCredentials (49).
        let mut refused = reply;
        refused[9] = 49;
        assert_eq!(parse_op(&refused[2..]), Ok((BIND_RESPONSE, Some(49))));
    }

    #[test]
    fn malformed_replies() {
        assert_eq!(message_length([0x04, 0x00]), Err(WireError::NotLdap));
        assert_eq!(message_length([0x30, 0x80]), Err(WireError::BadBerLength));
        assert_eq!(message_length([0x30, 0x84]), Err(WireError::BadBerLength));
        assert_eq!(parse_op(&[0x02, 0x01, 0x01]), Err(WireError::Truncated));
    }
}
