//! The MySQL/MariaDB client/server protocol as far as a login goes: the server's
//! Handshake v10, the client's HandshakeResponse41 with a mysql_native_password scramble, and
//! the server's OK / ERR / AuthSwitchRequest answer. Packets are framed by [`frame`] and
//! [`Frame`]: a 3-byte little-endian length and a sequence number.

use sha1::{Digest, Sha1};

use super::WireError;

pub const HEADER_LEN: usize = 4;
pub const NATIVE_PASSWORD: &str = "mysql_native_password";
/// COM_QUIT, so the server logs a clean disconnect rather than an aborted connection.
pub const COM_QUIT: u8 = 0x01;

const CLIENT_LONG_PASSWORD: u32 = 0x0000_0001;
const CLIENT_CONNECT_WITH_DB: u32 = 0x0000_0008;
const CLIENT_PROTOCOL_41: u32 = 0x0000_0200;
const CLIENT_SECURE_CONNECTION: u32 = 0x0000_8000;
const CLIENT_PLUGIN_AUTH: u32 = 0x0008_0000;
/// utf8mb4_general_ci: every server since 5.5 knows it.
const CHARSET_UTF8MB4: u8 = 45;

/// A packet header: payload length and sequence id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub len: usize,
    pub seq: u8,
}

impl Frame {
    pub fn parse(header: &[u8]) -> Result<Frame, WireError> {
        let [a, b, c, seq] = *header.get(..HEADER_LEN).ok_or(WireError::Truncated)? else {
            return Err(WireError::Truncated);
        };
        Ok(Frame {
            len: usize::from(a) | usize::from(b) << 8 | usize::from(c) << 16,
            seq,
        })
    }
}

/// `payload` with its header; payloads of a login are far below the 16 MiB split point.
pub fn frame(seq: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = len.to_le_bytes()[..3].to_vec();
    out.push(seq);
    out.extend_from_slice(payload);
    out
}

/// What a login needs from the server's Handshake v10.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    pub version: String,
    /// The 20-byte nonce (auth-plugin-data parts 1 and 2, without the trailing NUL).
    pub salt: Vec<u8>,
    /// The plugin the server expects by default; empty for servers before 5.5.
    pub plugin: String,
}

fn c_string(bytes: &[u8]) -> Result<(&[u8], &[u8]), WireError> {
    let end = bytes
        .iter()
        .position(|&b| b == 0)
        .ok_or(WireError::Truncated)?;
    Ok((&bytes[..end], &bytes[end + 1..]))
}

impl Greeting {
    /// Parses a Handshake v10 payload (its first byte is the protocol version, 10).
    pub fn parse(payload: &[u8]) -> Result<Greeting, WireError> {
        if payload.first() != Some(&10) {
            return Err(WireError::NotAGreeting);
        }
        let (version, rest) = c_string(&payload[1..])?;
        // connection id (4), salt part 1 (8), filler (1), capabilities low (2), charset (1),
        // status (2), capabilities high (2), salt length (1), reserved (10).
        let fixed = rest.get(..31).ok_or(WireError::Truncated)?;
        let mut salt = fixed[4..12].to_vec();
        let capabilities = u32::from(u16::from_le_bytes([fixed[13], fixed[14]]))
            | u32::from(u16::from_le_bytes([fixed[18], fixed[19]])) << 16;
        let mut plugin = String::new();
        if capabilities & CLIENT_SECURE_CONNECTION != 0 {
            // Part 2 is max(13, salt length - 8) bytes and ends in a NUL that is not salt.
            let part2_len = usize::from(fixed[20]).saturating_sub(8).max(13);
            let part2 = rest.get(31..31 + part2_len).ok_or(WireError::Truncated)?;
            salt.extend_from_slice(&part2[..part2_len - 1]);
            if capabilities & CLIENT_PLUGIN_AUTH != 0 {
                let tail = &rest[31 + part2_len..];
                // Some servers omit the final NUL of the plugin name.
                let name = tail.split(|&b| b == 0).next().unwrap_or_default();
                plugin = String::from_utf8_lossy(name).into_owned();
            }
        }
        Ok(Greeting {
            version: String::from_utf8_lossy(version).into_owned(),
            salt,
            plugin,
        })
    }
}

/// mysql_native_password: SHA1(password) XOR SHA1(salt + SHA1(SHA1(password))); an empty
/// password is sent as no bytes at all.
pub fn native_scramble(password: &[u8], salt: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha1::digest(password);
    let stage2 = Sha1::digest(stage1);
    let mix = Sha1::new()
        .chain_update(salt)
        .chain_update(stage2)
        .finalize();
    stage1.iter().zip(mix.iter()).map(|(a, b)| a ^ b).collect()
}

