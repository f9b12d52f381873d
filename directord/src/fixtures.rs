//! What the reconcile and cache tests share: one NAT service with two weighted real servers
//! and a fallback, and the tables a config gives with every server up.

use crate::reconcile::Ownership;
use crate::table::{ServerState, Table, configured, desired};

/// The service as text, so a test can `replace` a line of it or `concat!` more after it.
macro_rules! web_service {
    () => {
        r#"
[ipvs]
[[virtual_server]]
address = "192.0.2.100:80"
scheduler = "wrr"
forwarding = "nat"
fallback = "198.51.100.250:80"

[[virtual_server.real]]
address = "198.51.100.11:80"
weight = 100

[[virtual_server.real]]
address = "198.51.100.12:80"
weight = 50
"#
    };
}
pub(crate) use web_service;

pub(crate) fn config(text: &str) -> lvs_config::Config {
    lvs_config::parse(text, "test.toml").unwrap()
}

/// Everything the config has is directord's (and the rest of the table too when it says so).
pub(crate) fn owned(config: &lvs_config::Config) -> Ownership {
    Ownership {
        whole_table: config.ipvs.own_whole_table,
        servers: configured(config),
    }
}

pub(crate) fn all_up(config: &lvs_config::Config) -> Table {
    desired(config, |_| ServerState::UP)
}
