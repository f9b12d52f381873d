//! vrrpd