/// HandshakeResponse41 payload logging in as `user` with mysql_native_password.
pub fn handshake_response(
    user: &str,
    password: &str,
    database: Option<&str>,
    salt: &[u8],
) -> Vec<u8> {
    let mut capabilities =
        CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH;
    if database.is_some() {
        capabilities |= CLIENT_CONNECT_WITH_DB;
    }
    let mut out = capabilities.to_le_bytes().to_vec();
    out.extend_from_slice(&(1u32 << 24).to_le_bytes());
    out.push(CHARSET_UTF8MB4);
    out.extend_from_slice(&[0; 23]);
    out.extend_from_slice(user.as_bytes());
    out.push(0);
    let scramble = native_scramble(password.as_bytes(), salt);
    out.push(scramble.len() as u8);
    out.extend_from_slice(&scramble);
    if let Some(database) = database {
        out.extend_from_slice(database.as_bytes());
        out.push(0);
    }
    out.extend_from_slice(NATIVE_PASSWORD.as_bytes());
    out.push(0);
    out
}

/// The server's answer to a login packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ok,
    Err {
        code: u16,
        message: String,
    },
    /// The account uses another plugin, or wants a fresh salt for this one.
    AuthSwitch {
        plugin: String,
        data: Vec<u8>,
    },
    /// A packet a login does not expect (its first byte).
    Other(u8),
}

impl Reply {
    pub fn parse(payload: &[u8]) -> Result<Reply, WireError> {
        let (&first, rest) = payload.split_first().ok_or(WireError::Truncated)?;
        Ok(match first {
            0x00 => Reply::Ok,
            0xff => {
                let code = rest.get(..2).ok_or(WireError::Truncated)?;
                let mut message = &rest[2..];
                // Protocol 4.1 puts '#' and a 5-character SQLSTATE before the text.
                if message.first() == Some(&b'#') && message.len() >= 6 {
                    message = &message[6..];
                }
                Reply::Err {
                    code: u16::from_le_bytes([code[0], code[1]]),
                    message: String::from_utf8_lossy(message).into_owned(),
                }
            }
            0xfe => {
                let (plugin, data) = c_string(rest).unwrap_or((rest, &[]));
                // The new salt, like the greeting's, ends in a NUL that is not salt.
                let data = data.strip_suffix(&[0]).unwrap_or(data);
                Reply::AuthSwitch {
                    plugin: String::from_utf8_lossy(plugin).into_owned(),
                    data: data.to_vec(),
                }
            }
            other => Reply::Other(other),
        })
    }
}

/// COM_QUERY with the statement's text: the text protocol, which any server speaks.
pub fn query(sql: &str) -> Vec<u8> {
    let mut payload = vec![COM_QUERY];
    payload.extend_from_slice(sql.as_bytes());
    payload
}

const COM_QUERY: u8 = 0x03;

/// A length-encoded integer and the bytes after it.
fn lenenc(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (&first, rest) = bytes.split_first()?;
    let width = match first {
        0..=0xfa => return Some((u64::from(first), rest)),
        0xfc => 2,
        0xfd => 3,
        0xfe => 8,
        _ => return None,
    };
    let value = rest.get(..width)?;
    let mut le = [0u8; 8];
    le[..width].copy_from_slice(value);
    Some((u64::from_le_bytes(le), &rest[width..]))
}

/// An EOF packet: 0xfe and shorter than a row could be that starts with an 8-byte length.
fn is_eof(payload: &[u8]) -> bool {
    payload.first() == Some(&0xfe) && payload.len() < 9
}

/// Reads the answer to a COM_QUERY packet by packet (without CLIENT_DEPRECATE_EOF): an OK
/// with the affected rows, an error, or a result set (column count, column definitions, EOF,
/// rows, EOF) whose rows are counted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct QueryReply {
    /// Past the column count; then past the columns' EOF.
    columns_read: Option<bool>,
    rows: u64,
}

/// Where a [`QueryReply`] is after one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryStep {
    More,
    /// Rows returned, or affected by a statement that returns none.
    Done(u64),
    Err {
        code: u16,
        message: String,
    },
}

