//! Probes against real servers on loopback, each with a passing check and a failing one:
//! busybox httpd, openssl s_server, socat, aiosmtpd, dovecot (POP3, IMAP), pyftpdlib, slapd,
//! MariaDB, PostgreSQL 15, dnsmasq, SIPp, FreeRADIUS, and the kernel's own ICMP and UDP.
//! Small in-test fakes remain only for corners a real server does not produce on demand:
//! refusing greetings, an SMTP server without EHLO, HTTP framing and timeouts, a MySQL error
//! instead of a greeting, a RADIUS reply signed with another secret.

mod check_support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use check_support::{Daemon, free_tcp_port, free_udp_port, local, peers, spec, wait_for_tcp};
use directord::check::probe::{self, ProbeContext};
use directord::check::spec::{
    Bind, Database, Dialogue, Dns, Endpoint, Exchange, External, Http, Kind, Ldap, Login, Pattern,
    Radius, Rcode, Sip, Smtp, Target, Tls, Url,
};
use directord::check::{CheckSpec, DownCause, Outcome, Verdict};
use regex::bytes::Regex;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};

async fn run(spec: &CheckSpec, port: u16) -> Outcome {
    probe::run(spec, &Target::new(local(port)), &ProbeContext::system()).await
}

fn http(path: &str) -> Http {
    Http {
        method: "GET".into(),
        host: None,
        tls: None,
        urls: vec![Url::new(path)],
    }
}

/// An smtp check of the real server alone, greeting with directord's own name.
fn smtp(dialogue: Dialogue) -> Smtp {
    Smtp {
        dialogue,
        helo: None,
        hosts: Vec::new(),
    }
}

fn assert_up(outcome: &Outcome) {
    assert!(outcome.is_up(), "expected up: {}", outcome.detail);
}

fn assert_down(outcome: &Outcome, reason: &str) {
    assert!(outcome.is_down(), "expected down: {}", outcome.detail);
    assert!(
        outcome.detail.contains(reason),
        "{:?} does not say {reason:?}",
        outcome.detail
    );
}

/// Down for `cause`, the label probe_down counts it under.
fn assert_cause(outcome: &Outcome, cause: DownCause) {
    assert_eq!(outcome.verdict, Verdict::Down(cause), "{}", outcome.detail);
}

// ---------------------------------------------------------------- connect, tcp, udp, ping

#[tokio::test]
async fn connect_up_and_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    assert_up(&run(&spec(Kind::Connect), port).await);
    drop(listener);
    let refused = run(&spec(Kind::Connect), port).await;
    assert_down(&refused, "connect refused");
    assert_cause(&refused, DownCause::Refused);
}

#[tokio::test]
async fn tcp_send_expect_against_socat() {
    let port = free_tcp_port();
    let _socat = Daemon::spawn(
        Command::new("socat")
            .arg(format!("TCP4-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
            .arg("SYSTEM:read line; echo \"PONG $line\"")
            .stderr(Stdio::null()),
    );
    wait_for_tcp(port);
    let exchange = |expect: &str| {
        spec(Kind::Tcp(Exchange {
            send: Some(b"ping\n".to_vec()),
            expect: Some(Regex::new(expect).unwrap().into()),
        }))
    };
    assert_up(&run(&exchange("^PONG ping"), port).await);
    assert_down(&run(&exchange("^HELLO"), port).await, "does not match");
}

#[tokio::test]
async fn udp_port_unreachable_is_down_and_silence_is_up() {
    let closed = free_udp_port();
    let udp = spec(Kind::Udp(Exchange {
        send: Some(b"x".to_vec()),
        expect: None,
    }));
    assert_down(&run(&udp, closed).await, "port unreachable");

    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut short = udp.clone();
    short.timing.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let outcome = run(&short, silent.local_addr().unwrap().port()).await;
    assert_up(&outcome);
    assert!(started.elapsed() < Duration::from_millis(600));
}

#[tokio::test]
async fn udp_expect_reply() {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = server.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = [0u8; 100];
        loop {
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&buf[..n]);
            server.send_to(&reply, from).await.unwrap();
        }
    });
    let check = |expect: &str| {
        spec(Kind::Udp(Exchange {
            send: Some(b"hello".to_vec()),
            expect: Some(Regex::new(expect).unwrap().into()),
        }))
    };
    assert_up(&run(&check("^echo:hello$"), port).await);
    assert_down(&run(&check("^nope"), port).await, "does not match");
}

#[tokio::test]
async fn ping_loopback() {
    assert_up(&run(&spec(Kind::Ping), 0).await);
    let v6 = probe::run(
        &spec(Kind::Ping),
        &Target::new("[::1]:0".parse().unwrap()),
        &ProbeContext::system(),
    )
    .await;
    assert_up(&v6);
}

// ---------------------------------------------------------------- http against busybox httpd

