//! directord's control API: `<socket_dir>/directord.sock`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What applying a plan to the kernel did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub requests: usize,
    pub sendmsg_calls: usize,
    pub failures: Vec<String>,
}

/// Requests on `<socket_dir>/directord.sock`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// The table as directord sees it: each server's health, weights and why. At thousands
    /// of services the whole answer is megabytes: `from` and `limit` ask for a page of services
    /// (in config order), and the answer's `next` says where the following page starts.
    Status {
        #[serde(default, skip_serializing_if = "is_zero")]
        from: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
    },
    /// Each named virtual server's quorum: what vrrpd tracks (`track_services`), small at
    /// any table size. It goes through directord's main loop like any request, so it is also
    /// vrrpd's liveness probe: one question a second gives both.
    Quorum,
    /// Whether directord's main loop answers, at no cost (a full Status at 37,000 entries is
    /// megabytes of JSON every second).
    Ping,
    /// Re-read the config file (as SIGHUP does).
    Reload,
    /// A weight or state from feedbackd for a real server (every service it is in).
    Feedback {
        real: SocketAddr,
        weight: Option<u32>,
        state: FeedbackState,
    },
    /// An operator's drain, maintenance or return of one real server of one service (by the
    /// service's name or its `tcp 192.0.2.100:80` label), kept in the state directory so it
    /// survives reloads and restarts.
    Admin {
        service: String,
        real: SocketAddr,
        state: AdminState,
    },
    /// A health result from outside (a checker, or an operator marking maintenance).
    Health {
        service: Option<String>,
        real: SocketAddr,
        up: bool,
        detail: String,
    },
}

/// Status is for the socket's group too; anything that changes state is root's.
impl crate::Access for Request {
    fn read_only(&self) -> bool {
        matches!(
            self,
            Request::Status { .. } | Request::Quorum | Request::Ping
        )
    }
}

impl Request {
    /// Every service in one answer.
    pub const STATUS: Request = Request::Status {
        from: 0,
        limit: None,
    };
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// What an operator made of a real server, over what health and feedback say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminState {
    /// Health and feedback decide (`lvsadm enable`).
    #[default]
    Enabled,
    /// Weight 0: its connections go on, no new ones (`lvsadm drain`).
    Drain,
    /// Out of the service, as a failed server with `on_failure = "remove"` (`lvsadm maint`).
    Maint,
}

impl AdminState {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminState::Enabled => "enabled",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackState {
    Up,
    /// Weight 0, kept in the table.
    Drain,
    /// Treated as a failed health check.
    Down,
    /// The agent is lost: back to the configured weight.
    Lost,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Response {
    Status(Status),
    // Before Applied, whose fields all have defaults and would match anything.
    Quorum(QuorumReport),
    Applied(Applied),
    Done {},
}

/// Whether each named virtual server holds its quorum (a group's services: all of them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumReport {
    pub quorum: std::collections::BTreeMap<String, bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub config: PathBuf,
    pub services: Vec<ServiceStatus>,
    /// Where the next page starts (the `from` to ask for), when a `limit` left services out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<usize>,
    pub last_apply: Applied,
    /// Probes without a result because directord ran short of a resource (emfile, enfile,
    /// enobufs, enomem), by cause; health was left as it was.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub probe_unknown: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    pub service: String,
    pub scheduler: String,
    pub in_kernel: bool,
    pub servers: Vec<ServerStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerStatus {
    pub address: SocketAddr,
    pub configured_weight: u32,
    /// What the kernel has now; `None` when the server is not in the table.
    pub kernel_weight: Option<u32>,
    pub up: bool,
    pub health: String,
    /// The last probe's result and how long it took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    pub feedback: Option<String>,
    pub fallback: bool,
    /// An operator's drain or maintenance (`lvsadm drain|maint`); absent: enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminState>,
}

/// Events on the control socket's subscription stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Applied {
        changes: Vec<String>,
    },
    Health {
        real: SocketAddr,
        up: bool,
        detail: String,
    },
    Reloaded {
        config: PathBuf,
    },
    ReloadRejected {
        error: String,
    },
}
