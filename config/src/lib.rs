//! Shared director configuration.
