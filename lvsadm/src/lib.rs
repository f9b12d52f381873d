//! lvsadm
