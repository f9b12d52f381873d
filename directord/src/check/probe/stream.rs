//! Probes over a TCP connection.

use std::net::SocketAddr;

use regex::bytes::Regex;
use tokio::io::{AsyncRead, AsyncWrite};

use lvs_checks::page::request;

use super::reactor::Conn;
use super::{Bounded, ProbeContext, ProbeError, ProbeResult, down, excerpt, io_failure};
use crate::check::spec::{Database, Dialogue, Exchange, Http, Ldap, Pattern, Route, Smtp, Url};
use crate::check::wire::{ftp, http, imap, ldap, mysql, pgsql, pop, smtp};

// Nagle stays on: a probe writes a request whole, then waits for the answer, which carries
// the ACK that lets the next request out at once.
async fn open(route: Route, ctx: &ProbeContext) -> Result<Conn, ProbeError> {
    ctx.reactor
        .connect(route.to, route.from)
        .await
        .map_err(|e| io_failure("connect", &e))
}

pub async fn connect(route: Route, ctx: &ProbeContext) -> ProbeResult {
    open(route, ctx).await?;
    Ok("connected".to_owned())
}

// ---------------------------------------------------------------- http / https

/// Every page of the check in turn, each on its own connection (keepalived's url blocks);
/// the first that fails is the check's failure.
pub async fn http(check: &Http, route: Route, max: usize, ctx: &ProbeContext) -> ProbeResult {
    let mut details = Vec::with_capacity(check.urls.len());
    for url in &check.urls {
        let detail = fetch(check, url, route, max, ctx).await.map_err(|e| {
            if check.urls.len() == 1 {
                return e;
            }
            match e {
                ProbeError::Down { cause, detail } => ProbeError::Down {
                    cause,
                    detail: format!("{}: {detail}", url.path),
                },
                other => other,
            }
        })?;
        details.push(detail);
    }
    if check.urls.len() == 1 {
        return Ok(details.remove(0));
    }
    Ok(format!("{} urls: {}", check.urls.len(), details.join("; ")))
}

/// One page: the connection, TLS when the check has it, the exchange.
async fn fetch(
    check: &Http,
    url: &Url,
    route: Route,
    max: usize,
    ctx: &ProbeContext,
) -> ProbeResult {
    let tcp = open(route, ctx).await?;
    match &check.tls {
        None => http_exchange(check, url, route.to, Bounded::new(tcp, max)).await,
        Some(tls) => {
            // The handshake writes several records in a row; Nagle would hold the later ones
            // for the ACK of the first.
            let _ = tcp.set_nodelay();
            let stream = ctx.tls.connect(tls, route.to.ip(), tcp).await?;
            http_exchange(check, url, route.to, Bounded::new(stream, max)).await
        }
    }
}

/// Sends the request and reads the answer as [`http::Response`] says: all of the body when
/// `whole`, else until `enough`.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    request: &[u8],
    conn: &mut Bounded<S>,
    whole: bool,
    enough: impl Fn(&[u8]) -> bool,
) -> Result<http::Answer, ProbeError> {
    conn.send(request).await?;
    let mut response = http::Response::new(request, conn.max);
    while response.wants_more(whole, &enough) {
        let more = conn.fill().await?;
        response.take(&mut conn.buf, !more)?;
    }
    Ok(response.finish()?)
}

