//! Probes against servers on loopback: real ones where the machine has them (busybox httpd,
//! openssl s_server, socat, PostgreSQL 15, the kernel's own ICMP and UDP), small in-test
//! fakes for the line protocols, DNS, SIP, RADIUS, LDAP and MySQL.

mod check_support;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use check_support::{Daemon, free_tcp_port, free_udp_port, local, spec, wait_for_tcp};
use directord::check::probe::{self, ProbeContext};
use directord::check::spec::{
    Database, Dialogue, Dns, Exchange, External, Http, Kind, Ldap, Login, Radius, Rcode, Sip,
    Target, Tls,
};
use directord::check::wire::radius as radius_wire;
use directord::check::{CheckSpec, Outcome};
use regex::bytes::Regex;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};

async fn run(spec: &CheckSpec, port: u16) -> Outcome {
    probe::run(spec, &Target::new(local(port)), &ProbeContext::system()).await
}

fn http(path: &str) -> Http {
    Http {
        method: "GET".into(),
        path: path.into(),
        host: None,
        statuses: vec![(200, 299)],
        body: None,
        tls: None,
    }
}

fn assert_up(outcome: &Outcome) {
    assert!(outcome.up, "expected up: {}", outcome.detail);
}

fn assert_down(outcome: &Outcome, reason: &str) {
    assert!(!outcome.up, "expected down: {}", outcome.detail);
    assert!(
        outcome.detail.contains(reason),
        "{:?} does not say {reason:?}",
        outcome.detail
    );
}

// ---------------------------------------------------------------- connect, tcp, udp, ping

