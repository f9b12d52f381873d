//! FTP as far as a health check goes (RFC 959): the greeting, USER and PASS, QUIT. Replies
//! are coded like SMTP's ([`super::smtp::ReplyLine`]).

pub const QUIT: &[u8] = b"QUIT\r\n";
/// Logged in already after USER.
pub const LOGGED_IN: u16 = 230;
/// USER accepted, PASS wanted.
pub const NEED_PASSWORD: u16 = 331;

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
    fn commands() {
        assert_eq!(user("anonymous"), b"USER anonymous\r\n");
        assert_eq!(pass("guest@"), b"PASS guest@\r\n");
    }
}