#[tokio::test]
async fn http_against_busybox_httpd() {
    let (port, _httpd, root) = httpd(&[("index.html", b"hello from busybox\n")]);
    std::fs::create_dir(root.path().join("cgi-bin")).unwrap();
    let cgi = root.path().join("cgi-bin/busy");
    std::fs::write(
        &cgi,
        "#!/bin/sh\nprintf 'Status: 503 Service Unavailable\\r\\nContent-Type: text/plain\\r\\n\\r\\ndraining\\n'\n",
    )
    .unwrap();
    std::fs::set_permissions(&cgi, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let outcome = run(&spec(Kind::Http(http("/"))), port).await;
    assert_up(&outcome);
    assert_eq!(outcome.detail, "status 200");

    let missing = run(&spec(Kind::Http(http("/missing"))), port).await;
    assert_down(&missing, "status 404 not in 200-299");
    assert_cause(&missing, DownCause::Status);
    let mut want_404 = http("/missing");
    want_404.urls[0].statuses = vec![(404, 404)];
    assert_up(&run(&spec(Kind::Http(want_404)), port).await);

    assert_down(
        &run(&spec(Kind::Http(http("/cgi-bin/busy"))), port).await,
        "status 503",
    );

    let mut body = http("/index.html");
    body.urls[0].body = Some(Regex::new("hello from b.sybox").unwrap().into());
    assert_up(&run(&spec(Kind::Http(body.clone())), port).await);
    body.urls[0].body = Some(Regex::new("goodbye").unwrap().into());
    let mismatch = run(&spec(Kind::Http(body)), port).await;
    assert_down(&mismatch, "body does not match");
    assert_cause(&mismatch, DownCause::Mismatch);

    let mut head = http("/");
    head.method = "HEAD".into();
    assert_up(&run(&spec(Kind::Http(head)), port).await);
}

// ---------------------------------------------------------------- http edge cases, tokio fakes

/// Serves every connection with `respond(request head)`, then closes it.
async fn http_fake(respond: fn(&str) -> Vec<u8>) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let reply = respond(&String::from_utf8_lossy(&head));
                let _ = stream.write_all(&reply).await;
            });
        }
    });
    (port, task)
}

#[tokio::test]
async fn http_sends_host_and_decodes_chunked_bodies() {
    let (port, _server) = http_fake(|head| {
        if head.contains("\r\nHost: www.example.com\r\n") && head.starts_with("GET /x HTTP/1.1") {
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nall \r\n6\r\ngood!\n\r\n0\r\n\r\n"
                .to_vec()
        } else {
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_vec()
        }
    })
    .await;
    let mut check = http("/x");
    check.host = Some("www.example.com".into());
    check.urls[0].body = Some(Regex::new("all good!").unwrap().into());
    assert_up(&run(&spec(Kind::Http(check)), port).await);
    assert_down(
        &run(&spec(Kind::Http(http("/x"))), port).await,
        "status 400",
    );
}

#[tokio::test]
async fn http_read_is_bounded_by_max_bytes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
        let filler = vec![b'a'; 1024];
        while stream.write_all(&filler).await.is_ok() {}
    });
    let mut check = http("/");
    check.urls[0].body = Some(Regex::new("needle").unwrap().into());
    let mut spec = spec(Kind::Http(check));
    spec.max_bytes = 10_000;
    let outcome = run(&spec, port).await;
    assert_down(&outcome, "in the first 10000 bytes");
}

#[tokio::test]
async fn http_timeout_is_enforced() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (_stream, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let mut spec = spec(Kind::Http(http("/")));
    spec.timing.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let timed_out = run(&spec, port).await;
    assert_down(&timed_out, "timeout after 300ms");
    assert_cause(&timed_out, DownCause::Timeout);
    assert!(started.elapsed() < Duration::from_millis(800));
}

// ---------------------------------------------------------------- https against openssl s_server

/// `openssl req -x509` making a P-256 key and a certificate for `subject`, self-signed
/// unless the caller adds -CA.
fn openssl_req(subject: &str, key_out: &std::path::Path, out: &std::path::Path) -> Command {
    let mut command = Command::new("openssl");
    command
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", subject])
        .arg("-keyout")
        .arg(key_out)
        .arg("-out")
        .arg(out)
        .stderr(Stdio::null());
    command
}