/// keepalived's order: the status, then the digest, then the pattern.
async fn http_exchange<S: AsyncRead + AsyncWrite + Unpin>(
    check: &Http,
    url: &Url,
    addr: SocketAddr,
    mut conn: Bounded<S>,
) -> ProbeResult {
    let wants_body = url.digest.is_some() || url.body.is_some();
    let pattern = url.body.as_ref();
    let answer = exchange(
        &request(check, url, addr),
        &mut conn,
        url.digest.is_some(),
        |kept| !wants_body || pattern.is_some_and(|p| p.is_match(kept)),
    )
    .await?;
    let status = answer.status;
    if !http::in_ranges(status, &url.statuses) {
        return Err(down!(
            Status,
            "status {status} not in {}",
            http::ranges_text(&url.statuses)
        ));
    }
    let body = &answer.body;
    let mut detail = format!("status {status}");
    if let Some(want) = &url.digest {
        let got = body.digest();
        if &got != want {
            return Err(down!(
                Mismatch,
                "status {status}, digest {} is not {}",
                http::hex(&got),
                http::hex(want)
            ));
        }
        detail.push_str(", digest matches");
    }
    if let Some(pattern) = pattern {
        if !pattern.is_match(body.kept()) {
            let within = if body.full() {
                format!(" in the first {} bytes", body.kept().len())
            } else {
                String::new()
            };
            return Err(down!(
                Mismatch,
                "status {status}, body does not match {:?}{within}",
                pattern.as_str()
            ));
        }
        detail.push_str(", body matches");
    }
    Ok(detail)
}

// ---------------------------------------------------------------- tcp send / expect

pub async fn tcp(exchange: &Exchange, route: Route, max: usize, ctx: &ProbeContext) -> ProbeResult {
    let mut conn = Bounded::new(open(route, ctx).await?, max);
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
                    Mismatch,
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
            let Some(reply) = smtp::ReplyLine::parse(&line) else {
                return Err(down!(
                    Protocol,
                    "unexpected reply {:?}",
                    excerpt(line.as_bytes())
                ));
            };
            if reply.last {
                return Ok((reply.code, line));
            }
        }
    }

    fn finish(&self, expect: Option<&Pattern>, detail: String) -> ProbeResult {
        match expect {
            Some(pattern) if !pattern.is_match(&self.transcript) => Err(down!(
                Mismatch,
                "dialogue does not match {:?}",
                pattern.as_str()
            )),
            _ => Ok(detail),
        }
    }
}

async fn talk(route: Route, max: usize, ctx: &ProbeContext) -> Result<Talk<Conn>, ProbeError> {
    Ok(Talk {
        conn: Bounded::new(open(route, ctx).await?, max),
        transcript: Vec::new(),
    })
}

fn expect_code(what: &str, (code, line): (u16, String), accept: &[u16]) -> Result<u16, ProbeError> {
    if accept.contains(&code) {
        Ok(code)
    } else {
        Err(down!(Rejected, "{what}: {}", excerpt(line.as_bytes())))
    }
}

/// Every one of the check's servers at once (keepalived runs a checker per host block, each
/// on its own); the first failing, in the order written, is the check's failure.
pub async fn smtp(check: &Smtp, routes: &[Route], max: usize, ctx: &ProbeContext) -> ProbeResult {
    let probes = routes.iter().map(|route| smtp_one(check, *route, max, ctx));
    let results = futures::future::join_all(probes).await;
    let mut last = String::new();
    for (route, result) in routes.iter().zip(results) {
        last = result.map_err(|e| match e {
            ProbeError::Down { cause, detail } if routes.len() > 1 => ProbeError::Down {
                cause,
                detail: format!("{}: {detail}", route.to),
            },
            other => other,
        })?;
    }
    if routes.len() > 1 {
        return Ok(format!("{last} from {} servers", routes.len()));
    }
    Ok(last)
}

async fn smtp_one(check: &Smtp, route: Route, max: usize, ctx: &ProbeContext) -> ProbeResult {
    let d = &check.dialogue;
    let mut t = talk(route, max, ctx).await?;
    let greeting = t.coded_reply().await?;
    expect_code("greeting", greeting, &[220])?;
    let name = check.helo.as_deref().unwrap_or(smtp::OWN_NAME);
    t.conn.send(&smtp::greet("EHLO", name)).await?;
    let ehlo = t.coded_reply().await?;
    if ehlo.0 != 250 {
        t.conn.send(&smtp::greet("HELO", name)).await?;
        let helo = t.coded_reply().await?;
        expect_code("HELO", helo, &[250])?;
    }
    if let Some(login) = &d.login {
        t.conn
            .send(&smtp::auth_plain(&login.user, &login.password))
            .await?;
        let auth = t.coded_reply().await?;
        expect_code("AUTH", auth, &[235])?;
    }
    t.conn.send(smtp::QUIT).await?;
    t.finish(d.expect.as_ref(), "smtp 220/250".to_owned())
}