#[tokio::test]
async fn connect_up_and_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    assert_up(&run(&spec(Kind::Connect), port).await);
    drop(listener);
    assert_down(&run(&spec(Kind::Connect), port).await, "connect refused");
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
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("index.html"), "hello from busybox\n").unwrap();
    std::fs::create_dir(root.path().join("cgi-bin")).unwrap();
    let cgi = root.path().join("cgi-bin/busy");
    std::fs::write(
        &cgi,
        "#!/bin/sh\nprintf 'Status: 503 Service Unavailable\\r\\nContent-Type: text/plain\\r\\n\\r\\ndraining\\n'\n",
    )
    .unwrap();
    std::fs::set_permissions(&cgi, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let port = free_tcp_port();
    let _httpd = Daemon::spawn(
        Command::new("busybox")
            .args(["httpd", "-f", "-p"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-h")
            .arg(root.path()),
    );
    wait_for_tcp(port);

    let outcome = run(&spec(Kind::Http(http("/"))), port).await;
    assert_up(&outcome);
    assert_eq!(outcome.detail, "status 200");

    assert_down(
        &run(&spec(Kind::Http(http("/missing"))), port).await,
        "status 404 not in 200-299",
    );
    let mut want_404 = http("/missing");
    want_404.statuses = vec![(404, 404)];
    assert_up(&run(&spec(Kind::Http(want_404)), port).await);

    assert_down(
        &run(&spec(Kind::Http(http("/cgi-bin/busy"))), port).await,
        "status 503",
    );

    let mut body = http("/index.html");
    body.body = Some(Regex::new("hello from b.sybox").unwrap().into());
    assert_up(&run(&spec(Kind::Http(body.clone())), port).await);
    body.body = Some(Regex::new("goodbye").unwrap().into());
    assert_down(
        &run(&spec(Kind::Http(body)), port).await,
        "body does not match",
    );

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
    check.body = Some(Regex::new("all good!").unwrap().into());
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
    check.body = Some(Regex::new("needle").unwrap().into());
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
    assert_down(&run(&spec, port).await, "timeout after 300ms");
    assert!(started.elapsed() < Duration::from_millis(800));
}

// ---------------------------------------------------------------- https against openssl s_server

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
    let openssl_req = |subject: &str, key_out: &std::path::Path, out: &std::path::Path| {
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
    };
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
        Command::new("openssl")
            .arg("s_server")
            .arg("-accept")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
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
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
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

// ---------------------------------------------------------------- line protocols, tokio fakes

/// A line server: sends `greeting`, answers each line by the first rule whose prefix it
/// starts with, closes after a rule answering with `None`-terminated; returns the lines read.
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

fn login(user: &str, password: &str) -> Option<Login> {
    Some(Login {
        user: user.into(),
        password: password.into(),
    })
}

#[tokio::test]
async fn smtp_ehlo_auth_quit() {
    let (port, server) = line_fake(
        "220-mx.example ESMTP\r\n220 ready\r\n",
        &[
            ("EHLO", "250-mx.example\r\n250 AUTH PLAIN\r\n"),
            ("AUTH PLAIN AHUAcA==", "235 ok\r\n"),
            ("AUTH", "535 no\r\n"),
            ("QUIT", "221 bye\r\n"),
        ],
    )
    .await;
    let check = spec(Kind::Smtp(Dialogue {
        login: login("u", "p"),
        expect: Some(Regex::new("AUTH PLAIN").unwrap().into()),
    }));
    assert_up(&run(&check, port).await);
    assert_eq!(
        server.await.unwrap(),
        ["EHLO directord-check", "AUTH PLAIN AHUAcA==", "QUIT"]
    );

    let (port, _) = line_fake("554 go away\r\n", &[]).await;
    assert_down(&run(&check, port).await, "greeting: 554 go away");
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
    let check = spec(Kind::Smtp(Dialogue {
        login: None,
        expect: None,
    }));
    assert_up(&run(&check, port).await);
    assert_eq!(
        server.await.unwrap(),
        ["EHLO directord-check", "HELO directord-check", "QUIT"]
    );
}

#[tokio::test]
async fn pop_login() {
    let (port, server) = line_fake(
        "+OK POP3 ready\r\n",
        &[
            ("USER alice", "+OK\r\n"),
            ("PASS right", "+OK logged in\r\n"),
            ("PASS", "-ERR denied\r\n"),
            ("QUIT", "+OK bye\r\n"),
        ],
    )
    .await;
    let check = |password| {
        spec(Kind::Pop(Dialogue {
            login: login("alice", password),
            expect: None,
        }))
    };
    assert_up(&run(&check("right"), port).await);
    assert_eq!(server.await.unwrap(), ["USER alice", "PASS right", "QUIT"]);
    let (port, _) = line_fake(
        "+OK POP3 ready\r\n",
        &[("USER", "+OK\r\n"), ("PASS", "-ERR denied\r\n")],
    )
    .await;
    assert_down(&run(&check("wrong"), port).await, "PASS: -ERR denied");
}

#[tokio::test]
async fn imap_login() {
    let (port, server) = line_fake(
        "* OK IMAP4rev1 ready\r\n",
        &[
            (
                "a1 LOGIN \"bob\" \"p\\\"w\"",
                "* CAPABILITY IMAP4rev1\r\na1 OK done\r\n",
            ),
            ("a1 LOGIN", "a1 NO bad\r\n"),
            ("a2 LOGOUT", "* BYE\r\na2 OK\r\n"),
        ],
    )
    .await;
    let check = spec(Kind::Imap(Dialogue {
        login: login("bob", "p\"w"),
        expect: None,
    }));
    assert_up(&run(&check, port).await);
    assert_eq!(server.await.unwrap().len(), 2);
    let (port, _) = line_fake("* BYE overloaded\r\n", &[]).await;
    assert_down(&run(&check, port).await, "greeting: * BYE");
}

#[tokio::test]
async fn ftp_login() {
    let (port, server) = line_fake(
        "220-welcome\r\n220 ftp ready\r\n",
        &[
            ("USER anonymous", "331 password please\r\n"),
            ("PASS", "230 in\r\n"),
            ("QUIT", "221 bye\r\n"),
        ],
    )
    .await;
    let check = spec(Kind::Ftp(Dialogue {
        login: login("anonymous", "probe@"),
        expect: Some(Regex::new("ftp ready").unwrap().into()),
    }));
    assert_up(&run(&check, port).await);
    assert_eq!(
        server.await.unwrap(),
        ["USER anonymous", "PASS probe@", "QUIT"]
    );
    let (port, _) = line_fake("421 too many users\r\n", &[]).await;
    assert_down(&run(&check, port).await, "greeting: 421");
}

// ---------------------------------------------------------------- binary protocols, fakes

/// Answers one connection: reads `request_len` bytes, checks them, writes `reply`.
async fn binary_fake(expected_request: Vec<u8>, reply: Vec<u8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = vec![0u8; expected_request.len()];
        if !request.is_empty() {
            stream.read_exact(&mut request).await.unwrap();
            assert_eq!(request, expected_request);
        }
        stream.write_all(&reply).await.unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    });
    port
}

