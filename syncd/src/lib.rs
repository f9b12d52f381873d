//! syncd: the kernel's IPVS connection-sync protocol as a sans-IO library.
//!
//! - [`wire`]: version 0 and 1 messages (borrowed views, owned reprs, a message builder).
//! - [`conn`]: the version-independent [`Connection`] an entry describes.
//! - [`mirror`]: the table a kernel backup would build, with expiry and full resync.
//! - [`engine`]: the daemon's logic (forward, inject, hello and resync), sans-IO.
//! - [`procfs`]: /proc/net/ip_vs_conn, for snapshots of the kernel's table.
//! - [`auth`]: the optional HMAC tag on unicast between peers.
//! - [`capture`]: the local kernel master's messages out of tapped packets.

pub mod auth;
pub mod capture;
pub mod conn;
pub mod engine;
pub mod error;
pub mod mirror;
pub mod procfs;
pub mod wire;

pub use conn::{Addrs, ConnFlags, Connection, FwdMethod, Protocol, Seq, SeqData, TimeoutCeilings};
pub use mirror::{Applied, ConnKey, Cursor, Mirror};
pub use wire::{Decoded, EmitError, Error, MessageBuilder, ProtocolVersion, Scope};
