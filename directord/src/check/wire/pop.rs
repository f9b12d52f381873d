//! POP3 as far as a health check goes (RFC 1939): "+OK" status lines, USER and PASS, QUIT.

pub const QUIT: &[u8] = b"QUIT\r\n";

/// A positive status line; anything else ("-ERR ...") is a refusal.
pub fn is_ok(line: &str) -> bool {
    line.starts_with("+OK")
}

pub fn user(name: &str) -> Vec<u8> {
    format!("USER {name}\r\n").into_bytes()
}

pub fn pass(password: &str) -> Vec<u8> {
    format!("PASS {password}\r\n").into_bytes()
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
