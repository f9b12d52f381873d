//! Bidirectional Forwarding Detection for the director pair: RFC 5880 asynchronous
//! mode over RFC 5881 (single hop) and RFC 5883 (multihop) UDP.
//!
//! [`wire`] is the control packet, smoltcp style (a checked [`wire::Packet`] view and
//! an owned [`wire::Repr`]); [`auth`] signs and verifies its authentication section;
//! [`session`] is the sans-IO state machine: packets, timeouts and admin commands go
//! in with `now`, packets to send, state changes and the next deadline come out.
//! Echo mode and demand mode are not implemented (a peer's demand bit is ignored and
//! we never ask for echo: Required Min Echo RX Interval is sent as zero).

pub mod auth;
pub mod session;
pub mod wire;

pub use auth::{AuthConfig, AuthError, AuthKind};
pub use session::{Admin, Discard, Event, Session, SessionConfig};
pub use wire::{Diag, Error, Packet, Repr, State};

/// RFC 5881: destination port of single-hop control packets.
pub const PORT_SINGLE_HOP: u16 = 3784;
/// RFC 5883: destination port of multihop control packets.
pub const PORT_MULTIHOP: u16 = 4784;
/// RFC 5881 section 4: the source port range.
pub const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
/// RFC 5881 section 5: single-hop packets are sent with, and must arrive with, TTL 255.
pub const TTL_SINGLE_HOP: u8 = 255;
