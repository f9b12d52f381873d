//! The short reasons a check gives, as operators read them in status output and
//! `lvsadm genhash` prints them.

use std::io;
use std::time::Duration;

/// A timeout as a check states it: whole seconds, else milliseconds.
pub fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A short reason for an I/O error: `what` ("connect", "read") and how it failed.
pub fn io_reason(what: &str, e: &io::Error) -> String {
    let cause = match e.kind() {
        io::ErrorKind::ConnectionRefused => "refused".to_owned(),
        io::ErrorKind::ConnectionReset => "reset".to_owned(),
        io::ErrorKind::UnexpectedEof => "closed by the server".to_owned(),
        io::ErrorKind::HostUnreachable => "host unreachable".to_owned(),
        io::ErrorKind::NetworkUnreachable => "network unreachable".to_owned(),
        _ => e.to_string(),
    };
    format!("{what} {cause}")
}

/// Printable start of what a server said, for a reason string.
pub fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(60)]);
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}
