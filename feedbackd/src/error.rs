//! Why feedbackd stopped, and why a poll of an agent failed: one variant per cause, each with
//! the text operators already read in logs and status.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// A feedbackd failure: what ends a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("--agent needs an [agent] section in the config")]
    NoAgentSection,
    #[error("no [feedback] section in the config: nothing to poll (use --agent on a real server)")]
    NoFeedbackSection,
    #[error("cannot handle SIGUSR1/SIGUSR2: {0}")]
    Signals(io::Error),
    #[error("listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: io::Error },
    /// The lock, control socket, metrics endpoint or signal handlers.
    #[error(transparent)]
    Setup(#[from] lvs_control::daemon::SetupError),
}

/// Why a poll of an agent got no reply.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// Connecting or reading failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("no reply within {0:?}")]
    Timeout(Duration),
}
