//! syncd: the kernel's IPVS connection-sync protocol as a sans-IO library.
//!
//! - [`wire`]: version 0 and 1 messages (borrowed views, owned reprs, a message builder).
//! - [`conn`]: the version-independent [`Connection`] an entry describes.
//! - [`mirror`]: the table a kernel backup would build, with expiry and full resync.

pub mod conn;
pub mod mirror;
pub mod wire;

pub use conn::{Addrs, ConnFlags, Connection, FwdMethod, Protocol, Seq, SeqData};
pub use mirror::{Applied, ConnKey, Mirror};
pub use wire::{Decoded, EmitError, Error, MessageBuilder, ProtocolVersion, Scope};