pub async fn pop(d: &Dialogue, route: Route, max: usize, ctx: &ProbeContext) -> ProbeResult {
    let mut t = talk(route, max, ctx).await?;
    let ok = |line: String, what: &str| -> Result<(), ProbeError> {
        if pop::is_ok(&line) {
            Ok(())
        } else {
            Err(down!(Rejected, "{what}: {}", excerpt(line.as_bytes())))
        }
    };
    ok(t.line().await?, "greeting")?;
    if let Some(login) = &d.login {
        t.conn.send(&pop::user(&login.user)).await?;
        ok(t.line().await?, "USER")?;
        t.conn.send(&pop::pass(&login.password)).await?;
        ok(t.line().await?, "PASS")?;
    }
    t.conn.send(pop::QUIT).await?;
    t.finish(d.expect.as_ref(), "pop +OK".to_owned())
}

pub async fn imap(d: &Dialogue, route: Route, max: usize, ctx: &ProbeContext) -> ProbeResult {
    let mut t = talk(route, max, ctx).await?;
    let greeting = t.line().await?;
    if !imap::greeting_ok(&greeting) {
        return Err(down!(
            Rejected,
            "greeting: {}",
            excerpt(greeting.as_bytes())
        ));
    }
    if let Some(login) = &d.login {
        t.conn
            .send(&imap::login(&login.user, &login.password))
            .await?;
        loop {
            let line = t.line().await?;
            match imap::tagged_ok(&line, imap::LOGIN_TAG) {
                Some(true) => break,
                Some(false) => return Err(down!(Rejected, "LOGIN: {}", excerpt(line.as_bytes()))),
                None => {}
            }
        }
    }
    t.conn.send(imap::LOGOUT).await?;
    t.finish(d.expect.as_ref(), "imap * OK".to_owned())
}

pub async fn ftp(d: &Dialogue, route: Route, max: usize, ctx: &ProbeContext) -> ProbeResult {
    let mut t = talk(route, max, ctx).await?;
    let greeting = t.coded_reply().await?;
    expect_code("greeting", greeting, &[220])?;
    if let Some(login) = &d.login {
        t.conn.send(&ftp::user(&login.user)).await?;
        let user = t.coded_reply().await?;
        if expect_code("USER", user, &[ftp::LOGGED_IN, ftp::NEED_PASSWORD])? == ftp::NEED_PASSWORD {
            t.conn.send(&ftp::pass(&login.password)).await?;
            let pass = t.coded_reply().await?;
            expect_code("PASS", pass, &[ftp::LOGGED_IN])?;
        }
    }
    t.conn.send(ftp::QUIT).await?;
    t.finish(d.expect.as_ref(), "ftp 220".to_owned())
}

// ---------------------------------------------------------------- ldap

