//! RADIUS (RFC 2865): an Access-Request with a hidden User-Password and a
//! Message-Authenticator (RFC 3579, which servers hardened against BlastRADIUS require), and
//! the check of a reply's Response Authenticator, which proves the server shares the secret.

use md5::{Digest, Md5};

use super::WireError;

pub const ACCESS_REQUEST: u8 = 1;
pub const ACCESS_ACCEPT: u8 = 2;
pub const ACCESS_REJECT: u8 = 3;
pub const ACCESS_CHALLENGE: u8 = 11;

const HEADER_LEN: usize = 20;
const ATTR_USER_NAME: u8 = 1;
const ATTR_USER_PASSWORD: u8 = 2;
const ATTR_NAS_IDENTIFIER: u8 = 32;
const ATTR_MESSAGE_AUTHENTICATOR: u8 = 80;

#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let length = usize::from(u16::from_be_bytes([b[2], b[3]]));
        if !(HEADER_LEN..=b.len()).contains(&length) {
            return Err(WireError::BadLength);
        }
        Ok(Packet { buffer })
    }

    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[0]
    }
    pub fn identifier(&self) -> u8 {
        self.buffer.as_ref()[1]
    }
    pub fn length(&self) -> usize {
        let b = self.buffer.as_ref();
        usize::from(u16::from_be_bytes([b[2], b[3]]))
    }
    pub fn authenticator(&self) -> &[u8] {
        &self.buffer.as_ref()[4..HEADER_LEN]
    }
    /// The bytes the length field covers; trailing padding is not the packet's.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.length()]
    }
}

/// An Access-Request as a health check sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequest {
    pub identifier: u8,
    pub authenticator: [u8; 16],
    pub user: String,
    pub password: Vec<u8>,
    pub nas_identifier: String,
}

impl AccessRequest {
    fn hidden_password_len(&self) -> usize {
        self.password.len().div_ceil(16).max(1) * 16
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + 2
            + self.user.len()
            + 2
            + self.hidden_password_len()
            + 2
            + self.nas_identifier.len()
            + 18
    }

    /// The request, signed with `secret`.
    pub fn to_bytes(&self, secret: &[u8]) -> Result<Vec<u8>, WireError> {
        if self.user.len() > 253 || self.password.len() > 128 || self.nas_identifier.len() > 253 {
            return Err(WireError::AttributeTooLong);
        }
        let mut out = Vec::with_capacity(self.buffer_len());
        out.extend_from_slice(&[ACCESS_REQUEST, self.identifier, 0, 0]);
        out.extend_from_slice(&self.authenticator);
        attribute(&mut out, ATTR_USER_NAME, self.user.as_bytes());
        let hidden = hide_password(&self.password, secret, &self.authenticator);
        attribute(&mut out, ATTR_USER_PASSWORD, &hidden);
        attribute(
            &mut out,
            ATTR_NAS_IDENTIFIER,
            self.nas_identifier.as_bytes(),
        );
        let mac_at = out.len() + 2;
        attribute(&mut out, ATTR_MESSAGE_AUTHENTICATOR, &[0; 16]);
        let length = out.len() as u16;
        out[2..4].copy_from_slice(&length.to_be_bytes());
        let mac = hmac_md5(secret, &out);
        out[mac_at..mac_at + 16].copy_from_slice(&mac);
        Ok(out)
    }
}

fn attribute(out: &mut Vec<u8>, kind: u8, value: &[u8]) {
    out.push(kind);
    out.push((value.len() + 2) as u8);
    out.extend_from_slice(value);
}

/// RFC 2865 5.2: c(1) = p(1) xor MD5(S + RA), c(i) = p(i) xor MD5(S + c(i-1)).
pub fn hide_password(password: &[u8], secret: &[u8], authenticator: &[u8; 16]) -> Vec<u8> {
    let mut padded = password.to_vec();
    padded.resize(password.len().div_ceil(16).max(1) * 16, 0);
    let mut previous: Vec<u8> = authenticator.to_vec();
    let mut out = Vec::with_capacity(padded.len());
    for block in padded.chunks(16) {
        let key = Md5::new()
            .chain_update(secret)
            .chain_update(&previous)
            .finalize();
        let cipher: Vec<u8> = block.iter().zip(key.iter()).map(|(p, k)| p ^ k).collect();
        out.extend_from_slice(&cipher);
        previous = cipher;
    }
    out
}