/// `openssl s_server` on 127.0.0.1:`port` with this certificate, quiet.
fn s_server_on(port: u16, cert: &std::path::Path, key: &std::path::Path) -> Command {
    let mut command = Command::new("openssl");
    command
        .arg("s_server")
        .arg("-accept")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

struct TlsServer {
    port: u16,
    _daemon: Daemon,
    ca_pem: Vec<u8>,
    _dir: tempfile::TempDir,
}

/// `openssl s_server -www` with a certificate for localhost and 127.0.0.1 from a throwaway
/// CA, refusing any SNI other than "localhost".
fn s_server() -> TlsServer {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let ca_key = dir.path().join("ca.key");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    assert!(
        openssl_req("/CN=test-ca", &ca_key, &ca)
            .status()
            .unwrap()
            .success()
    );
    let leaf = openssl_req("/CN=localhost", &key, &cert)
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-CA")
        .arg(&ca)
        .arg("-CAkey")
        .arg(&ca_key)
        .status()
        .unwrap();
    assert!(leaf.success());
    let port = free_tcp_port();
    let daemon = Daemon::spawn(
        s_server_on(port, &cert, &key)
            .arg("-cert2")
            .arg(&cert)
            .arg("-key2")
            .arg(&key)
            .args([
                "-www",
                "-quiet",
                "-servername",
                "localhost",
                "-servername_fatal",
            ]),
    );
    wait_for_tcp(port);
    TlsServer {
        port,
        _daemon: daemon,
        ca_pem: std::fs::read(&ca).unwrap(),
        _dir: dir,
    }
}

fn https(verify: bool, sni: Option<&str>) -> CheckSpec {
    let mut check = http("/");
    check.tls = Some(Tls {
        verify,
        sni: sni.map(str::to_owned),
    });
    spec(Kind::Http(check))
}

#[tokio::test]
async fn https_against_openssl_s_server() {
    use tokio_rustls::rustls::RootCertStore;
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;

    let server = s_server();
    let target = Target::new(local(server.port));
    let system = ProbeContext::system();
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(&server.ca_pem).unwrap())
        .unwrap();
    let trusting = ProbeContext::with_roots(roots);

    let off = probe::run(&https(false, None), &target, &system).await;
    assert_up(&off);
    assert_eq!(off.detail, "status 200");
    assert_down(
        &probe::run(&https(true, Some("localhost")), &target, &system).await,
        "TLS handshake failed",
    );
    assert_up(&probe::run(&https(true, Some("localhost")), &target, &trusting).await);
    // No SNI: the certificate is checked against the IP address, which it names.
    assert_up(&probe::run(&https(true, None), &target, &trusting).await);
    // s_server refuses a name it does not serve, which shows the name is sent.
    assert_down(
        &probe::run(&https(false, Some("other.example")), &target, &system).await,
        "TLS handshake failed",
    );
}

// ---------------------------------------------------------------- line protocols, real servers

fn login(user: &str, password: &str) -> Option<Login> {
    Some(Login {
        user: user.into(),
        password: password.into(),
    })
}

fn pattern(text: &str) -> Option<Pattern> {
    Some(Regex::new(text).unwrap().into())
}

/// Runs `check` until it is up, for servers that accept connections before they can log
/// anyone in (postgres, dovecot's auth process) or whose UDP port cannot be polled for
/// readiness; the first up outcome, or the last down one after 20 s.
async fn eventually_up(check: &CheckSpec, port: u16) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let outcome = run(check, port).await;
        if outcome.is_up() || Instant::now() > deadline {
            return outcome;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn smtp_against_aiosmtpd() {
    let Some(server) = peers::smtp("probe", "secret") else {
        return;
    };
    let check = |login: Option<Login>, expect: &str| {
        spec(Kind::Smtp(smtp(Dialogue {
            login,
            expect: pattern(expect),
        })))
    };
    // The transcript holds aiosmtpd's EHLO reply, which offers AUTH.
    let outcome = eventually_up(&check(login("probe", "secret"), "250-AUTH "), server.port).await;
    assert_up(&outcome);
    assert_eq!(outcome.detail, "smtp 220/250");
    assert_up(&run(&check(None, "^220 mx.example"), server.port).await);
    let refused = run(&check(login("probe", "wrong"), ""), server.port).await;
    assert_down(&refused, "AUTH: 535");
    assert_cause(&refused, DownCause::Rejected);
    assert_down(
        &run(&check(None, "ESMTP Exim"), server.port).await,
        "dialogue does not match \"ESMTP Exim\"",
    );
}

#[tokio::test]
async fn pop_and_imap_against_dovecot() {
    // A quote and a backslash: IMAP's quoted string must escape both.
    let password = r#"p"w\x"#;
    let Some(dovecot) = peers::dovecot(password) else {
        return;
    };
    let pop = |password: &str| {
        spec(Kind::Pop(Dialogue {
            login: login("probe", password),
            expect: None,
        }))
    };
    let imap = |password: &str, expect: &str| {
        spec(Kind::Imap(Dialogue {
            login: login("probe", password),
            expect: pattern(expect),
        }))
    };
    let outcome = eventually_up(&pop(password), dovecot.pop3).await;
    assert_up(&outcome);
    assert_eq!(outcome.detail, "pop +OK");
    assert_up(&eventually_up(&imap(password, "Logged in"), dovecot.imap).await);
    assert_down(
        &run(&imap(password, "Cyrus IMAP"), dovecot.imap).await,
        "dialogue does not match",
    );
    // Dovecot delays every login from an address for seconds after a failed one (its auth
    // penalty), so the failures come last and may take longer than the default timeout.
    let patient = |mut check: CheckSpec| {
        check.timing.timeout = Duration::from_secs(20);
        check
    };
    assert_down(
        &run(&patient(imap("wrong", "")), dovecot.imap).await,
        "LOGIN: a1 NO",
    );
    assert_down(
        &run(&patient(pop("wrong")), dovecot.pop3).await,
        "PASS: -ERR",
    );
}

#[tokio::test]
async fn ftp_against_pyftpdlib() {
    let Some(server) = peers::ftp("probe", "secret") else {
        return;
    };
    let check = |password: &str, expect: &str| {
        spec(Kind::Ftp(Dialogue {
            login: login("probe", password),
            expect: pattern(expect),
        }))
    };
    let outcome = eventually_up(&check("secret", "^220 probe ftp ready"), server.port).await;
    assert_up(&outcome);
    assert_eq!(outcome.detail, "ftp 220");
    assert_down(&run(&check("wrong", ""), server.port).await, "PASS: 530");
    assert_down(
        &run(&check("secret", "vsFTPd"), server.port).await,
        "dialogue does not match",
    );
}

// ---------------------------------------------------------------- line protocols, fakes for
// refusals and old servers that the real ones above do not produce on demand

/// A line server: sends `greeting`, answers each line by the first rule whose prefix it
/// starts with (500 otherwise) until the client closes; returns the lines read.
async fn line_fake(
    greeting: &'static str,
    rules: &'static [(&'static str, &'static str)],
) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        write.write_all(greeting.as_bytes()).await.unwrap();
        let mut lines = BufReader::new(read).lines();
        let mut seen = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            let reply = rules
                .iter()
                .find(|(prefix, _)| line.starts_with(prefix))
                .map_or("500 what?\r\n", |(_, reply)| reply);
            seen.push(line);
            if write.write_all(reply.as_bytes()).await.is_err() {
                break;
            }
        }
        seen
    });
    (port, task)
}

