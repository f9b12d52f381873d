//! GET_INFO reply: IPVS version and connection table size.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// `IP_VS_VERSION_CODE`, e.g. 0x010201 for 1.2.1.
    pub version: u32,
    /// Number of buckets in the connection hash table.
    pub conn_tab_size: u32,
}

impl Info {
    /// (major, minor, patch) as ipvsadm prints it.
    pub fn version_triple(&self) -> (u8, u8, u8) {
        (
            (self.version >> 16) as u8,
            (self.version >> 8) as u8,
            self.version as u8,
        )
    }
}

impl fmt::Display for Info {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b, c) = self.version_triple();
        write!(
            f,
            "IP Virtual Server version {a}.{b}.{c} (size={})",
            self.conn_tab_size
        )
    }
}