impl QueryReply {
    pub fn feed(&mut self, payload: &[u8]) -> Result<QueryStep, WireError> {
        if payload.first() == Some(&0xff) {
            return match Reply::parse(payload)? {
                Reply::Err { code, message } => Ok(QueryStep::Err { code, message }),
                _ => Err(WireError::Truncated),
            };
        }
        match self.columns_read {
            None if payload.first() == Some(&0x00) => {
                let (affected, _) = lenenc(&payload[1..]).ok_or(WireError::Truncated)?;
                Ok(QueryStep::Done(affected))
            }
            None => {
                lenenc(payload).ok_or(WireError::Truncated)?;
                self.columns_read = Some(false);
                Ok(QueryStep::More)
            }
            Some(false) => {
                if is_eof(payload) {
                    self.columns_read = Some(true);
                }
                Ok(QueryStep::More)
            }
            Some(true) if is_eof(payload) => Ok(QueryStep::Done(self.rows)),
            Some(true) => {
                self.rows += 1;
                Ok(QueryStep::More)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // `SELECT 1 UNION SELECT 2` as MariaDB answers it: column count, one definition, EOF,
    // two rows, EOF; an UPDATE's OK with 3 affected rows; an error.
    #[test]
    fn query_replies() {
        let mut reply = QueryReply::default();
        let eof = [0xfe, 0, 0, 0x02, 0];
        let packets: [&[u8]; 6] = [
            &[1],
            b"\x03def\0\0\0\x011\0",
            &eof,
            b"\x011",
            b"\x012",
            &eof,
        ];
        let steps: Vec<QueryStep> = packets.iter().map(|p| reply.feed(p).unwrap()).collect();
        assert_eq!(steps[..5], [const { QueryStep::More }; 5]);
        assert_eq!(steps[5], QueryStep::Done(2));
        let mut update = QueryReply::default();
        assert_eq!(update.feed(&[0, 3, 0, 2, 0, 0, 0]), Ok(QueryStep::Done(3)));
        let mut error = QueryReply::default();
        let mut packet = vec![0xff, 0x7a, 0x04, b'#'];
        packet.extend_from_slice(b"42S02Table 'app.pool' doesn't exist");
        assert_eq!(
            error.feed(&packet),
            Ok(QueryStep::Err {
                code: 1146,
                message: "Table 'app.pool' doesn't exist".into()
            })
        );
        assert_eq!(query("SELECT 1"), b"\x03SELECT 1");
    }

    /// A MariaDB 10.11 greeting as captured from `mariadbd`, salt bytes replaced by 'a'..'t'.
    fn mariadb_greeting() -> Vec<u8> {
        let mut p = vec![10];
        p.extend_from_slice(b"5.5.5-10.11.19-MariaDB-0+deb12u1\0");
        p.extend_from_slice(&[3, 0, 0, 0]);
        p.extend_from_slice(b"abcdefgh");
        p.push(0);
        p.extend_from_slice(&[0xfe, 0xf7, 45, 2, 0, 0xff, 0x81, 21]);
        p.extend_from_slice(&[0; 6]);
        p.extend_from_slice(&[0x1d, 0, 0, 0]);
        p.extend_from_slice(b"ijklmnopqrst\0");
        p.extend_from_slice(b"mysql_native_password\0");
        p
    }

    #[test]
    fn greeting_fields() {
        let g = Greeting::parse(&mariadb_greeting()).unwrap();
        assert_eq!(g.version, "5.5.5-10.11.19-MariaDB-0+deb12u1");
        assert_eq!(g.salt, b"abcdefghijklmnopqrst");
        assert_eq!(g.plugin, NATIVE_PASSWORD);
        assert_eq!(Greeting::parse(&[9, 0]), Err(WireError::NotAGreeting));
        assert_eq!(
            Greeting::parse(&mariadb_greeting()[..40]),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn native_scramble_matches_the_reference() {
        // Computed independently: python3 hashlib, sha1(pw) ^ sha1(salt + sha1(sha1(pw))).
        let scramble = native_scramble(b"secret", b"abcdefghijklmnopqrst");
        let hex: String = scramble.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "8817c50fa779daef010ee7577825b0847df9842e");
        assert!(native_scramble(b"", b"abcdefghijklmnopqrst").is_empty());
    }

    #[test]
    fn response_layout() {
        let r = handshake_response("probe", "secret", Some("app"), b"abcdefghijklmnopqrst");
        let caps = u32::from_le_bytes(r[..4].try_into().unwrap());
        assert_ne!(caps & CLIENT_CONNECT_WITH_DB, 0);
        assert_eq!(&r[32..38], b"probe\0");
        assert_eq!(r[38], 20);
        assert_eq!(&r[59..63], b"app\0");
        assert!(r.ends_with(b"mysql_native_password\0"));
        assert_eq!(frame(1, &[7, 8])[..], [2, 0, 0, 1, 7, 8]);
        assert_eq!(
            Frame::parse(&[2, 1, 0, 3]).unwrap(),
            Frame { len: 258, seq: 3 }
        );
    }

    #[test]
    fn replies() {
        assert_eq!(Reply::parse(&[0, 0, 0, 2, 0]).unwrap(), Reply::Ok);
        let mut err = vec![0xff, 0x15, 0x04];
        err.extend_from_slice(b"#28000Access denied");
        assert_eq!(
            Reply::parse(&err).unwrap(),
            Reply::Err {
                code: 1045,
                message: "Access denied".into()
            }
        );
        let mut switch = vec![0xfe];
        switch.extend_from_slice(b"caching_sha2_password\0salt\0");
        assert_eq!(
            Reply::parse(&switch).unwrap(),
            Reply::AuthSwitch {
                plugin: "caching_sha2_password".into(),
                data: b"salt".to_vec()
            }
        );
    }
}