#[tokio::test]
async fn smtp_falls_back_to_helo() {
    let (port, server) = line_fake(
        "220 old\r\n",
        &[
            ("EHLO", "502 no\r\n"),
            ("HELO", "250 hi\r\n"),
            ("QUIT", "221 bye\r\n"),
        ],
    )
    .await;
    let check = spec(Kind::Smtp(smtp(Dialogue {
        login: None,
        expect: None,
    })));
    assert_up(&run(&check, port).await);
    assert_eq!(
        server.await.unwrap(),
        ["EHLO directord-check", "HELO directord-check", "QUIT"]
    );
}

#[tokio::test]
async fn greeting_refusals_are_down() {
    let dialogue = Dialogue {
        login: login("probe", "secret"),
        expect: None,
    };
    let cases = [
        (
            Kind::Smtp(smtp(dialogue.clone())),
            "554 go away\r\n",
            "greeting: 554 go away",
        ),
        (
            Kind::Pop(dialogue.clone()),
            "-ERR maintenance\r\n",
            "greeting: -ERR",
        ),
        (
            Kind::Imap(dialogue.clone()),
            "* BYE overloaded\r\n",
            "greeting: * BYE",
        ),
        (
            Kind::Ftp(dialogue),
            "421 too many users\r\n",
            "greeting: 421",
        ),
    ];
    for (kind, greeting, reason) in cases {
        let (port, _) = line_fake(greeting, &[]).await;
        assert_down(&run(&spec(kind), port).await, reason);
    }
}

// ---------------------------------------------------------------- ldap against slapd

#[tokio::test]
async fn ldap_against_slapd() {
    let Some(server) = peers::slapd("secret") else {
        return;
    };
    let check = |login: Option<Login>, base: Option<&str>| {
        spec(Kind::Ldap(Ldap {
            login,
            search_base: base.map(str::to_owned),
        }))
    };
    let probe_dn = |password| login("cn=probe,dc=example", password);
    let outcome = eventually_up(&check(probe_dn("secret"), None), server.port).await;
    assert_up(&outcome);
    assert_eq!(outcome.detail, "bind succeeded");
    assert_up(&run(&check(None, None), server.port).await);
    let search = run(&check(probe_dn("secret"), Some("dc=example")), server.port).await;
    assert_up(&search);
    assert_eq!(search.detail, "bind and search of \"dc=example\" succeeded");
    assert_down(
        &run(&check(probe_dn("wrong"), None), server.port).await,
        "bind failed with resultCode 49",
    );
    assert_down(
        &run(
            &check(probe_dn("secret"), Some("ou=nowhere,dc=example")),
            server.port,
        )
        .await,
        "search of \"ou=nowhere,dc=example\" failed with resultCode 32",
    );
}

// ---------------------------------------------------------------- mysql against MariaDB

