//! feedbackd: load feedback from real servers to IPVS weights.
//!
//! The library holds the sans-IO parts; `main.rs` wraps them in tokio.
//! - [`agent_check`]: haproxy agent-check reply line (wire format).
//! - [`procstat`]: /proc/stat, /proc/loadavg and /proc/meminfo parsing, CPU
//!   idle over a sliding window.
//! - [`report`]: agent side, measurements plus operator override to a reply.
//! - [`sockdiag`]: established TCP connections on local ports, from the kernel's sock_diag.
//! - [`policy`]: director side, replies over time to a weight and a state.

pub mod agent_check;
pub mod error;
pub mod policy;
pub mod procstat;
pub mod report;
pub mod sockdiag;
