//! Why vrrpd could not start, refused a reload or could not release its VIPs: one variant
//! per cause, each with the text operators already read in logs.

use std::io;

use ipnet::IpNet;

use super::vmac::VmacError;

/// A vrrpd failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no [[vrrp.instance]] nor [announce] in the config: nothing to do")]
    NoInstances,
    /// A reload's config was refused; the running one stays.
    #[error(transparent)]
    Config(#[from] lvs_config::ConfigError),
    #[error("interface {name}: {source}")]
    Interface { name: String, source: io::Error },
    #[error("VRRP socket on {name}: {source}")]
    Socket { name: String, source: io::Error },
    /// What an instance's interface or socket could not do.
    #[error("{instance}: {source}")]
    Instance {
        instance: String,
        source: Box<Error>,
    },
    #[error("{instance}: {source}")]
    InstanceConfig {
        instance: String,
        source: vrrpd::instance::ConfigError,
    },
    #[error("{instance}: virtual MAC: {source}")]
    Vmac { instance: String, source: VmacError },
    #[error("{instance}: {interface} has no link-local IPv6 address to send adverts from")]
    NoLinkLocal { instance: String, interface: String },
    #[error("{instance}: {interface} has no IPv4 address to send adverts from")]
    NoIpv4 { instance: String, interface: String },
    #[error("{0}: password longer than 8 bytes")]
    PasswordTooLong(String),
    /// Every instance that could not be prepared (or, in a reload, launched), one per line.
    #[error("{}", lines(.0))]
    Prepare(Vec<Error>),
    #[error("could not release:\n{}", lines(.0))]
    Release(Vec<ReleaseFailure>),
    #[error("rtnetlink: {0}")]
    Rtnetlink(io::Error),
    #[error("timerfd: {0}")]
    Timer(io::Error),
    #[error(transparent)]
    Bfd(#[from] super::bfd_sessions::BfdError),
    /// The lock, control socket, metrics endpoint or signal handlers.
    #[error(transparent)]
    Setup(#[from] lvs_control::daemon::SetupError),
}

/// What `--release-vips` could not remove.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseFailure {
    #[error("{instance}: {name}: {source}")]
    Macvlan {
        instance: String,
        name: String,
        source: VmacError,
    },
    #[error("{instance}: {vip}: {source}")]
    Address {
        instance: String,
        vip: IpNet,
        source: rtnetlink::Error,
    },
    #[error("[announce]: {0}")]
    Announce(super::announce::AnnounceError),
}

fn lines<T: std::fmt::Display>(errors: &[T]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("\n")
}
