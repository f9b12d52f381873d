//! The IPVS generic netlink family.
