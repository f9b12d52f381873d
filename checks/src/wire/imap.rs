//! IMAP4 as far as a health check goes (RFC 9051): the greeting, a tagged LOGIN with quoted
//! strings and its tagged answer, LOGOUT.

/// The tag of the LOGIN command.
pub const LOGIN_TAG: &str = "a1";
pub const LOGOUT: &[u8] = b"a2 LOGOUT\r\n";

/// "* OK" or, already authenticated, "* PREAUTH".
pub fn greeting_ok(line: &str) -> bool {
    line.starts_with("* OK") || line.starts_with("* PREAUTH")
}

/// A quoted string: backslash and double quote escaped.
pub fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn login(user: &str, password: &str) -> Vec<u8> {
    format!("{LOGIN_TAG} LOGIN {} {}\r\n", quote(user), quote(password)).into_bytes()
}

/// The answer to the command tagged `tag`: `Some(true)` for OK, `Some(false)` for NO or
/// BAD, `None` for an untagged line or another command's.
pub fn tagged_ok(line: &str, tag: &str) -> Option<bool> {
    let rest = line.strip_prefix(tag)?.strip_prefix(' ')?;
    Some(rest.starts_with("OK"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_bytes() {
        assert_eq!(
            login("alice", "p\"a\\ss"),
            b"a1 LOGIN \"alice\" \"p\\\"a\\\\ss\"\r\n"
        );
    }

    #[test]
    fn answers() {
        assert!(greeting_ok("* OK IMAP4rev1 ready"));
        assert!(greeting_ok("* PREAUTH logged in"));
        assert!(!greeting_ok("* BYE busy"));
        assert_eq!(tagged_ok("a1 OK LOGIN completed", "a1"), Some(true));
        assert_eq!(tagged_ok("a1 NO [AUTHENTICATIONFAILED]", "a1"), Some(false));
        assert_eq!(tagged_ok("* CAPABILITY IMAP4rev1", "a1"), None);
        assert_eq!(tagged_ok("a10 OK", "a1"), None);
    }
}
