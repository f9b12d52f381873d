//! Probes over a TCP connection.

use std::net::SocketAddr;

use md5::{Digest, Md5};
use regex::bytes::Regex;
use tokio::io::{AsyncRead, AsyncWrite};

use super::reactor::Conn;
use super::{Bounded, ProbeContext, ProbeError, ProbeResult, down, excerpt, io_failure};
use crate::check::spec::{Database, Dialogue, Exchange, Http, Ldap, Pattern};
use crate::check::wire::mysql;

// Nagle stays on: a probe writes a request whole, then waits for the answer, which carries
// the ACK that lets the next request out at once.
async fn open(addr: SocketAddr, ctx: &ProbeContext) -> Result<Conn, ProbeError> {
    ctx.reactor
        .connect(addr)
        .await
        .map_err(|e| io_failure("connect", &e))
}

pub async fn connect(addr: SocketAddr, ctx: &ProbeContext) -> ProbeResult {
    open(addr, ctx).await?;
    Ok("connected".to_owned())
}

// ---------------------------------------------------------------- http / https

pub async fn http(http: &Http, addr: SocketAddr, max: usize, ctx: &ProbeContext) -> ProbeResult {
    let tcp = open(addr, ctx).await?;
    match &http.tls {
        None => http_exchange(http, addr, Bounded::new(tcp, max)).await,
        Some(tls) => {
            // The handshake writes several records in a row; Nagle would hold the later ones
            // for the ACK of the first.
            let _ = tcp.set_nodelay();
            let stream = ctx.tls.connect(tls, addr.ip(), tcp).await?;
            http_exchange(http, addr, Bounded::new(stream, max)).await
        }
    }
}

fn host_header(http: &Http, addr: SocketAddr) -> String {
    if let Some(host) = &http.host {
        return host.clone();
    }
    let default_port = if http.tls.is_some() { 443 } else { 80 };
    match (addr, addr.port() == default_port) {
        (SocketAddr::V4(a), true) => a.ip().to_string(),
        (SocketAddr::V6(a), true) => format!("[{}]", a.ip()),
        (a, false) => a.to_string(),
    }
}

pub fn request(http: &Http, addr: SocketAddr) -> Vec<u8> {
    format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: directord-check\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        http.method,
        http.path,
        host_header(http, addr)
    )
    .into_bytes()
}

async fn http_exchange<S: AsyncRead + AsyncWrite + Unpin>(
    http: &Http,
    addr: SocketAddr,
    mut conn: Bounded<S>,
) -> ProbeResult {
    conn.send(&request(http, addr)).await?;
    let head_end = loop {
        if let Some(at) = find(&conn.buf, b"\r\n\r\n") {
            break at + 4;
        }
        if !conn.fill().await? {
            if conn.buf.is_empty() {
                return Err("connection closed without a response".into());
            }
            return Err("connection closed inside the response head".into());
        }
    };
    let head = String::from_utf8_lossy(&conn.buf[..head_end]).into_owned();
    let status_line = head.lines().next().unwrap_or_default();
    let status = parse_status_line(status_line, "HTTP/1.")
        .ok_or_else(|| format!("not an HTTP response: {}", excerpt(status_line.as_bytes())))?;
    if !in_ranges(status, &http.statuses) {
        return Err(down!(
            "status {status} not in {}",
            ranges_text(&http.statuses)
        ));
    }
    let Some(pattern) = &http.body else {
        return Ok(format!("status {status}"));
    };
    let headers = head.to_ascii_lowercase();
    let chunked = headers.contains("\ntransfer-encoding: chunked");
    let length: Option<usize> = headers
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok());
    loop {
        let raw = &conn.buf[head_end..];
        let body = if chunked { dechunk(raw) } else { raw.to_vec() };
        if pattern.is_match(&body) {
            return Ok(format!("status {status}, body matches"));
        }
        let complete = conn.eof
            || length.is_some_and(|n| raw.len() >= n)
            || (chunked
                && (find(raw, b"\r\n0\r\n\r\n").is_some() || raw.starts_with(b"0\r\n\r\n")));
        if complete || http.method == "HEAD" {
            return Err(down!(
                "status {status}, body does not match {:?}",
                pattern.as_str()
            ));
        }
        match conn.fill().await {
            Ok(_) => {}
            Err(ProbeError::Down(e)) if e.starts_with("read limit") => {
                return Err(down!(
                    "status {status}, body does not match {:?} in the first {} bytes",
                    pattern.as_str(),
                    conn.buf.len()
                ));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The status code of "HTTP/1.1 200 OK" or "SIP/2.0 200 OK".
pub fn parse_status_line(line: &str, protocol_prefix: &str) -> Option<u16> {
    if !line.starts_with(protocol_prefix) {
        return None;
    }
    let code = line.split_whitespace().nth(1)?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

pub fn in_ranges(status: u16, ranges: &[(u16, u16)]) -> bool {
    ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&status))
}

pub fn ranges_text(ranges: &[(u16, u16)]) -> String {
    ranges
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The data of a chunked body, as much of it as has arrived.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(raw, b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..eol]);
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
        else {
            break;
        };
        if size == 0 {
            break;
        }
        let data = &raw[eol + 2..];
        let take = size.min(data.len());
        out.extend_from_slice(&data[..take]);
        if take < size || data.len() < size + 2 {
            break;
        }
        raw = &data[size + 2..];
    }
    out
}

