//! Why syncd could not start, refused a request or a reload, or lost vrrpd: one variant per
//! cause, each with the text operators already read in logs and `lvsadm` replies.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use lvs_ipvs::{DaemonState, ServiceKey};

use crate::auth::KeyError;
use crate::procfs::ParseError;

/// A syncd failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the config has no [sync] section")]
    NoSyncSection,
    #[error(
        "sync peer {peer}: not of the sync group {group}'s family; syncd talks to its peers \
         from one socket of that family"
    )]
    MixedFamilies {
        peer: lvs_config::SyncPeer,
        group: SocketAddr,
    },
    #[error("key_file {}: {source}", path.display())]
    KeyFile { path: PathBuf, source: io::Error },
    #[error(
        "key_file {}: mode {mode:o} lets others read the key; chmod 600 it",
        path.display()
    )]
    KeyReadable { path: PathBuf, mode: u32 },
    #[error("key_file {}: {source}", path.display())]
    Key { path: PathBuf, source: KeyError },
    #[error("{path}: {source}")]
    ConnTableRead {
        path: &'static str,
        source: io::Error,
    },
    #[error("{path}: {source}")]
    ConnTableParse {
        path: &'static str,
        source: ParseError,
    },
    #[error(
        "a snapshot of the kernel table is taken in the master role only; a backup's table \
         comes from its master"
    )]
    SnapshotOnBackup,
    #[error("IPVS netlink: {0}")]
    Netlink(lvs_ipvs::Error),
    #[error("listing IPVS services: {0}")]
    ListServices(lvs_ipvs::Error),
    #[error("listing destinations of {key}: {source}")]
    ListDestinations {
        key: ServiceKey,
        source: lvs_ipvs::Error,
    },
    #[error("listing kernel sync daemons: {0}")]
    ListDaemons(lvs_ipvs::Error),
    #[error("stopping the kernel {} daemon: {source}", state.as_str())]
    StopDaemon {
        state: DaemonState,
        source: lvs_ipvs::Error,
    },
    #[error("starting the kernel {} daemon: {source}", state.as_str())]
    StartDaemon {
        state: DaemonState,
        source: lvs_ipvs::Error,
    },
    #[error("sync interface {interface}: {source}")]
    Interface {
        interface: String,
        source: io::Error,
    },
    #[error("unicast port {port}: {source}")]
    UnicastSocket { port: u16, source: io::Error },
    #[error("sync group {group} on {interface}: {source}")]
    GroupSocket {
        group: SocketAddr,
        interface: String,
        source: io::Error,
    },
    #[error("injector socket: {0}")]
    InjectSocket(io::Error),
    #[error("packet tap on {interface}: {source}")]
    Tap {
        interface: String,
        source: io::Error,
    },
    /// The lock, control socket, metrics endpoint or signal handlers.
    #[error(transparent)]
    Setup(#[from] lvs_control::daemon::SetupError),
    /// Following a VRRP instance: vrrpd did not answer, or its event stream broke.
    #[error(transparent)]
    Vrrpd(#[from] lvs_control::ControlError),
    #[error("vrrpd has no instance {0:?}")]
    NoInstance(String),
    #[error("the event stream ended")]
    EventsEnded,
}
