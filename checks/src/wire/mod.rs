//! Packet formats the negotiate checks speak: borrowed views with checked access plus owned
//! representations, in the smoltcp style.

pub mod dns;
pub mod ftp;
pub mod http;
pub mod imap;
pub mod ldap;
pub mod mysql;
pub mod pgsql;
pub mod pop;
pub mod radius;
pub mod smtp;

/// Why a reply could not be understood; one variant per cause, each with a stable label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("truncated")]
    Truncated,
    #[error("length field disagrees with the datagram")]
    BadLength,
    #[error("not a reply")]
    NotAReply,
    #[error("bad label in a name")]
    BadLabel,
    #[error("label longer than 63 bytes")]
    LabelTooLong,
    #[error("attribute too long")]
    AttributeTooLong,
    #[error("reply to another request")]
    WrongIdentifier,
    #[error("response authenticator mismatch (wrong secret?)")]
    BadAuthenticator,
    #[error("not a protocol 10 greeting")]
    NotAGreeting,
    #[error("not an LDAP message")]
    NotLdap,
    #[error("bad BER length in LDAP reply")]
    BadBerLength,
}

impl WireError {
    pub fn as_str(self) -> &'static str {
        match self {
            WireError::Truncated => "truncated",
            WireError::BadLength => "bad_length",
            WireError::NotAReply => "not_a_reply",
            WireError::BadLabel => "bad_label",
            WireError::LabelTooLong => "label_too_long",
            WireError::AttributeTooLong => "attribute_too_long",
            WireError::WrongIdentifier => "wrong_identifier",
            WireError::BadAuthenticator => "bad_authenticator",
            WireError::NotAGreeting => "not_a_greeting",
            WireError::NotLdap => "not_ldap",
            WireError::BadBerLength => "bad_ber_length",
        }
    }
}