// ---------------------------------------------------------------- tcp send / expect

pub async fn tcp(
    exchange: &Exchange,
    addr: SocketAddr,
    max: usize,
    ctx: &ProbeContext,
) -> ProbeResult {
    let mut conn = Bounded::new(open(addr, ctx).await?, max);
    if let Some(send) = &exchange.send {
        conn.send(send).await?;
    }
    let Some(pattern) = &exchange.expect else {
        return Ok("connected".to_owned());
    };
    expect_in_stream(&mut conn, pattern).await
}

async fn expect_in_stream<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Bounded<S>,
    pattern: &Regex,
) -> ProbeResult {
    loop {
        if pattern.is_match(&conn.buf) {
            return Ok(format!("reply matches {:?}", pattern.as_str()));
        }
        match conn.fill().await {
            Ok(true) => {}
            Ok(false) => {
                return Err(down!(
                    "reply {:?} does not match {:?}",
                    excerpt(&conn.buf),
                    pattern.as_str()
                ));
            }
            Err(e) => return Err(e),
        }
    }
}

// ---------------------------------------------------------------- line protocols

/// A line-protocol conversation whose every read is kept, for `expect`.
struct Talk<S> {
    conn: Bounded<S>,
    transcript: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Talk<S> {
    async fn line(&mut self) -> Result<String, ProbeError> {
        let line = self.conn.line().await?;
        self.transcript.extend_from_slice(line.as_bytes());
        self.transcript.push(b'\n');
        Ok(line)
    }

    /// An SMTP/FTP reply, possibly multi-line ("250-..." lines then "250 ..."): its code
    /// and last line.
    async fn coded_reply(&mut self) -> Result<(u16, String), ProbeError> {
        loop {
            let line = self.line().await?;
            let code: Option<u16> = line.get(..3).and_then(|c| c.parse().ok());
            let Some(code) = code else {
                return Err(down!("unexpected reply {:?}", excerpt(line.as_bytes())));
            };
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, line));
            }
        }
    }

    fn finish(&self, expect: Option<&Pattern>, detail: String) -> ProbeResult {
        match expect {
            Some(pattern) if !pattern.is_match(&self.transcript) => {
                Err(down!("dialogue does not match {:?}", pattern.as_str()))
            }
            _ => Ok(detail),
        }
    }
}

async fn talk(addr: SocketAddr, max: usize, ctx: &ProbeContext) -> Result<Talk<Conn>, ProbeError> {
    Ok(Talk {
        conn: Bounded::new(open(addr, ctx).await?, max),
        transcript: Vec::new(),
    })
}

fn expect_code(what: &str, (code, line): (u16, String), accept: &[u16]) -> Result<u16, ProbeError> {
    if accept.contains(&code) {
        Ok(code)
    } else {
        Err(down!("{what}: {}", excerpt(line.as_bytes())))
    }
}

