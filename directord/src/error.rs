//! Why directord refused a request or could not start: one variant per cause, each with the
//! text operators already read in logs and `lvsadm` replies.

use std::net::SocketAddr;

/// A directord failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("IPVS netlink: {0}")]
    Netlink(lvs_ipvs::Error),
    #[error("reading the IPVS table: {0}")]
    ReadTable(lvs_ipvs::Error),
    #[error("applying: {0}")]
    Apply(lvs_ipvs::Error),
    /// The table could not be read for a status request.
    #[error(transparent)]
    Status(lvs_ipvs::Error),
    /// A reload was refused; the running config stays.
    #[error(transparent)]
    Config(#[from] lvs_config::ConfigError),
    #[error("{0} is not a real server of any configured service")]
    NotAReal(SocketAddr),
    /// An operator's drain, maintenance or enable that names nothing configured, or that
    /// could not be kept.
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminError),
    /// The lock, control socket, metrics endpoint or signal handlers.
    #[error(transparent)]
    Setup(#[from] lvs_control::daemon::SetupError),
}