#[tokio::test]
async fn ldap_bind_and_search() {
    let bind = vec![
        0x30, 0x0c, 0x02, 0x01, 0x01, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x80, 0x00,
    ];
    let success = vec![
        0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00,
    ];
    let port = binary_fake(bind.clone(), success).await;
    let anonymous = spec(Kind::Ldap(Ldap {
        login: None,
        search_base: None,
    }));
    assert_up(&run(&anonymous, port).await);

    let invalid_credentials = vec![
        0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x31, 0x04, 0x00, 0x04, 0x00,
    ];
    let port = binary_fake(bind, invalid_credentials).await;
    assert_down(&run(&anonymous, port).await, "resultCode 49");
}

#[tokio::test]
async fn ldap_simple_bind_then_base_search() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut bind = [0u8; 2];
        stream.read_exact(&mut bind).await.unwrap();
        let mut rest = vec![0u8; usize::from(bind[1])];
        stream.read_exact(&mut rest).await.unwrap();
        // BindResponse success, then for the search one entry and SearchResultDone
        // noSuchObject (32).
        stream
            .write_all(&[
                0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00,
            ])
            .await
            .unwrap();
        let mut search = [0u8; 2];
        stream.read_exact(&mut search).await.unwrap();
        let mut body = vec![0u8; usize::from(search[1])];
        stream.read_exact(&mut body).await.unwrap();
        stream
            .write_all(&[
                0x30, 0x0c, 0x02, 0x01, 0x02, 0x65, 0x07, 0x0a, 0x01, 0x20, 0x04, 0x00, 0x04, 0x00,
            ])
            .await
            .unwrap();
        (rest, body)
    });
    let check = spec(Kind::Ldap(Ldap {
        login: login("cn=probe,dc=example", "pw"),
        search_base: Some("dc=example".into()),
    }));
    assert_down(
        &run(&check, port).await,
        "search of \"dc=example\" failed with resultCode 32",
    );
    let (bind, search) = server.await.unwrap();
    assert!(bind.windows(19).any(|w| w == b"cn=probe,dc=example"));
    assert!(bind.ends_with(&[0x80, 2, b'p', b'w']));
    assert_eq!(search[..3], [0x02, 0x01, 0x02], "messageID 2");
    assert!(search.windows(10).any(|w| w == b"dc=example"));
}

#[tokio::test]
async fn mysql_greeting_and_error_packet() {
    let mut greeting = vec![10];
    greeting.extend_from_slice(b"8.0.36\0");
    greeting.extend_from_slice(&[1, 0, 0, 0]);
    greeting.extend_from_slice(&[0; 30]);
    let mut packet = vec![greeting.len() as u8, 0, 0, 0];
    packet.extend(greeting);
    let port = binary_fake(Vec::new(), packet).await;
    let check = spec(Kind::Mysql(Database {
        user: None,
        password: None,
        database: None,
    }));
    let outcome = run(&check, port).await;
    assert_up(&outcome);
    assert_eq!(outcome.detail, "mysql 8.0.36");

    let mut error = vec![0xff, 0x6a, 0x04];
    error.extend_from_slice(b"Host '10.0.0.9' is not allowed to connect");
    let mut packet = vec![error.len() as u8, 0, 0, 0];
    packet.extend(error);
    let port = binary_fake(Vec::new(), packet).await;
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
        }))
    };
    // The postmaster accepts before it is ready for logins; retry the first briefly.
    let mut outcome = run(&check(Some("probe"), Some("postgres")), port).await;
    for _ in 0..50 {
        if outcome.up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        outcome = run(&check(Some("probe"), Some("postgres")), port).await;
    }
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
}

// ---------------------------------------------------------------- dns, sip, radius: UDP fakes

