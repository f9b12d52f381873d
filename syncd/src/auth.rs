//! The optional shared key on the unicast path between syncd peers: each datagram (sync
//! message or hello) carries an HMAC-SHA256 of itself, appended. A backup hands what a peer
//! sends to its kernel, so without a key anyone who can forge a peer's source address can
//! write connections into it. Traffic to the group stays in the kernel's format: kernel
//! backups read it too and know nothing of tags.
//!
//! No replay protection: a recorded datagram can be sent again, which refreshes entries it
//! named to the timeouts it carried (clamped like any other), nothing more.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of the tag appended to each datagram.
pub const TAG_LEN: usize = 32;
/// A shorter key is refused: it would be guessable.
pub const MIN_KEY_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the key is {0} bytes; at least {MIN_KEY_LEN} are needed")]
    TooShort(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("datagram too short to carry an authentication tag")]
    NoTag,
    #[error("authentication tag does not match (wrong key or altered datagram)")]
    BadTag,
}

impl AuthError {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthError::NoTag => "auth_no_tag",
            AuthError::BadTag => "auth_bad_tag",
        }
    }
}

/// The shared key. Its bytes never reach a log: Debug shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({} bytes)", self.0.len())
    }
}

impl Key {
    pub fn new(bytes: Vec<u8>) -> Result<Key, KeyError> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort(bytes.len()));
        }
        Ok(Key(bytes))
    }

    /// The key in a key file: its contents without a trailing newline, so a key written
    /// with `echo` or an editor works as well as raw bytes.
    pub fn from_file_contents(mut bytes: Vec<u8>) -> Result<Key, KeyError> {
        while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            bytes.pop();
        }
        Key::new(bytes)
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }

    /// `payload` with its tag appended.
    pub fn sign(&self, mut payload: Vec<u8>) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(&payload);
        payload.extend_from_slice(&mac.finalize().into_bytes());
        payload
    }

    /// The payload of a signed datagram, if its tag is right (compared in constant time).
    pub fn verify<'a>(&self, datagram: &'a [u8]) -> Result<&'a [u8], AuthError> {
        let split = datagram
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(AuthError::NoTag)?;
        let (payload, tag) = datagram.split_at(split);
        let mut mac = self.mac();
        mac.update(payload);
        mac.verify_slice(tag).map_err(|_| AuthError::BadTag)?;
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_datagram_verifies_only_with_its_key_and_unaltered() {
        let key = Key::new(b"0123456789abcdef".to_vec()).unwrap();
        let signed = key.sign(b"sync message".to_vec());
        assert_eq!(signed.len(), 12 + TAG_LEN);
        assert_eq!(key.verify(&signed), Ok(&b"sync message"[..]));
        let other = Key::new(b"0123456789abcdeF".to_vec()).unwrap();
        assert_eq!(other.verify(&signed), Err(AuthError::BadTag));
        let mut altered = signed.clone();
        altered[0] ^= 1;
        assert_eq!(key.verify(&altered), Err(AuthError::BadTag));
        assert_eq!(key.verify(&signed[..TAG_LEN - 1]), Err(AuthError::NoTag));
    }

    #[test]
    fn key_files_lose_a_trailing_newline_and_short_keys_are_refused() {
        let key = Key::from_file_contents(b"0123456789abcdef\n".to_vec()).unwrap();
        assert_eq!(key, Key::new(b"0123456789abcdef".to_vec()).unwrap());
        assert_eq!(
            Key::from_file_contents(b"short\n".to_vec()),
            Err(KeyError::TooShort(5))
        );
        assert_eq!(format!("{key:?}"), "Key(16 bytes)");
    }
}