#[tokio::test]
async fn mysql_against_mariadb() {
    let Some(server) = peers::mariadb("probe", "secret") else {
        return;
    };
    let check = |user: Option<&str>, password: &str, database: Option<&str>| {
        spec(Kind::Mysql(Database {
            user: user.map(str::to_owned),
            password: Some(password.to_owned()),
            database: database.map(str::to_owned),
            query: None,
        }))
    };
    // The init file creating the user runs as the server starts listening.
    let login = eventually_up(&check(Some("probe"), "secret", Some("app")), server.port).await;
    assert_up(&login);
    assert!(
        login.detail.contains("MariaDB") && login.detail.ends_with("logged in as probe"),
        "{}",
        login.detail
    );
    let greeting = run(&check(None, "", None), server.port).await;
    assert_up(&greeting);
    assert!(
        greeting.detail.starts_with("mysql 5.5.5-"),
        "{}",
        greeting.detail
    );
    assert_up(&run(&check(Some("probe"), "secret", None), server.port).await);
    assert_down(
        &run(&check(Some("probe"), "wrong", Some("app")), server.port).await,
        "mysql error 1045: Access denied for user 'probe'",
    );
    assert_down(
        &run(&check(Some("nobody"), "secret", None), server.port).await,
        "mysql error 1045",
    );
    assert_down(
        &run(&check(Some("probe"), "secret", Some("other")), server.port).await,
        "mysql error 1044",
    );

    // ldirectord's request for a mysql check: the query runs after the login, and only a
    // query returning rows is up.
    let query = |sql: &str| {
        let mut spec = check(Some("probe"), "secret", Some("app"));
        let Kind::Mysql(db) = &mut spec.kind else {
            unreachable!()
        };
        db.query = Some(sql.to_owned());
        spec
    };
    let rows = run(&query("SELECT 1 UNION SELECT 2"), server.port).await;
    assert_up(&rows);
    assert_eq!(rows.detail, "query returned 2 rows");
    let none = run(&query("SELECT 1 FROM DUAL WHERE 0"), server.port).await;
    assert_down(&none, "query returned no rows");
    assert_cause(&none, DownCause::Mismatch);
    assert_down(
        &run(&query("SELECT * FROM pool"), server.port).await,
        "query: mysql error 1146: Table 'app.pool' doesn't exist",
    );
}

/// Answers one connection with `reply`, then reads until the client closes.
async fn reply_fake(reply: Vec<u8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream.write_all(&reply).await.unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    });
    port
}

/// A blocked host or too many connections: the server sends an error packet instead of its
/// greeting, which a test cannot make MariaDB do on demand.
#[tokio::test]
async fn mysql_error_instead_of_greeting_is_down() {
    let mut error = vec![0xff, 0x6a, 0x04];
    error.extend_from_slice(b"Host '10.0.0.9' is not allowed to connect");
    let mut packet = vec![error.len() as u8, 0, 0, 0];
    packet.extend(error);
    let port = reply_fake(packet).await;
    let check = spec(Kind::Mysql(Database {
        user: None,
        password: None,
        database: None,
        query: None,
    }));
    assert_down(&run(&check, port).await, "mysql error 1130: Host");
}

// ---------------------------------------------------------------- pgsql against PostgreSQL 15

