//! feedbackd's control API (director side): `<socket_dir>/feedbackd.sock`.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Status,
}

/// Status is for the socket's group too; anything that changes state is root's.
impl crate::Access for Request {
    fn read_only(&self) -> bool {
        matches!(self, Request::Status)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub agents: Vec<AgentStatus>,
    /// Hand-overs to directord that failed, by cause (timeout, io, protocol, refused).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub directord_failures: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentStatus {
    pub real: SocketAddr,
    pub agent: SocketAddr,
    /// The last reply line, as received.
    pub last_reply: Option<String>,
    pub configured_weight: u32,
    /// The weight handed to directord.
    pub weight: u32,
    /// up, drain, maint or down.
    pub state: String,
    pub why: String,
    pub lost: bool,
    pub replies: u64,
    pub malformed_replies: u64,
    pub poll_failures: u64,
    pub last_error: Option<String>,
}
