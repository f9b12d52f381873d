//! `lvsadm genhash` against keepalived's own genhash (the oracle), on the same page from the
//! same server on loopback: the same digest, and with -v the same dumps.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

fn lvsadm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lvsadm"))
        .arg("genhash")
        .args(args)
        .output()
        .unwrap()
}

/// keepalived's genhash, when installed (the test command installs keepalived).
fn genhash(args: &[&str]) -> Option<Output> {
    Command::new("genhash").args(args).output().ok()
}

/// The request's head, up to its blank line.
fn read_head(stream: &mut impl Read) -> Vec<u8> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    head
}

/// A server answering every request with `response`, then closing: no Date header, so
/// two fetches are byte for byte the same.
fn fixed_server(response: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            read_head(&mut stream);
            let _ = stream.write_all(response);
        }
    });
    port
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

// The digest line, and every dump genhash -v prints, are keepalived's; only the measured
// response time differs.
#[test]
fn same_digest_and_dumps_as_keepalived_genhash() {
    let port = fixed_server(
        b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: 31\r\n\r\n<html>\x01binary\xffand text</html>\n\n",
    );
    let port = port.to_string();
    let args = ["-s", "127.0.0.1", "-p", &port, "-u", "/index.html"];
    let ours = lvsadm(&args);
    assert!(ours.status.success(), "{ours:?}");
    // md5 of the 31 bytes of body, computed by hand with md5sum.
    let body = b"<html>\x01binary\xffand text</html>\n\n";
    assert_eq!(body.len(), 31);
    let mut md5sum = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    md5sum.stdin.take().unwrap().write_all(body).unwrap();
    let sum = String::from_utf8(md5sum.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(stdout(&ours).trim(), sum.split_whitespace().next().unwrap());

    let Some(theirs) = genhash(&args) else {
        eprintln!("keepalived's genhash is not installed; compared with md5sum only");
        return;
    };
    assert_eq!(stdout(&ours), stdout(&theirs));

    let verbose = [&args[..], &["-v"]].concat();
    let without_time = |out: Output| -> String {
        stdout(&out)
            .lines()
            .filter(|l| !l.starts_with("Global response time"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        without_time(lvsadm(&verbose)),
        without_time(genhash(&verbose).unwrap())
    );
}

// -V sets the Host header: a server that answers by name gives genhash and lvsadm genhash
// the same page for the same name.
#[test]
fn virtualhost_is_the_host_header() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let head = String::from_utf8_lossy(&read_head(&mut stream)).to_ascii_lowercase();
            let body = if head.contains("\r\nhost: www.example.com\r\n") {
                "named\n"
            } else {
                "default\n"
            };
            let _ = write!(stream, "HTTP/1.0 200 OK\r\n\r\n{body}");
        }
    });
    let port = port.to_string();
    let args = ["-s", "127.0.0.1", "-p", &port, "-u", "/"];
    let named = [&args[..], &["-V", "www.example.com"]].concat();
    let plain = stdout(&lvsadm(&args));
    let by_name = stdout(&lvsadm(&named));
    assert_ne!(plain, by_name);
    if let (Some(theirs_plain), Some(theirs_named)) = (genhash(&args), genhash(&named)) {
        assert_eq!(plain, stdout(&theirs_plain));
        assert_eq!(by_name, stdout(&theirs_named));
    }
}

#[test]
fn bad_command_lines_are_refused() {
    let refused = lvsadm(&["-s", "127.0.0.1", "-p", "1", "-u", "/"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("connect refused"));
    let no_port = lvsadm(&["-s", "127.0.0.1", "-u", "/"]);
    assert!(!no_port.status.success());
    let not_ip = lvsadm(&["-s", "localhost", "-p", "80", "-u", "/"]);
    assert!(!not_ip.status.success());
}

// -S: the page over TLS (openssl s_server -WWW serving a file) digests as genhash -S says.
#[test]
fn ssl_page_digests_as_keepalived_genhash() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("page.txt"), "served over TLS\n").unwrap();
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
        .args([
            "-subj",
            "/CN=localhost",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ])
        .current_dir(dir.path())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success());
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("openssl")
        .arg("s_server")
        .args(["-accept", &format!("127.0.0.1:{port}")])
        .args(["-cert", "cert.pem", "-key", "key.pem", "-WWW", "-quiet"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let port = port.to_string();
    let args = ["-S", "-s", "127.0.0.1", "-p", &port, "-u", "/page.txt"];
    let mut ours = lvsadm(&args);
    for _ in 0..50 {
        if ours.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        ours = lvsadm(&args);
    }
    let theirs = genhash(&args);
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(ours.status.success(), "{ours:?}");
    // md5sum of "served over TLS\n".
    assert_eq!(stdout(&ours).trim(), "347e5f6744f8664b57a55fc96c947517");
    if let Some(theirs) = theirs {
        assert_eq!(stdout(&ours), stdout(&theirs));
    }
}

// -t bounds the whole fetch, as the check's timeout bounds a probe: a server that takes the
// request and never answers (here: holds the connection open) fails with the check's
// reason once the time is up, not later and not never.
#[test]
fn a_silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let started = std::time::Instant::now();
    let out = lvsadm(&[
        "-s",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-u",
        "/",
        "-t",
        "1",
    ]);
    let took = started.elapsed();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("timeout after 1s"), "{stderr}");
    assert!(
        took >= std::time::Duration::from_secs(1) && took < std::time::Duration::from_secs(3),
        "{took:?}"
    );
}
