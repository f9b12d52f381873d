//! POP3 as far as a health check goes (RFC 1939): "+OK" status lines, USER and PASS, QUIT.

/// USER and PASS are spelt as FTP's (RFC 1939 7, RFC 959 4.1.1).
pub use super::ftp::{QUIT, pass, user};

/// A positive status line; anything else ("-ERR ...") is a refusal.
pub fn is_ok(line: &str) -> bool {
    line.starts_with("+OK")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_and_commands() {
        assert!(is_ok("+OK POP3 server ready"));
        assert!(!is_ok("-ERR invalid password"));
        assert!(!is_ok(" +OK"));
        assert_eq!(user("alice"), b"USER alice\r\n");
        assert_eq!(pass("s3cret"), b"PASS s3cret\r\n");
    }
}