#[tokio::test]
async fn dns_answers_and_rcodes() {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = server.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        loop {
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            let mut reply = buf[..n].to_vec();
            let name_is = |name: &[u8]| reply[12..].starts_with(name);
            if name_is(b"\x04good\x07example\x00") {
                reply[2] |= 0x80;
                reply[7] = 1;
                reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
            } else {
                reply[2] |= 0x80;
                reply[3] = (reply[3] & 0xf0) | 3;
            }
            server.send_to(&reply, from).await.unwrap();
        }
    });
    let dns = |query: &str, expect_rcode| {
        spec(Kind::Dns(Dns {
            query: query.into(),
            record_type: 1,
            expect_rcode,
        }))
    };
    assert_up(&run(&dns("good.example", None), port).await);
    assert_down(
        &run(&dns("bad.example", None), port).await,
        "rcode NXDOMAIN",
    );
    assert_up(&run(&dns("bad.example", Some(Rcode::NxDomain)), port).await);
    assert_down(
        &run(&dns("good.example", Some(Rcode::NxDomain)), port).await,
        "rcode NOERROR, expected NXDOMAIN",
    );
    let mut aaaa = dns("good.example", None);
    if let Kind::Dns(d) = &mut aaaa.kind {
        d.record_type = 28;
    }
    assert_down(&run(&aaaa, port).await, "no answer of type 28");
    assert_down(
        &run(&dns("x", None), free_udp_port()).await,
        "port unreachable",
    );
}

#[tokio::test]
async fn sip_options() {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = server.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        loop {
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            assert!(request.starts_with("OPTIONS sip:"), "{request}");
            assert!(request.contains("\r\nCSeq: 1 OPTIONS\r\n"));
            let status = if request.starts_with("OPTIONS sip:busy") {
                486
            } else {
                200
            };
            server
                .send_to(b"SIP/2.0 100 Trying\r\n\r\n", from)
                .await
                .unwrap();
            let reply = format!("SIP/2.0 {status} Whatever\r\nCSeq: 1 OPTIONS\r\n\r\n");
            server.send_to(reply.as_bytes(), from).await.unwrap();
        }
    });
    let sip = |host: &str| {
        spec(Kind::Sip(Sip {
            host: Some(host.into()),
            statuses: vec![(200, 200)],
        }))
    };
    assert_up(&run(&sip("pbx.example"), port).await);
    assert_down(
        &run(&sip("busy.example"), port).await,
        "SIP status 486 not in 200",
    );
}

#[tokio::test]
async fn radius_access_request() {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = server.local_addr().unwrap().port();
    // Like a RADIUS server: checks the Message-Authenticator, recovers the password, and
    // answers signed with its secret.
    tokio::spawn(async move {
        let secret = b"testing123";
        let mut buf = [0u8; 4096];
        loop {
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            let request = buf[..n].to_vec();
            let mac_at = n - 16;
            let mut zeroed = request.clone();
            zeroed[mac_at..].fill(0);
            assert_eq!(request[mac_at - 2], 80, "Message-Authenticator last");
            assert_eq!(radius_wire::hmac_md5(secret, &zeroed), request[mac_at..]);
            let authenticator: [u8; 16] = request[4..20].try_into().unwrap();
            // User-Name "probe" then User-Password.
            let password_at = 20 + 2 + 5;
            let hidden =
                &request[password_at + 2..password_at + usize::from(request[password_at + 1])];
            let plain = radius_wire::hide_password(hidden, secret, &authenticator);
            // Hiding is its own inverse only for the first block, which is all "right" takes.
            let code = if plain.starts_with(b"right\0") { 2 } else { 3 };
            let mut reply = vec![code, request[1], 0, 20];
            reply.extend_from_slice(&authenticator);
            reply.extend_from_slice(secret);
            let digest = {
                use md5::{Digest, Md5};
                Md5::digest(&reply)
            };
            reply.truncate(20);
            reply[4..20].copy_from_slice(&digest);
            server.send_to(&reply, from).await.unwrap();
        }
    });
    let radius = |password: &str, secret: &[u8]| {
        spec(Kind::Radius(Radius {
            user: "probe".into(),
            password: password.into(),
            secret: Arc::from(secret),
        }))
    };
    let accept = run(&radius("right", b"testing123"), port).await;
    assert_up(&accept);
    assert_eq!(accept.detail, "Access-Accept");
    let reject = run(&radius("wrong", b"testing123"), port).await;
    assert_up(&reject);
    assert_eq!(reject.detail, "Access-Reject");
}

#[tokio::test]
async fn radius_with_the_wrong_secret_is_down() {
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
    assert_eq!((weighted.up, weighted.weight), (true, Some(5)));
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