pub fn hmac_md5(key: &[u8], message: &[u8]) -> [u8; 16] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..16].copy_from_slice(&Md5::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner_pad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let outer_pad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = Md5::new()
        .chain_update(&inner_pad)
        .chain_update(message)
        .finalize();
    Md5::new()
        .chain_update(&outer_pad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// The reply's code when its Response Authenticator is MD5(Code+ID+Length+RequestAuth+
/// Attributes+Secret) for our request; a reply signed with another secret is no answer.
pub fn verify_reply<T: AsRef<[u8]>>(
    reply: &Packet<T>,
    request_identifier: u8,
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> Result<u8, WireError> {
    if reply.identifier() != request_identifier {
        return Err(WireError::WrongIdentifier);
    }
    let bytes = reply.as_bytes();
    let expected = Md5::new()
        .chain_update(&bytes[..4])
        .chain_update(request_authenticator)
        .chain_update(&bytes[HEADER_LEN..])
        .chain_update(secret)
        .finalize();
    if expected.as_slice() != reply.authenticator() {
        return Err(WireError::BadAuthenticator);
    }
    Ok(reply.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2865 section 7.1: user "nemo", password "arctangent", secret "xyzzy5461", and the
    /// request authenticator of the example; the hidden password is the one the RFC prints.
    #[test]
    fn hides_the_password_as_rfc_2865_example() {
        let authenticator = [
            0x0f, 0x40, 0x3f, 0x94, 0x73, 0x97, 0x80, 0x57, 0xbd, 0x83, 0xd5, 0xcb, 0x98, 0xf4,
            0x22, 0x7a,
        ];
        let hidden = hide_password(b"arctangent", b"xyzzy5461", &authenticator);
        assert_eq!(
            hidden,
            [
                0x0d, 0xbe, 0x70, 0x8d, 0x93, 0xd4, 0x13, 0xce, 0x31, 0x96, 0xe4, 0x3f, 0x78, 0x2a,
                0x0a, 0xee
            ]
        );
    }

    /// RFC 2104 test case 2 for HMAC-MD5.
    #[test]
    fn hmac_md5_known_answer() {
        assert_eq!(
            hmac_md5(b"Jefe", b"what do ya want for nothing?"),
            [
                0x75, 0x0c, 0x78, 0x3e, 0x6a, 0xb0, 0xb5, 0x03, 0xea, 0xa8, 0x6e, 0x31, 0x0a, 0x5d,
                0xb7, 0x38
            ]
        );
    }

    /// The RFC 2865 section 7.1 Access-Accept reply, which is signed for that request.
    #[test]
    fn verifies_the_rfc_2865_example_reply() {
        let request_auth = [
            0x0f, 0x40, 0x3f, 0x94, 0x73, 0x97, 0x80, 0x57, 0xbd, 0x83, 0xd5, 0xcb, 0x98, 0xf4,
            0x22, 0x7a,
        ];
        let reply: [u8; 38] = [
            0x02, 0x00, 0x00, 0x26, 0x86, 0xfe, 0x22, 0x0e, 0x76, 0x24, 0xba, 0x2a, 0x10, 0x05,
            0xf6, 0xbf, 0x9b, 0x55, 0xe0, 0xb2, 0x06, 0x06, 0x00, 0x00, 0x00, 0x01, 0x0f, 0x06,
            0x00, 0x00, 0x00, 0x00, 0x0e, 0x06, 0xc0, 0xa8, 0x01, 0x03,
        ];
        let packet = Packet::new_checked(&reply[..]).unwrap();
        assert_eq!(
            verify_reply(&packet, 0, &request_auth, b"xyzzy5461"),
            Ok(ACCESS_ACCEPT)
        );
        assert_eq!(
            verify_reply(&packet, 0, &request_auth, b"wrong"),
            Err(WireError::BadAuthenticator)
        );
        assert_eq!(
            verify_reply(&packet, 1, &request_auth, b"xyzzy5461"),
            Err(WireError::WrongIdentifier)
        );
    }

    #[test]
    fn request_round_trips_through_the_view() {
        let request = AccessRequest {
            identifier: 7,
            authenticator: [1; 16],
            user: "probe".into(),
            password: b"secret-password-longer-than-16".to_vec(),
            nas_identifier: "directord".into(),
        };
        let bytes = request.to_bytes(b"s3cret").unwrap();
        assert_eq!(bytes.len(), request.buffer_len());
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            (packet.code(), packet.identifier(), packet.length()),
            (ACCESS_REQUEST, 7, bytes.len())
        );
        // The Message-Authenticator is HMAC-MD5 over the packet with itself zeroed.
        let mac_at = bytes.len() - 16;
        let mut zeroed = bytes.clone();
        zeroed[mac_at..].fill(0);
        assert_eq!(bytes[mac_at..], hmac_md5(b"s3cret", &zeroed));
        assert_eq!(
            Packet::new_checked(&bytes[..19]).unwrap_err(),
            WireError::Truncated
        );
        let mut long = bytes.clone();
        long[3] = 0xff;
        assert_eq!(
            Packet::new_checked(&long[..]).unwrap_err(),
            WireError::BadLength
        );
    }
}
