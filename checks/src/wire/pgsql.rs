//! The PostgreSQL frontend/backend protocol 3.0 as far as a login goes: SSLRequest,
//! StartupMessage, cleartext and MD5 PasswordMessage, Terminate, and the backend's message
//! header and ErrorResponse text.

use md5::{Digest, Md5};

const SSL_REQUEST_CODE: i32 = 80877103;
const PROTOCOL_3: i32 = 196608;
/// Length and type of a backend message.
pub const HEADER_LEN: usize = 5;
/// Terminate, so the server logs a clean disconnect.
pub const TERMINATE: [u8; 5] = [b'X', 0, 0, 0, 4];

/// SSLRequest: any server answers 'S' or 'N' without logging a failed login.
pub fn ssl_request() -> Vec<u8> {
    let mut request = 8i32.to_be_bytes().to_vec();
    request.extend_from_slice(&SSL_REQUEST_CODE.to_be_bytes());
    request
}

pub fn startup(user: &str, database: Option<&str>) -> Vec<u8> {
    let mut body = PROTOCOL_3.to_be_bytes().to_vec();
    for (key, value) in [
        ("user", Some(user)),
        ("database", database),
        ("application_name", Some("directord-check")),
    ] {
        if let Some(value) = value {
            body.extend_from_slice(key.as_bytes());
            body.push(0);
            body.extend_from_slice(value.as_bytes());
            body.push(0);
        }
    }
    body.push(0);
    let mut out = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

/// A backend message's type and body length, from its header; `Err` with the length field
/// when it is less than its own four bytes.
pub fn header(head: [u8; HEADER_LEN]) -> Result<(u8, usize), i32> {
    let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    match usize::try_from(len).ok().and_then(|l| l.checked_sub(4)) {
        Some(body_len) => Ok((head[0], body_len)),
        None => Err(len),
    }
}

/// Query: the simple query protocol, one statement as text.
pub fn query(sql: &str) -> Vec<u8> {
    let mut out = vec![b'Q'];
    out.extend_from_slice(&((sql.len() + 5) as i32).to_be_bytes());
    out.extend_from_slice(sql.as_bytes());
    out.push(0);
    out
}

/// The rows a CommandComplete tag counts: its last word ("SELECT 2", "UPDATE 3",
/// "INSERT 0 1"); none for a tag without a count ("CREATE TABLE").
pub fn command_rows(body: &[u8]) -> Option<u64> {
    let tag = body.strip_suffix(&[0]).unwrap_or(body);
    std::str::from_utf8(tag)
        .ok()?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

/// The 'M' (message) field of an ErrorResponse.
pub fn error_text(body: &[u8]) -> String {
    body.split(|&b| b == 0)
        .find_map(|field| field.strip_prefix(b"M"))
        .map_or_else(
            || "error".to_owned(),
            |m| String::from_utf8_lossy(m).into_owned(),
        )
}

pub fn password_message(password: &str) -> Vec<u8> {
    let mut out = vec![b'p'];
    out.extend_from_slice(&((password.len() + 5) as i32).to_be_bytes());
    out.extend_from_slice(password.as_bytes());
    out.push(0);
    out
}

/// The answer to AuthenticationMD5Password: "md5" and md5(md5(password + user) + salt), in hex.
pub fn md5_password(user: &str, password: &str, salt: &[u8]) -> Vec<u8> {
    let inner = hex(&Md5::new()
        .chain_update(password)
        .chain_update(user)
        .finalize());
    let outer = hex(&Md5::new()
        .chain_update(&inner)
        .chain_update(salt)
        .finalize());
    password_message(&format!("md5{outer}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_command_tags() {
        assert_eq!(query("SELECT 1"), b"Q\0\0\0\x0dSELECT 1\0");
        assert_eq!(command_rows(b"SELECT 2\0"), Some(2));
        assert_eq!(command_rows(b"INSERT 0 1\0"), Some(1));
        assert_eq!(command_rows(b"CREATE TABLE\0"), None);
    }

    #[test]
    fn startup_layout() {
        let msg = startup("u", None);
        assert_eq!(&msg[..8], &[0, 0, 0, msg.len() as u8, 0, 3, 0, 0]);
        assert_eq!(&msg[8..15], b"user\0u\0");
        assert_eq!(*msg.last().unwrap(), 0);
    }

    #[test]
    fn ssl_request_bytes() {
        assert_eq!(ssl_request(), [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
    }

    #[test]
    fn headers() {
        // AuthenticationOk: 'R', length 8, then the code.
        assert_eq!(header([b'R', 0, 0, 0, 8]), Ok((b'R', 4)));
        assert_eq!(header([b'Z', 0, 0, 0, 5]), Ok((b'Z', 1)));
        assert_eq!(header([b'E', 0, 0, 0, 3]), Err(3));
        assert_eq!(header([b'E', 0xff, 0xff, 0xff, 0xff]), Err(-1));
    }

    #[test]
    fn error_response_text() {
        let body = b"SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed for user \"u\"\0\0";
        assert_eq!(
            error_text(body),
            "password authentication failed for user \"u\""
        );
        assert_eq!(error_text(b"SFATAL\0\0"), "error");
    }

    #[test]
    fn md5_answer() {
        // md5(md5("secret" + "postgres") in hex + salt), as libpq computes it.
        assert_eq!(
            md5_password("postgres", "secret", &[1, 2, 3, 4]),
            b"p\0\0\0\x28md5bb41a296aab6baccb36ff243a562abff\0"
        );
        assert_eq!(password_message("pw"), b"p\0\0\0\x07pw\0");
    }
}
