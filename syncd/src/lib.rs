//! syncd
