//! lvsadm: ipvsadm-compatible table management and the suite's status commands.

pub mod check_config;
pub mod cli;
pub mod genhash;
pub mod import;
pub mod ipvsadm;
pub mod routing;
pub mod status;
pub mod watch;