pub async fn smtp(d: &Dialogue, addr: SocketAddr, max: usize, ctx: &ProbeContext) -> ProbeResult {
    let mut t = talk(addr, max, ctx).await?;
    let greeting = t.coded_reply().await?;
    expect_code("greeting", greeting, &[220])?;
    t.conn.send(b"EHLO directord-check\r\n").await?;
    let ehlo = t.coded_reply().await?;
    if ehlo.0 != 250 {
        // RFC 5321 4.1.1.1: a server that does not know EHLO still knows HELO.
        t.conn.send(b"HELO directord-check\r\n").await?;
        let helo = t.coded_reply().await?;
        expect_code("HELO", helo, &[250])?;
    }
    if let Some(login) = &d.login {
        let token = base64(format!("\0{}\0{}", login.user, login.password).as_bytes());
        t.conn
            .send(format!("AUTH PLAIN {token}\r\n").as_bytes())
            .await?;
        let auth = t.coded_reply().await?;
        expect_code("AUTH", auth, &[235])?;
    }
    t.conn.send(b"QUIT\r\n").await?;
    t.finish(d.expect.as_ref(), "smtp 220/250".to_owned())
}

pub async fn pop(d: &Dialogue, addr: SocketAddr, max: usize, ctx: &ProbeContext) -> ProbeResult {
    let mut t = talk(addr, max, ctx).await?;
    let ok = |line: String, what: &str| -> Result<(), ProbeError> {
        if line.starts_with("+OK") {
            Ok(())
        } else {
            Err(down!("{what}: {}", excerpt(line.as_bytes())))
        }
    };
    ok(t.line().await?, "greeting")?;
    if let Some(login) = &d.login {
        t.conn
            .send(format!("USER {}\r\n", login.user).as_bytes())
            .await?;
        ok(t.line().await?, "USER")?;
        t.conn
            .send(format!("PASS {}\r\n", login.password).as_bytes())
            .await?;
        ok(t.line().await?, "PASS")?;
    }
    t.conn.send(b"QUIT\r\n").await?;
    t.finish(d.expect.as_ref(), "pop +OK".to_owned())
}

pub async fn imap(d: &Dialogue, addr: SocketAddr, max: usize, ctx: &ProbeContext) -> ProbeResult {
    let mut t = talk(addr, max, ctx).await?;
    let greeting = t.line().await?;
    if !(greeting.starts_with("* OK") || greeting.starts_with("* PREAUTH")) {
        return Err(down!("greeting: {}", excerpt(greeting.as_bytes())));
    }
    if let Some(login) = &d.login {
        t.conn
            .send(
                format!(
                    "a1 LOGIN {} {}\r\n",
                    imap_quote(&login.user),
                    imap_quote(&login.password)
                )
                .as_bytes(),
            )
            .await?;
        loop {
            let line = t.line().await?;
            if line.starts_with("a1 OK") {
                break;
            }
            if line.starts_with("a1 ") {
                return Err(down!("LOGIN: {}", excerpt(line.as_bytes())));
            }
        }
    }
    t.conn.send(b"a2 LOGOUT\r\n").await?;
    t.finish(d.expect.as_ref(), "imap * OK".to_owned())
}

fn imap_quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

