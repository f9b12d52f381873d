//! Real-server health checks without a runtime: what a check is ([`spec`]), the formats of
//! the protocols it speaks ([`wire`]), its TLS client settings ([`tls`]) and one page
//! fetched blocking ([`page`], for `lvsadm genhash`). directord's async probes drive the same
//! codecs, so a page digests alike whichever fetched it.

pub mod page;
pub mod reason;
pub mod spec;
pub mod tls;
pub mod wire;
