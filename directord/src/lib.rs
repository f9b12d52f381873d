//! directord