pub async fn ftp(d: &Dialogue, addr: SocketAddr, max: usize, ctx: &ProbeContext) -> ProbeResult {
    let mut t = talk(addr, max, ctx).await?;
    let greeting = t.coded_reply().await?;
    expect_code("greeting", greeting, &[220])?;
    if let Some(login) = &d.login {
        t.conn
            .send(format!("USER {}\r\n", login.user).as_bytes())
            .await?;
        let user = t.coded_reply().await?;
        if expect_code("USER", user, &[230, 331])? == 331 {
            t.conn
                .send(format!("PASS {}\r\n", login.password).as_bytes())
                .await?;
            let pass = t.coded_reply().await?;
            expect_code("PASS", pass, &[230])?;
        }
    }
    t.conn.send(b"QUIT\r\n").await?;
    t.finish(d.expect.as_ref(), "ftp 220".to_owned())
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from_be_bytes([0, b[0], b[1], b[2]]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---------------------------------------------------------------- ldap

/// BER definite length.
fn ber_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
}

fn ber(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    ber_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

fn ldap_message(id: u8, op: Vec<u8>) -> Vec<u8> {
    let mut content = ber(0x02, &[id]);
    content.extend(op);
    ber(0x30, &content)
}

/// LDAPv3 simple BindRequest (RFC 4511 4.2); empty DN and password is an anonymous bind.
pub fn ldap_bind(id: u8, dn: &str, password: &str) -> Vec<u8> {
    let mut op = ber(0x02, &[3]);
    op.extend(ber(0x04, dn.as_bytes()));
    op.extend(ber(0x80, password.as_bytes()));
    ldap_message(id, ber(0x60, &op))
}

/// Base-object SearchRequest for (objectClass=*), no attributes (RFC 4511 4.5.1).
pub fn ldap_search_base(id: u8, base: &str) -> Vec<u8> {
    let mut op = ber(0x04, base.as_bytes());
    op.extend_from_slice(&[0x0a, 1, 0, 0x0a, 1, 0, 0x02, 1, 1, 0x02, 1, 0, 0x01, 1, 0]);
    op.extend(ber(0x87, b"objectClass"));
    op.extend_from_slice(&[0x30, 0]);
    ldap_message(id, ber(0x63, &op))
}

/// One whole LDAPMessage from the stream: (protocolOp tag, resultCode if the op is a
/// result).
async fn ldap_read<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Bounded<S>,
) -> Result<(u8, Option<u8>), ProbeError> {
    let head = conn.take(2).await?;
    if head[0] != 0x30 {
        return Err("not an LDAP message".into());
    }
    let len = if head[1] & 0x80 == 0 {
        usize::from(head[1])
    } else {
        let n = usize::from(head[1] & 0x7f);
        if n == 0 || n > 3 {
            return Err("bad BER length in LDAP reply".into());
        }
        conn.take(n)
            .await?
            .iter()
            .fold(0, |acc, &b| acc << 8 | usize::from(b))
    };
    let body = conn.take(len).await?;
    // messageID INTEGER, then the protocolOp.
    let mut at = 2 + usize::from(*body.get(1).ok_or("truncated LDAP message")?);
    let op = *body.get(at).ok_or("truncated LDAP message")?;
    at += 1;
    let op_len_byte = *body.get(at).ok_or("truncated LDAP message")?;
    at += 1 + if op_len_byte & 0x80 != 0 {
        usize::from(op_len_byte & 0x7f)
    } else {
        0
    };
    // An LDAPResult starts with resultCode ENUMERATED.
    let code = match body.get(at..at + 3) {
        Some([0x0a, 1, code]) => Some(*code),
        _ => None,
    };
    Ok((op, code))
}

pub async fn ldap(ldap: &Ldap, addr: SocketAddr, max: usize, ctx: &ProbeContext) -> ProbeResult {
    let mut conn = Bounded::new(open(addr, ctx).await?, max);
    let (dn, password) = ldap
        .login
        .as_ref()
        .map_or(("", ""), |l| (l.user.as_str(), l.password.as_str()));
    conn.send(&ldap_bind(1, dn, password)).await?;
    match ldap_read(&mut conn).await? {
        (0x61, Some(0)) => {}
        (0x61, Some(code)) => return Err(down!("bind failed with resultCode {code}")),
        (op, _) => return Err(down!("unexpected LDAP reply op 0x{op:02x} to bind")),
    }
    let mut detail = "bind succeeded".to_owned();
    if let Some(base) = &ldap.search_base {
        conn.send(&ldap_search_base(2, base)).await?;
        loop {
            match ldap_read(&mut conn).await? {
                (0x64 | 0x73, _) => continue,
                (0x65, Some(0)) => break,
                (0x65, Some(code)) => {
                    return Err(down!("search of {base:?} failed with resultCode {code}"));
                }
                (op, _) => return Err(down!("unexpected LDAP reply op 0x{op:02x} to search")),
            }
        }
        detail = format!("bind and search of {base:?} succeeded");
    }
    // UnbindRequest, so the server logs a clean close rather than a dropped connection.
    let _ = conn.send(&ldap_message(3, vec![0x42, 0])).await;
    Ok(detail)
}

// ---------------------------------------------------------------- mysql

/// One MySQL packet: its sequence id and payload.
async fn mysql_packet<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Bounded<S>,
    max: usize,
) -> Result<(u8, Vec<u8>), ProbeError> {
    let header = conn.take(mysql::HEADER_LEN).await?;
    let frame = mysql::Frame::parse(&header).map_err(|e| format!("mysql packet: {e}"))?;
    if frame.len == 0 || frame.len > max {
        return Err(down!("mysql packet length {} out of bounds", frame.len));
    }
    Ok((frame.seq, conn.take(frame.len).await?))
}

