//! directord: the one writer of the IPVS table on a director.

pub mod check;
pub mod daemon;
pub mod error;
pub mod kernel;
pub mod metrics;
pub mod reconcile;
pub mod table;
