//! Authentication of control packets (RFC 5880 sections 6.7.2-6.7.4): simple
//! password, keyed MD5 and keyed SHA1, each keyed type plain or meticulous.
//!
//! A keyed digest is computed over the whole packet with the key, zero-padded to the
//! digest length, in the digest field; the receiver puts its own key there and
//! compares. Sequence-number windows need session state and live in
//! [`crate::session`].

use md5::{Digest, Md5};
use sha1::Sha1;

use crate::wire::{AuthSection, HEADER_LEN, PASSWORD_MAX, Packet, Repr, auth_type};

/// The configured authentication type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthKind {
    SimplePassword,
    KeyedMd5,
    MeticulousMd5,
    KeyedSha1,
    MeticulousSha1,
}

impl AuthKind {
    pub fn code(self) -> u8 {
        match self {
            AuthKind::SimplePassword => auth_type::SIMPLE,
            AuthKind::KeyedMd5 => auth_type::KEYED_MD5,
            AuthKind::MeticulousMd5 => auth_type::METICULOUS_MD5,
            AuthKind::KeyedSha1 => auth_type::KEYED_SHA1,
            AuthKind::MeticulousSha1 => auth_type::METICULOUS_SHA1,
        }
    }

    /// Meticulous types must see a strictly increasing sequence number (section 6.7.3).
    pub fn meticulous(self) -> bool {
        matches!(self, AuthKind::MeticulousMd5 | AuthKind::MeticulousSha1)
    }

    /// Longest key the type carries: the digest length, or 16 for a password.
    pub fn max_key_len(self) -> usize {
        AuthSection::digest_len(self.code()).unwrap_or(PASSWORD_MAX)
    }

    fn keyed(self) -> bool {
        self != AuthKind::SimplePassword
    }
}

/// Why an authentication configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigError {
    #[error("the key is empty")]
    EmptyKey,
    #[error("the key is {len} bytes; {kind:?} takes at most {max}")]
    KeyTooLong {
        kind: AuthKind,
        len: usize,
        max: usize,
    },
}

/// Why a received packet fails authentication (each a drop counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("packet is not authenticated but the session is")]
    Missing,
    #[error("packet is authenticated but the session is not")]
    Unexpected,
    #[error("authentication type {got} where {want} is configured")]
    TypeMismatch { got: u8, want: u8 },
    #[error("key id {got} where {want} is configured")]
    KeyId { got: u8, want: u8 },
    #[error("wrong password or digest")]
    Digest,
    #[error("sequence number {got} outside the window after {last}")]
    Sequence { got: u32, last: u32 },
}

impl AuthError {
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthError::Missing => "auth_missing",
            AuthError::Unexpected => "auth_unexpected",
            AuthError::TypeMismatch { .. } => "auth_type_mismatch",
            AuthError::KeyId { .. } => "auth_key_id",
            AuthError::Digest => "auth_digest",
            AuthError::Sequence { .. } => "auth_sequence",
        }
    }
}

/// One session's key.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthConfig {
    kind: AuthKind,
    key_id: u8,
    key: Vec<u8>,
}

// Keys stay out of logs.
impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("kind", &self.kind)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl AuthConfig {
    pub fn new(kind: AuthKind, key_id: u8, key: &[u8]) -> Result<AuthConfig, AuthConfigError> {
        if key.is_empty() {
            return Err(AuthConfigError::EmptyKey);
        }
        if key.len() > kind.max_key_len() {
            return Err(AuthConfigError::KeyTooLong {
                kind,
                len: key.len(),
                max: kind.max_key_len(),
            });
        }
        Ok(AuthConfig {
            kind,
            key_id,
            key: key.to_vec(),
        })
    }

    pub fn kind(&self) -> AuthKind {
        self.kind
    }

    pub fn key_id(&self) -> u8 {
        self.key_id
    }

    /// The key zero-padded to the digest length: what the digest field holds while
    /// the digest is computed.
    fn padded_key(&self) -> Vec<u8> {
        let mut padded = vec![0u8; self.kind.max_key_len()];
        padded[..self.key.len()].copy_from_slice(&self.key);
        padded
    }

    fn hash(&self, bytes: &[u8]) -> Vec<u8> {
        match self.kind {
            AuthKind::KeyedMd5 | AuthKind::MeticulousMd5 => Md5::digest(bytes).to_vec(),
            _ => Sha1::digest(bytes).to_vec(),
        }
    }

    /// Emits `repr` (its `auth` is replaced) signed with this key and `sequence`.
    pub fn sign(&self, repr: &Repr, sequence: u32) -> Vec<u8> {
        let mut repr = repr.clone();
        repr.auth = Some(if self.kind.keyed() {
            AuthSection::Keyed {
                auth_type: self.kind.code(),
                key_id: self.key_id,
                sequence,
                digest: self.padded_key(),
            }
        } else {
            AuthSection::Simple {
                key_id: self.key_id,
                password: self.key.clone(),
            }
        });
        let mut bytes = repr.to_bytes();
        if self.kind.keyed() {
            let digest = self.hash(&bytes);
            let start = bytes.len() - digest.len();
            bytes[start..].copy_from_slice(&digest);
        }
        bytes
    }

    /// Checks type, key id and password or digest of `repr`, decoded from `bytes`.
    /// Returns the sequence number of a keyed packet for the session's window check.
    pub fn verify(&self, bytes: &[u8], repr: &Repr) -> Result<Option<u32>, AuthError> {
        let section = repr.auth.as_ref().ok_or(AuthError::Missing)?;
        if section.auth_type() != self.kind.code() {
            return Err(AuthError::TypeMismatch {
                got: section.auth_type(),
                want: self.kind.code(),
            });
        }
        if section.key_id() != self.key_id {
            return Err(AuthError::KeyId {
                got: section.key_id(),
                want: self.key_id,
            });
        }
        match section {
            AuthSection::Simple { password, .. } => {
                if constant_time_eq(password, &self.key) {
                    Ok(None)
                } else {
                    Err(AuthError::Digest)
                }
            }
            AuthSection::Keyed {
                sequence, digest, ..
            } => {
                // Repr::parse checked that the section ends at Length.
                let mut copy = Packet::new_unchecked(bytes).payload().to_vec();
                let start = copy.len() - digest.len();
                debug_assert!(start >= HEADER_LEN);
                copy[start..].copy_from_slice(&self.padded_key());
                if constant_time_eq(&self.hash(&copy), digest) {
                    Ok(Some(*sequence))
                } else {
                    Err(AuthError::Digest)
                }
            }
        }
    }
}

/// Comparison whose time does not depend on where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