/// One whole LDAPMessage from the stream: (protocolOp tag, resultCode if the op is a
/// result).
async fn ldap_read<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Bounded<S>,
) -> Result<(u8, Option<u8>), ProbeError> {
    let head = conn.take(2).await?;
    let len = match ldap::message_length([head[0], head[1]]).map_err(|e| down!(Protocol, "{e}"))? {
        ldap::Length::Short(len) => len,
        ldap::Length::Long(n) => ldap::long_length(&conn.take(n).await?),
    };
    let body = conn.take(len).await?;
    ldap::parse_op(&body).map_err(|_| down!(Protocol, "truncated LDAP message"))
}
pub async fn ldap(check: &Ldap, route: Route, max: usize, ctx: &ProbeContext) -> ProbeResult {
    let mut conn = Bounded::new(open(route, ctx).await?, max);
    let (dn, password) = check
        .login
        .as_ref()
        .map_or(("", ""), |l| (l.user.as_str(), l.password.as_str()));
    conn.send(&ldap::bind(1, dn, password)).await?;
    match ldap_read(&mut conn).await? {
        (ldap::BIND_RESPONSE, Some(0)) => {}
        (ldap::BIND_RESPONSE, Some(code)) => {
            return Err(down!(Rejected, "bind failed with resultCode {code}"));
        }
        (op, _) => {
            return Err(down!(
                Protocol,
                "unexpected LDAP reply op 0x{op:02x} to bind"
            ));
        }
    }
    let mut detail = "bind succeeded".to_owned();
    if let Some(base) = &check.search_base {
        conn.send(&ldap::search_base(2, base)).await?;
        loop {
            match ldap_read(&mut conn).await? {
                (ldap::SEARCH_RESULT_ENTRY | ldap::SEARCH_RESULT_REFERENCE, _) => continue,
                (ldap::SEARCH_RESULT_DONE, Some(0)) => break,
                (ldap::SEARCH_RESULT_DONE, Some(code)) => {
                    return Err(down!(
                        Rejected,
                        "search of {base:?} failed with resultCode {code}"
                    ));
                }
                (op, _) => {
                    return Err(down!(
                        Protocol,
                        "unexpected LDAP reply op 0x{op:02x} to search"
                    ));
                }
            }
        }
        detail = format!("bind and search of {base:?} succeeded");
    }
    let _ = conn.send(&ldap::unbind(3)).await;
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
        return Err(down!(
            Protocol,
            "mysql packet length {} out of bounds",
            frame.len
        ));
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
pub async fn mysql(db: &Database, route: Route, max: usize, ctx: &ProbeContext) -> ProbeResult {
    let mut conn = Bounded::new(open(route, ctx).await?, max);
    let (seq, payload) = mysql_packet(&mut conn, max).await?;
    if payload[0] == 0xff {
        return match mysql::Reply::parse(&payload) {
            Ok(mysql::Reply::Err { code, message }) => {
                Err(down!(Rejected, "{}", mysql_error(code, &message)))
            }
            _ => Err("mysql error packet truncated".into()),
        };
    }
    if payload[0] != 10 {
        return Err(down!(
            Protocol,
            "mysql protocol version {}, not 10",
            payload[0]
        ));
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
                let detail = match &db.query {
                    None => format!("mysql {version}, logged in as {user}"),
                    Some(sql) => mysql_query(&mut conn, sql, max).await?,
                };
                let _ = conn.send(&mysql::frame(0, &[mysql::COM_QUIT])).await;
                return Ok(detail);
            }
            mysql::Reply::Err { code, message } => {
                return Err(down!(Rejected, "{}", mysql_error(code, &message)));
            }
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
                    Protocol,
                    "mysql asks for auth plugin {plugin}, only {} is supported",
                    mysql::NATIVE_PASSWORD
                ));
            }
            mysql::Reply::Other(byte) => {
                return Err(down!(
                    Protocol,
                    "mysql sent unexpected packet 0x{byte:02x} during login"
                ));
            }
        }
    }
}

/// ldirectord's SQL check: the query must succeed and return (or affect) at least one row.
async fn mysql_query<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Bounded<S>,
    sql: &str,
    max: usize,
) -> ProbeResult {
    conn.send(&mysql::frame(0, &mysql::query(sql))).await?;
    let mut reply = mysql::QueryReply::default();
    loop {
        let (_, payload) = mysql_packet(conn, max).await?;
        match reply
            .feed(&payload)
            .map_err(|e| format!("mysql query reply: {e}"))?
        {
            mysql::QueryStep::More => {}
            mysql::QueryStep::Done(0) => return Err(down!(Mismatch, "query returned no rows")),
            mysql::QueryStep::Done(rows) => return Ok(format!("query returned {rows} rows")),
            mysql::QueryStep::Err { code, message } => {
                return Err(down!(Rejected, "query: {}", mysql_error(code, &message)));
            }
        }
    }
}