fn mysql_error(code: u16, message: &str) -> String {
    format!("mysql error {code}: {}", excerpt(message.as_bytes()))
}

/// Without a user, the server's greeting (handshake v10) shows mysqld accepting connections;
/// an error packet in its place (too many connections, host blocked) is down. With a user,
/// the check logs in with mysql_native_password (MariaDB's default, and MySQL's before 8.0)
/// and only the server's OK is up: a wrong password, an unknown user or a database the user
/// may not use are down. caching_sha2_password needs TLS or RSA for a full login, which
/// this check does not carry, so an account using it is reported as such.
pub async fn mysql(db: &Database, addr: SocketAddr, max: usize, ctx: &ProbeContext) -> ProbeResult {
    let mut conn = Bounded::new(open(addr, ctx).await?, max);
    let (seq, payload) = mysql_packet(&mut conn, max).await?;
    if payload[0] == 0xff {
        return match mysql::Reply::parse(&payload) {
            Ok(mysql::Reply::Err { code, message }) => Err(mysql_error(code, &message).into()),
            _ => Err("mysql error packet truncated".into()),
        };
    }
    if payload[0] != 10 {
        return Err(down!("mysql protocol version {}, not 10", payload[0]));
    }
    let greeting = mysql::Greeting::parse(&payload).map_err(|e| format!("mysql greeting: {e}"))?;
    let version = greeting.version;
    let Some(user) = &db.user else {
        return Ok(format!("mysql {version}"));
    };
    let password = db.password.as_deref().unwrap_or("");
    let response =
        mysql::handshake_response(user, password, db.database.as_deref(), &greeting.salt);
    conn.send(&mysql::frame(seq.wrapping_add(1), &response))
        .await?;
    // At most one switch: to a fresh native salt, or to a plugin this check cannot speak.
    let mut switched = false;
    loop {
        let (seq, payload) = mysql_packet(&mut conn, max).await?;
        let reply = mysql::Reply::parse(&payload).map_err(|e| format!("mysql reply: {e}"))?;
        match reply {
            mysql::Reply::Ok => {
                let _ = conn.send(&mysql::frame(0, &[mysql::COM_QUIT])).await;
                return Ok(format!("mysql {version}, logged in as {user}"));
            }
            mysql::Reply::Err { code, message } => return Err(mysql_error(code, &message).into()),
            mysql::Reply::AuthSwitch { plugin, data }
                if plugin == mysql::NATIVE_PASSWORD && !switched =>
            {
                switched = true;
                let scramble = mysql::native_scramble(password.as_bytes(), &data);
                conn.send(&mysql::frame(seq.wrapping_add(1), &scramble))
                    .await?;
            }
            mysql::Reply::AuthSwitch { plugin, .. } => {
                return Err(down!(
                    "mysql asks for auth plugin {plugin}, only {} is supported",
                    mysql::NATIVE_PASSWORD
                ));
            }
            mysql::Reply::Other(byte) => {
                return Err(down!(
                    "mysql sent unexpected packet 0x{byte:02x} during login"
                ));
            }
        }
    }
}

// ---------------------------------------------------------------- pgsql

const PG_SSL_REQUEST: i32 = 80877103;
const PG_PROTOCOL_3: i32 = 196608;

pub fn pg_startup(user: &str, database: Option<&str>) -> Vec<u8> {
    let mut body = PG_PROTOCOL_3.to_be_bytes().to_vec();
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

/// One backend message: its type byte and body.
async fn pg_message<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Bounded<S>,
) -> Result<(u8, Vec<u8>), ProbeError> {
    let head = conn.take(5).await?;
    let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    let Some(body_len) = usize::try_from(len).ok().and_then(|l| l.checked_sub(4)) else {
        return Err(down!("pgsql message length {len} invalid"));
    };
    Ok((head[0], conn.take(body_len).await?))
}

/// The 'M' (message) field of an ErrorResponse.
fn pg_error_text(body: &[u8]) -> String {
    body.split(|&b| b == 0)
        .find_map(|field| field.strip_prefix(b"M"))
        .map_or_else(
            || "error".to_owned(),
            |m| String::from_utf8_lossy(m).into_owned(),
        )
}