#[tokio::test]
async fn pgsql_against_postgres() {
    use std::os::unix::process::CommandExt;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    Command::new("chown")
        .arg("nobody")
        .arg(dir.path())
        .status()
        .unwrap();
    let initdb = Command::new("/usr/local/bin/initdb")
        .arg("-D")
        .arg(&data)
        .args(["-U", "probe", "--auth=trust", "-N"])
        .uid(65534)
        .gid(65534)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("PostgreSQL's initdb is installed at /usr/local/bin");
    assert!(initdb.success());
    std::fs::write(
        data.join("pg_hba.conf"),
        "host all probe 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n",
    )
    .unwrap();
    let port = free_tcp_port();
    let _postgres = Daemon::spawn(
        Command::new("/usr/local/bin/postgres")
            .arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .uid(65534)
            .gid(65534)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_for_tcp(port);
    let check = |user: Option<&str>, database: Option<&str>| {
        spec(Kind::Pgsql(Database {
            user: user.map(str::to_owned),
            password: None,
            database: database.map(str::to_owned),
            query: None,
        }))
    };
    let outcome = eventually_up(&check(Some("probe"), Some("postgres")), port).await;
    assert_eq!(outcome.detail, "pgsql ready for query");
    let ssl = run(&check(None, None), port).await;
    assert_up(&ssl);
    assert_eq!(ssl.detail, "pgsql answered SSLRequest with N");
    assert_down(
        &run(&check(Some("probe"), Some("nosuchdb")), port).await,
        "database \"nosuchdb\" does not exist",
    );
    let scram = run(&check(Some("app"), None), port).await;
    assert_up(&scram);
    assert!(scram.detail.contains("SASL"), "{}", scram.detail);

    // ldirectord's request for a pgsql check: rows returned are up, none or an error down.
    let query = |sql: &str| {
        let mut spec = check(Some("probe"), Some("postgres"));
        let Kind::Pgsql(db) = &mut spec.kind else {
            unreachable!()
        };
        db.query = Some(sql.to_owned());
        spec
    };
    let rows = run(&query("SELECT generate_series(1, 3)"), port).await;
    assert_up(&rows);
    assert_eq!(rows.detail, "query returned 3 rows");
    assert_down(
        &run(&query("SELECT 1 WHERE false"), port).await,
        "query returned no rows",
    );
    assert_down(
        &run(&query("SELECT * FROM pool"), port).await,
        "query: pgsql: relation \"pool\" does not exist",
    );
}

// ---------------------------------------------------------------- dns, sip, radius: real servers

#[tokio::test]
async fn dns_against_dnsmasq() {
    let Some(server) = peers::dnsmasq() else {
        return;
    };
    let dns = |query: &str, record_type, expect_rcode| {
        spec(Kind::Dns(Dns {
            query: query.into(),
            record_type,
            expect_rcode,
        }))
    };
    let port = server.port;
    let outcome = eventually_up(&dns("good.example", 1, None), port).await;
    assert_up(&outcome);
    assert_eq!(outcome.detail, "1 answer(s)");
    assert_down(
        &run(&dns("bad.example", 1, None), port).await,
        "rcode NXDOMAIN",
    );
    assert_up(&run(&dns("bad.example", 1, Some(Rcode::NxDomain)), port).await);
    assert_down(
        &run(&dns("good.example", 1, Some(Rcode::NxDomain)), port).await,
        "rcode NOERROR, expected NXDOMAIN",
    );
    assert_down(
        &run(&dns("good.example", 28, None), port).await,
        "no answer of type 28",
    );
    assert_down(
        &run(&dns("www.example.org", 1, None), port).await,
        "rcode REFUSED",
    );
    assert_down(
        &run(&dns("good.example", 1, None), free_udp_port()).await,
        "port unreachable",
    );
}

#[tokio::test]
async fn sip_options_against_sipp() {
    let Some(ok) = peers::sipp(200, "OK") else {
        return;
    };
    let Some(not_found) = peers::sipp(404, "Not Found") else {
        return;
    };
    let sip = |statuses| {
        spec(Kind::Sip(Sip {
            host: Some("pbx.example".into()),
            statuses,
        }))
    };
    // SIPp sends "100 Trying" first: the check waits for the final answer.
    let outcome = eventually_up(&sip(vec![(200, 200)]), ok.port).await;
    assert_up(&outcome);
    assert_eq!(outcome.detail, "SIP status 200");
    assert_up(&eventually_up(&sip(vec![(404, 404)]), not_found.port).await);
    assert_down(
        &run(&sip(vec![(200, 200)]), not_found.port).await,
        "SIP status 404 not in 200",
    );
}

#[tokio::test]
async fn radius_against_freeradius() {
    let Some(server) = peers::freeradius("testing123", "probe", "right") else {
        return;
    };
    let radius = |user: &str, password: &str, secret: &[u8]| {
        spec(Kind::Radius(Radius {
            user: user.into(),
            password: password.into(),
            secret: Arc::from(secret),
        }))
    };
    let accept = eventually_up(&radius("probe", "right", b"testing123"), server.port).await;
    assert_up(&accept);
    assert_eq!(accept.detail, "Access-Accept");
    assert_down(
        &run(&radius("probe", "wrong", b"testing123"), server.port).await,
        "Access-Reject",
    );
    assert_down(
        &run(&radius("nobody", "right", b"testing123"), server.port).await,
        "Access-Reject",
    );
    // FreeRADIUS drops a request whose Message-Authenticator does not verify: no answer.
    let mut wrong_secret = radius("probe", "right", b"not-the-secret");
    wrong_secret.timing.timeout = Duration::from_secs(1);
    assert_down(&run(&wrong_secret, server.port).await, "timeout after 1s");
}

/// A server that answers with another secret (FreeRADIUS stays silent instead): the
/// Response Authenticator does not verify.
#[tokio::test]
async fn radius_reply_signed_with_another_secret_is_down() {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = server.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        let (_, from) = server.recv_from(&mut buf).await.unwrap();
        let mut reply = vec![3, buf[1], 0, 20];
        reply.extend_from_slice(&[0xaa; 16]);
        server.send_to(&reply, from).await.unwrap();
    });
    let check = spec(Kind::Radius(Radius {
        user: "probe".into(),
        password: "x".into(),
        secret: Arc::from(&b"s"[..]),
    }));
    assert_down(&run(&check, port).await, "wrong secret");
}

// ---------------------------------------------------------------- external

fn external(command: &str, dynamic_weight: bool) -> CheckSpec {
    spec(Kind::External(External {
        command: command.into(),
        dynamic_weight,
    }))
}

