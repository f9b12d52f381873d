//! Connection timeouts (SET_CONFIG / GET_CONFIG), carried as top-level attributes.

/// Timeouts in seconds. On SET_CONFIG a zero (or `None`) leaves the kernel's value
/// unchanged, as `ipvsadm --set` does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp: Option<u32>,
    pub tcp_fin: Option<u32>,
    pub udp: Option<u32>,
}

impl Timeouts {
    pub fn new(tcp: u32, tcp_fin: u32, udp: u32) -> Self {
        Timeouts {
            tcp: Some(tcp),
            tcp_fin: Some(tcp_fin),
            udp: Some(udp),
        }
    }
}
