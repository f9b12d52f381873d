//! directord: the one writer of the IPVS table on a director.

pub mod admin;
pub mod cache;
pub mod check;
pub mod error;
#[cfg(test)]
mod fixtures;
pub mod kernel;
pub mod reconcile;
pub mod table;
