//! vrrpd: VRRPv2 (RFC 3768) and VRRPv3 (RFC 5798) as a sans-IO library.
//!
//! - [`wire`]: advertisement packets (borrowed view + owned `Repr`).
//! - [`rx`]: receive validation (RFC 3768 / RFC 5798 section 7.1), one typed
//!   reason per rejection.
//! - [`instance`]: the per-instance state machine (Initialize, Backup, Master,
//!   Fault); inputs carry `now`, outputs are [`instance::Action`]s and a timer.
//! - [`track`], [`sync`]: what tracked objects and sync groups make of an instance.
//! - [`notify`]: what keepalived's notify scripts and FIFO are told of a state change.
//! - [`announce`]: which VIPs are announced over BGP (`[announce]`), from directord's health.
//!
//! No sockets, clocks or threads live here: the daemon owns those.

pub mod announce;
pub mod instance;
pub mod notify;
pub mod rx;
pub mod sync;
pub mod track;
pub mod wire;