/// The same for PostgreSQL: rows are the DataRows sent, else the CommandComplete count.
async fn pgsql_query<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Bounded<S>,
    sql: &str,
) -> ProbeResult {
    conn.send(&pgsql::query(sql)).await?;
    let (mut data_rows, mut counted) = (0u64, None);
    let mut error = None;
    loop {
        let (kind, body) = pg_message(conn).await?;
        match kind {
            b'D' => data_rows += 1,
            b'C' => counted = pgsql::command_rows(&body),
            b'E' => error = Some(pgsql::error_text(&body)),
            b'Z' => break,
            // RowDescription, EmptyQueryResponse, notices.
            _ => {}
        }
    }
    if let Some(message) = error {
        return Err(down!(Rejected, "query: pgsql: {message}"));
    }
    match data_rows.max(counted.unwrap_or(0)) {
        0 => Err(down!(Mismatch, "query returned no rows")),
        rows => Ok(format!("query returned {rows} rows")),
    }
}

// ---------------------------------------------------------------- pgsql

/// One backend message: its type byte and body.
async fn pg_message<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Bounded<S>,
) -> Result<(u8, Vec<u8>), ProbeError> {
    let head = conn.take(pgsql::HEADER_LEN).await?;
    let (kind, body_len) = pgsql::header([head[0], head[1], head[2], head[3], head[4]])
        .map_err(|len| down!(Protocol, "pgsql message length {len} invalid"))?;
    Ok((kind, conn.take(body_len).await?))
}

pub async fn pgsql(db: &Database, route: Route, max: usize, ctx: &ProbeContext) -> ProbeResult {
    let mut conn = Bounded::new(open(route, ctx).await?, max);
    let Some(user) = &db.user else {
        // Without a user, ask for TLS: any server answers 'S' or 'N' without logging a
        // failed login.
        conn.send(&pgsql::ssl_request()).await?;
        let answer = conn.take(1).await?;
        return match answer[0] {
            b'S' | b'N' => Ok(format!(
                "pgsql answered SSLRequest with {}",
                answer[0] as char
            )),
            other => Err(down!(
                Protocol,
                "pgsql answered SSLRequest with byte 0x{other:02x}"
            )),
        };
    };
    conn.send(&pgsql::startup(user, db.database.as_deref()))
        .await?;
    loop {
        let (kind, body) = pg_message(&mut conn).await?;
        match kind {
            b'E' => return Err(down!(Rejected, "pgsql: {}", pgsql::error_text(&body))),
            b'R' if body.len() >= 4 => {
                let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                let password = db.password.as_deref().unwrap_or("");
                match code {
                    // The database is opened after authentication: only ReadyForQuery
                    // says the login worked.
                    0 => {}
                    3 => conn.send(&pgsql::password_message(password)).await?,
                    5 if body.len() >= 8 => {
                        conn.send(&pgsql::md5_password(user, password, &body[4..8]))
                            .await?;
                    }
                    // SCRAM needs a SHA-256 HMAC exchange this check does not carry; the
                    // server is up and talking the protocol, which is what it shows.
                    10 => return Ok("pgsql up (asks for SASL authentication)".to_owned()),
                    other => {
                        return Err(down!(
                            Protocol,
                            "pgsql asks for unsupported auth method {other}"
                        ));
                    }
                }
            }
            // ParameterStatus, BackendKeyData, NoticeResponse: the backend starting up.
            b'S' | b'K' | b'N' => {}
            b'Z' => {
                let detail = match &db.query {
                    None => "pgsql ready for query".to_owned(),
                    Some(sql) => pgsql_query(&mut conn, sql).await?,
                };
                // Terminate, so the server logs a clean disconnect.
                let _ = conn.send(&pgsql::TERMINATE).await;
                return Ok(detail);
            }
            other => {
                return Err(down!(
                    Protocol,
                    "pgsql sent unexpected message {:?} during login",
                    other as char
                ));
            }
        }
    }
}