#[tokio::test]
async fn external_commands() {
    assert_up(&run(&external("true", false), 80).await);
    assert_down(&run(&external("false", false), 80).await, "exit 1");
    assert_down(&run(&external("exit 7", false), 80).await, "exit 7");
    let weighted = run(&external("exit 7", true), 80).await;
    assert_eq!((weighted.is_up(), weighted.weight), (true, Some(5)));
    assert_down(&run(&external("exit 1", true), 80).await, "exit 1");

    let target = Target {
        real: "127.0.0.1:8080".parse().unwrap(),
        virtual_addr: Some("192.0.2.10:80".parse().unwrap()),
    };
    let env_check = external(
        r#"test "$LVS_REAL_IP:$LVS_REAL_PORT $LVS_VIRTUAL_IP:$LVS_VIRTUAL_PORT" = "127.0.0.1:8080 192.0.2.10:80""#,
        false,
    );
    assert_up(&probe::run(&env_check, &target, &ProbeContext::system()).await);
}

#[tokio::test]
async fn external_timeout_kills_the_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("survived");
    let mut check = external(
        &format!("(sleep 1; touch {}) & sleep 10", marker.display()),
        false,
    );
    check.timing.timeout = Duration::from_millis(300);
    let started = Instant::now();
    assert_down(&run(&check, 80).await, "timeout after 300ms, killed");
    assert!(started.elapsed() < Duration::from_millis(800));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(!marker.exists(), "a grandchild outlived the check");
}

// ---------------------------------------------------------------- keepalived's digest, url blocks, bindto

/// What keepalived's own genhash prints for a page: the digest a keepalived.conf carries.
/// None when keepalived is not installed (the test command installs it).
fn keepalived_genhash(port: u16, path: &str, ssl: bool) -> Option<[u8; 16]> {
    let mut command = Command::new("genhash");
    command.args(["-s", "127.0.0.1", "-p", &port.to_string(), "-u", path]);
    if ssl {
        command.arg("-S");
    }
    let out = command.stderr(Stdio::null()).output().ok()?;
    let text = String::from_utf8(out.stdout).unwrap();
    lvs_config::parse_digest(text.trim())
}

/// The MD5 of `data`, computed here, for when genhash is absent.
fn md5_of(data: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(data).into()
}

fn page(path: &str, digest: [u8; 16]) -> Url {
    Url {
        digest: Some(digest),
        ..Url::new(path)
    }
}