pub async fn pgsql(db: &Database, addr: SocketAddr, max: usize, ctx: &ProbeContext) -> ProbeResult {
    let mut conn = Bounded::new(open(addr, ctx).await?, max);
    let Some(user) = &db.user else {
        // Without a user, ask for TLS: any server answers 'S' or 'N' without logging a
        // failed login.
        let mut request = 8i32.to_be_bytes().to_vec();
        request.extend_from_slice(&PG_SSL_REQUEST.to_be_bytes());
        conn.send(&request).await?;
        let answer = conn.take(1).await?;
        return match answer[0] {
            b'S' | b'N' => Ok(format!(
                "pgsql answered SSLRequest with {}",
                answer[0] as char
            )),
            other => Err(down!("pgsql answered SSLRequest with byte 0x{other:02x}")),
        };
    };
    conn.send(&pg_startup(user, db.database.as_deref())).await?;
    loop {
        let (kind, body) = pg_message(&mut conn).await?;
        match kind {
            b'E' => return Err(down!("pgsql: {}", pg_error_text(&body))),
            b'R' if body.len() >= 4 => {
                let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                let password = db.password.as_deref().unwrap_or("");
                match code {
                    // The database is opened after authentication: only ReadyForQuery
                    // says the login worked.
                    0 => {}
                    3 => conn.send(&pg_password(password)).await?,
                    5 if body.len() >= 8 => {
                        let inner = hex(&Md5::new()
                            .chain_update(password)
                            .chain_update(user)
                            .finalize());
                        let outer = hex(&Md5::new()
                            .chain_update(&inner)
                            .chain_update(&body[4..8])
                            .finalize());
                        conn.send(&pg_password(&format!("md5{outer}"))).await?;
                    }
                    // SCRAM needs a SHA-256 HMAC exchange this check does not carry; the
                    // server is up and talking the protocol, which is what it shows.
                    10 => return Ok("pgsql up (asks for SASL authentication)".to_owned()),
                    other => return Err(down!("pgsql asks for unsupported auth method {other}")),
                }
            }
            // ParameterStatus, BackendKeyData, NoticeResponse: the backend starting up.
            b'S' | b'K' | b'N' => {}
            b'Z' => {
                // Terminate, so the server logs a clean disconnect.
                let _ = conn.send(&[b'X', 0, 0, 0, 4]).await;
                return Ok("pgsql ready for query".to_owned());
            }
            other => {
                return Err(down!(
                    "pgsql sent unexpected message {:?} during login",
                    other as char
                ));
            }
        }
    }
}

fn pg_password(password: &str) -> Vec<u8> {
    let mut out = vec![b'p'];
    out.extend_from_slice(&((password.len() + 5) as i32).to_be_bytes());
    out.extend_from_slice(password.as_bytes());
    out.push(0);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line("HTTP/1.1 503 Busy", "HTTP/1."), Some(503));
        assert_eq!(parse_status_line("HTTP/1.0 200", "HTTP/1."), Some(200));
        assert_eq!(
            parse_status_line("SIP/2.0 404 Not Found", "SIP/2.0"),
            Some(404)
        );
        assert_eq!(parse_status_line("HTTP/2 200", "HTTP/1."), None);
        assert_eq!(parse_status_line("HTTP/1.1 2000 x", "HTTP/1."), None);
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            dechunk(b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n"),
            b"Wikipedia"
        );
        assert_eq!(dechunk(b"4\r\nWi"), b"Wi");
    }

    #[test]
    fn base64_of_sasl_plain() {
        // RFC 4616 section 4 example token for authcid "tim", password "tanstaaftanstaaf".
        assert_eq!(
            base64(b"\0tim\0tanstaaftanstaaf"),
            "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"
        );
        assert_eq!(base64(b"ab"), "YWI=");
    }

    #[test]
    fn ldap_anonymous_bind_bytes() {
        // RFC 4511 BindRequest, messageID 1, version 3, empty name, empty simple password:
        // the 14 bytes ldapsearch -x sends.
        assert_eq!(
            ldap_bind(1, "", ""),
            [
                0x30, 0x0c, 0x02, 0x01, 0x01, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x80, 0x00
            ]
        );
    }

    #[test]
    fn pg_startup_layout() {
        let msg = pg_startup("u", None);
        assert_eq!(&msg[..8], &[0, 0, 0, msg.len() as u8, 0, 3, 0, 0]);
        assert_eq!(&msg[8..15], b"user\0u\0");
        assert_eq!(*msg.last().unwrap(), 0);
    }
}
