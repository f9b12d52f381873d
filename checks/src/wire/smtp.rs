//! SMTP as far as a health check goes (RFC 5321): three-digit replies, possibly multi-line,
//! EHLO with a fall-back to HELO, AUTH PLAIN (RFC 4616) and QUIT. FTP's replies have the
//! same shape (RFC 959 4.2) and use [`ReplyLine`] too.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The name a check greets with unless told another (keepalived's helo_name).
pub const OWN_NAME: &str = "directord-check";

/// `EHLO name` or, RFC 5321 4.1.1.1, to a server that does not know EHLO, `HELO name`.
pub fn greet(verb: &str, name: &str) -> Vec<u8> {
    format!("{verb} {name}\r\n").into_bytes()
}
pub const QUIT: &[u8] = b"QUIT\r\n";

/// One line of a coded reply: "250-first" continues the reply, "250 last" ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLine {
    pub code: u16,
    pub last: bool,
}

impl ReplyLine {
    /// `None` when the line does not start with a three-digit code.
    pub fn parse(line: &str) -> Option<ReplyLine> {
        let code = line.get(..3)?.parse().ok()?;
        Some(ReplyLine {
            code,
            last: line.as_bytes().get(3) != Some(&b'-'),
        })
    }
}

/// `AUTH PLAIN` with the initial response: an empty authorization identity, then the user
/// and password, NUL-separated and base64-encoded.
pub fn auth_plain(user: &str, password: &str) -> Vec<u8> {
    let token = STANDARD.encode(format!("\0{user}\0{password}"));
    format!("AUTH PLAIN {token}\r\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines() {
        assert_eq!(
            ReplyLine::parse("250-mail.example.org"),
            Some(ReplyLine {
                code: 250,
                last: false
            })
        );
        assert_eq!(
            ReplyLine::parse("250 SIZE 10240000"),
            Some(ReplyLine {
                code: 250,
                last: true
            })
        );
        assert_eq!(
            ReplyLine::parse("220"),
            Some(ReplyLine {
                code: 220,
                last: true
            })
        );
        assert_eq!(ReplyLine::parse("hello"), None);
        assert_eq!(ReplyLine::parse("25"), None);
    }

    #[test]
    fn auth_plain_of_rfc_4616() {
        // RFC 4616 section 4 example token for authcid "tim", password "tanstaaftanstaaf".
        assert_eq!(
            auth_plain("tim", "tanstaaftanstaaf"),
            b"AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n"
        );
        // Padding: "\0a\0b" is four bytes.
        assert_eq!(auth_plain("a", "b"), b"AUTH PLAIN AGEAYg==\r\n");
    }
}