/// busybox httpd serving `files` from a fresh directory.
fn httpd(files: &[(&str, &[u8])]) -> (u16, Daemon, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    for (name, data) in files {
        std::fs::write(root.path().join(name), data).unwrap();
    }
    let port = free_tcp_port();
    let daemon = Daemon::spawn(
        Command::new("busybox")
            .args(["httpd", "-f", "-p"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-h")
            .arg(root.path()),
    );
    wait_for_tcp(port);
    (port, daemon, root)
}

// keepalived's HTTP_GET digest: the check is up when the body's MD5 is the one genhash
// printed for the page, down (a mismatch, saying both digests) when the page changed; and
// with two url blocks, every page must pass, so a wrong digest on the second alone is down.
#[tokio::test]
async fn http_digest_as_keepalived_genhash_prints_it() {
    let a: &[u8] = b"<html>page a</html>\n";
    let b: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let (port, _httpd, _root) = httpd(&[("a.html", a), ("b.bin", &b)]);
    let digest_a = keepalived_genhash(port, "/a.html", false).unwrap_or_else(|| md5_of(a));
    let digest_b = keepalived_genhash(port, "/b.bin", false).unwrap_or_else(|| md5_of(&b));
    assert_eq!((digest_a, digest_b), (md5_of(a), md5_of(&b)));

    let mut check = http("/");
    check.urls = vec![page("/a.html", digest_a)];
    let right = run(&spec(Kind::Http(check.clone())), port).await;
    assert_up(&right);
    assert_eq!(right.detail, "status 200, digest matches");
    let mut wrong = digest_a;
    wrong[0] ^= 1;
    check.urls = vec![page("/a.html", wrong)];
    let changed = run(&spec(Kind::Http(check.clone())), port).await;
    assert_down(&changed, "digest");
    assert_cause(&changed, DownCause::Mismatch);

    // The second page is larger than max_bytes: the digest still covers all of it.
    check.urls = vec![page("/a.html", digest_a), page("/b.bin", digest_b)];
    let both = run(&spec(Kind::Http(check.clone())), port).await;
    assert_up(&both);
    assert!(both.detail.starts_with("2 urls: "), "{}", both.detail);
    check.urls[1].digest = Some(digest_a);
    assert_down(
        &run(&spec(Kind::Http(check.clone())), port).await,
        "/b.bin: ",
    );
    check.urls[1] = Url {
        statuses: vec![(200, 200)],
        ..Url::new("/missing")
    };
    assert_down(
        &run(&spec(Kind::Http(check)), port).await,
        "/missing: status 404",
    );
}

// SSL_GET's digest: the page over TLS (openssl s_server -WWW serving a file), the digest
// genhash -S prints.
#[tokio::test]
async fn https_digest_as_keepalived_genhash_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let body = b"served over TLS\n";
    std::fs::write(dir.path().join("page.txt"), body).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    assert!(
        openssl_req("/CN=localhost", &key, &cert)
            .status()
            .unwrap()
            .success()
    );
    let port = free_tcp_port();
    let _server = Daemon::spawn(
        s_server_on(port, &cert, &key)
            .args(["-WWW", "-quiet"])
            .current_dir(dir.path()),
    );
    wait_for_tcp(port);
    let digest = keepalived_genhash(port, "/page.txt", true).unwrap_or_else(|| md5_of(body));
    assert_eq!(digest, md5_of(body));
    let mut check = http("/");
    check.tls = Some(Tls {
        verify: false,
        sni: None,
    });
    check.urls = vec![page("/page.txt", digest)];
    assert_up(&run(&spec(Kind::Http(check.clone())), port).await);
    check.urls = vec![page("/page.txt", md5_of(b"another page"))];
    assert_down(&run(&spec(Kind::Http(check)), port).await, "digest");
}

// keepalived's bindto and bind_port: the server sees the connection come from the chosen
// source address and port; connect_ip and connect_port send it to another address.
#[tokio::test]
async fn bound_source_is_what_the_server_sees() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let source_port = free_tcp_port();
    let mut check = spec(Kind::Connect);
    check.address = Some("127.0.0.1".parse().unwrap());
    check.port = Some(port);
    check.bind = Bind {
        address: Some("127.0.0.2".parse().unwrap()),
        port: Some(source_port),
    };
    // The real server's own address is closed: only connect_ip/connect_port reach the
    // listener.
    let target = Target::new("127.0.0.3:9".parse().unwrap());
    let outcome = probe::run(&check, &target, &ProbeContext::system()).await;
    assert_up(&outcome);
    let (_, peer) = listener.accept().await.unwrap();
    assert_eq!(peer, SocketAddr::from(([127, 0, 0, 2], source_port)));

    check.bind.port = None;
    assert_up(&probe::run(&check, &target, &ProbeContext::system()).await);
    let (_, peer) = listener.accept().await.unwrap();
    assert_eq!(peer.ip().to_string(), "127.0.0.2");

    // The same over UDP (keepalived's DNS_CHECK and UDP_CHECK take bindto too).
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let udp_port = server.local_addr().unwrap().port();
    let source_port = free_udp_port();
    let mut udp = spec(Kind::Udp(Exchange {
        send: Some(b"hello".to_vec()),
        expect: Some(Regex::new("^ok$").unwrap().into()),
    }));
    udp.address = Some("127.0.0.1".parse().unwrap());
    udp.port = Some(udp_port);
    udp.bind = Bind {
        address: Some("127.0.0.2".parse().unwrap()),
        port: Some(source_port),
    };
    let answer = tokio::spawn(async move {
        let mut buf = [0u8; 16];
        let (_, from) = server.recv_from(&mut buf).await.unwrap();
        server.send_to(b"ok", from).await.unwrap();
        from
    });
    assert_up(&probe::run(&udp, &target, &ProbeContext::system()).await);
    assert_eq!(
        answer.await.unwrap(),
        SocketAddr::from(([127, 0, 0, 2], source_port))
    );
}

// SMTP_CHECK with helo_name and two host blocks: both servers are talked to, greeted with
// the configured name; the check is down when the second refuses, saying which.
#[tokio::test]
async fn smtp_hosts_all_pass_and_greet_with_helo_name() {
    let rules: &'static [(&str, &str)] = &[("EHLO", "250 hi\r\n"), ("QUIT", "221 bye\r\n")];
    let (first, first_seen) = line_fake("220 one\r\n", rules).await;
    let (second, second_seen) = line_fake("220 two\r\n", rules).await;
    let endpoint = |port: u16| Endpoint {
        address: Some("127.0.0.1".parse().unwrap()),
        port: Some(port),
        bind: Bind::default(),
    };
    let mut check = smtp(Dialogue {
        login: None,
        expect: None,
    });
    check.helo = Some("foo.bar.com".into());
    check.hosts = vec![endpoint(first), endpoint(second)];
    let target = Target::new("127.0.0.3:25".parse().unwrap());
    let outcome = probe::run(
        &spec(Kind::Smtp(check.clone())),
        &target,
        &ProbeContext::system(),
    )
    .await;
    assert_up(&outcome);
    assert_eq!(outcome.detail, "smtp 220/250 from 2 servers");
    for seen in [first_seen, second_seen] {
        assert_eq!(seen.await.unwrap(), ["EHLO foo.bar.com", "QUIT"]);
    }

    let (first, _) = line_fake("220 one\r\n", rules).await;
    let (refusing, _) = line_fake("554 no\r\n", rules).await;
    check.hosts = vec![endpoint(first), endpoint(refusing)];
    assert_down(
        &probe::run(&spec(Kind::Smtp(check)), &target, &ProbeContext::system()).await,
        &format!("127.0.0.1:{refusing}: greeting: 554"),
    );
}
