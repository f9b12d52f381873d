//! Real servers for the negotiate checks, each started on a free loopback port with its
//! configuration in a temporary directory, in the foreground, as a child of the test. A
//! missing program (scripts/install-deps installs them all) skips the test with the reason
//! printed, or fails it under `LVS_REQUIRE_LANES=1`.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

use super::{Daemon, free_tcp_port, free_udp_port, listens_while_running, wait_for_tcp};

/// A running peer: where it listens; the process and its files go away on drop.
pub struct Peer {
    pub port: u16,
    _daemon: Daemon,
    _dir: TempDir,
}

const REQUIRE_LANES: &str = "LVS_REQUIRE_LANES";

fn unavailable(what: &str, package: &str) -> Option<PathBuf> {
    let reason =
        format!("{what} is not installed (Debian package {package}, scripts/install-deps)");
    assert!(
        std::env::var(REQUIRE_LANES).as_deref() != Ok("1"),
        "real-peer lane required ({REQUIRE_LANES}=1) but unavailable: {reason}"
    );
    eprintln!("SKIPPED (real-peer lane): {reason}");
    None
}

/// The path of `program` on PATH or in the sbin directories daemons live in.
pub fn program(program: &str, package: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .or_else(|| unavailable(program, package))
}

/// Debian's python3 when it can import `module`: the packaged modules are installed for it,
/// not for another python3 that may come first on PATH.
fn python_with(module: &str, package: &str) -> Option<PathBuf> {
    let python = PathBuf::from("/usr/bin/python3");
    let found = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        Some(python)
    } else {
        unavailable(&format!("python module {module}"), package)
    }
}

/// A temporary directory other users can traverse: daemons that drop privileges for some
/// of their processes (dovecot's login processes) must reach their sockets in it.
fn workdir() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn write(path: &Path, text: &str) {
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

fn quiet(command: &mut Command) -> &mut Command {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
}

/// dnsmasq authoritative for `example`: good.example has an A record (192.0.2.1) and no
/// AAAA, any other name in example is NXDOMAIN, names outside it are REFUSED (no upstream).
pub fn dnsmasq() -> Option<Peer> {
    let dnsmasq = program("dnsmasq", "dnsmasq-base")?;
    let dir = workdir();
    let port = free_udp_port();
    let daemon = Daemon::spawn(
        quiet(&mut Command::new(dnsmasq))
            .args([
                "--no-daemon",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
            ])
            .arg(format!("--port={port}"))
            .args([
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--pid-file=",
            ])
            .args(["--user=root", "--local=/example/"])
            .arg("--host-record=good.example,192.0.2.1"),
    );
    Some(Peer {
        port,
        _daemon: daemon,
        _dir: dir,
    })
}

/// Runs a Python server script with the arguments port, user, password and a directory of
/// its own, and waits until it listens.
fn python_server(python: PathBuf, script: &str, user: &str, password: &str) -> Peer {
    let dir = workdir();
    let port = free_tcp_port();
    let daemon = Daemon::spawn(
        quiet(&mut Command::new(python))
            .args(["-c", script])
            .arg(port.to_string())
            .args([user, password])
            .arg(dir.path()),
    );
    wait_for_tcp(port);
    Peer {
        port,
        _daemon: daemon,
        _dir: dir,
    }
}

/// aiosmtpd (the stdlib smtpd's successor) offering AUTH PLAIN/LOGIN without TLS, accepting
/// only `user`/`password`.
pub fn smtp(user: &str, password: &str) -> Option<Peer> {
    let python = python_with("aiosmtpd", "python3-aiosmtpd")?;
    let script = r#"import asyncio, sys
from aiosmtpd.smtp import SMTP, AuthResult
port, user, password = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3].encode()
def authenticate(server, session, envelope, mechanism, data):
    # handled=False: aiosmtpd then answers a failure with 535 itself.
    return AuthResult(success=data.login == user and data.password == password, handled=False)
class Handler:
    pass
async def main():
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(Handler(), hostname="mx.example", authenticator=authenticate,
                     auth_require_tls=False),
        "127.0.0.1", port)
    await server.serve_forever()
asyncio.run(main())
"#;
    Some(python_server(python, script, user, password))
}

/// pyftpdlib with one account, `user`/`password`, and the banner "probe ftp ready"; a
/// failed login is answered at once rather than after its default 3 s penalty.
pub fn ftp(user: &str, password: &str) -> Option<Peer> {
    let python = python_with("pyftpdlib", "python3-pyftpdlib")?;
    let script = r#"import sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
port, user, password, root = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
authorizer = DummyAuthorizer()
authorizer.add_user(user, password, root)
FTPHandler.authorizer = authorizer
FTPHandler.banner = "probe ftp ready"
FTPHandler.auth_failed_timeout = 0
FTPServer(("127.0.0.1", port), FTPHandler).serve_forever()
"#;
    Some(python_server(python, script, user, password))
}

/// dovecot serving IMAP and POP3 in plaintext; every user's password is `password`.
pub struct Dovecot {
    pub imap: u16,
    pub pop3: u16,
    _daemon: Daemon,
    _dir: TempDir,
}

pub fn dovecot(password: &str) -> Option<Dovecot> {
    let dovecot = program("dovecot", "dovecot-imapd")?;
    // Caught in CI: a port picked free was taken by another test's server before dovecot
    // bound it, and dovecot, which binds all its listeners or none, exited. Such a start
    // is tried again on other ports.
    for _ in 0..3 {
        if let Some(started) = start_dovecot(&dovecot, password) {
            return Some(started);
        }
    }
    panic!("dovecot did not start on three pairs of free ports");
}

fn start_dovecot(dovecot: &std::path::Path, password: &str) -> Option<Dovecot> {
    let dir = workdir();
    let d = dir.path().display();
    let (imap, pop3) = (free_tcp_port(), free_tcp_port());
    let config = dir.path().join("dovecot.conf");
    write(
        &config,
        &format!(
            r#"base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/log
protocols = imap pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_failure_delay = 0
# Given, so no process resolves the machine's own name through DNS.
hostname = mail.example
default_login_user = nobody
default_internal_user = nobody
default_internal_group = nogroup
mail_location = maildir:{d}/mail/%u
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"#
        ),
    );
    let mut daemon = Daemon::spawn(
        quiet(&mut Command::new(dovecot))
            .arg("-F")
            .arg("-c")
            .arg(&config),
    );
    for port in [imap, pop3] {
        if !listens_while_running(port, &mut daemon) {
            let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
            eprintln!("dovecot on ports {imap} and {pop3} did not start:\n{log}");
            return None;
        }
    }
    Some(Dovecot {
        imap,
        pop3,
        _daemon: daemon,
        _dir: dir,
    })
}

/// slapd with one mdb database, suffix dc=example holding its own entry, and the rootdn
/// cn=probe,dc=example with `password`.
pub fn slapd(password: &str) -> Option<Peer> {
    let slapd = program("slapd", "slapd")?;
    let slapadd = program("slapadd", "slapd")?;
    let dir = workdir();
    let d = dir.path().display();
    std::fs::create_dir(dir.path().join("db")).unwrap();
    let config = dir.path().join("slapd.conf");
    write(
        &config,
        &format!(
            "include /etc/ldap/schema/core.schema\n\
             pidfile {d}/slapd.pid\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             database mdb\n\
             suffix \"dc=example\"\n\
             rootdn \"cn=probe,dc=example\"\n\
             rootpw {password}\n\
             directory {d}/db\n"
        ),
    );
    let ldif = dir.path().join("base.ldif");
    write(
        &ldif,
        "dn: dc=example\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n",
    );
    let added = quiet(&mut Command::new(slapadd))
        .arg("-f")
        .arg(&config)
        .arg("-l")
        .arg(&ldif)
        .status()
        .unwrap();
    assert!(added.success(), "slapadd failed");
    let port = free_tcp_port();
    let daemon = Daemon::spawn(
        quiet(&mut Command::new(slapd))
            .args(["-d", "0", "-f"])
            .arg(&config)
            .arg("-h")
            .arg(format!("ldap://127.0.0.1:{port}/")),
    );
    wait_for_tcp(port);
    Some(Peer {
        port,
        _daemon: daemon,
        _dir: dir,
    })
}

/// MariaDB with a fresh data directory; `user`@127.0.0.1 identified by `password`
/// (mysql_native_password, MariaDB's default) may use the database `app` only.
pub fn mariadb(user: &str, password: &str) -> Option<Peer> {
    let install = program(
        "mariadb-install-db",
        "mariadb-client-core and mariadb-server-core",
    )?;
    let mariadbd = program("mariadbd", "mariadb-server-core")?;
    let dir = workdir();
    let data = dir.path().join("data");
    let installed = quiet(&mut Command::new(install))
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args([
            "--user=root",
            "--skip-test-db",
            "--auth-root-authentication-method=normal",
            // Accounts by address only: no DNS lookup of this host or of clients.
            "--skip-name-resolve",
        ])
        .status()
        .unwrap();
    assert!(installed.success(), "mariadb-install-db failed");
    let init = dir.path().join("init.sql");
    write(
        &init,
        &format!(
            "CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}';\n\
             CREATE DATABASE app;\n\
             CREATE DATABASE other;\n\
             GRANT ALL ON app.* TO '{user}'@'127.0.0.1';\n"
        ),
    );
    let port = free_tcp_port();
    let d = dir.path().display();
    let daemon = Daemon::spawn(
        quiet(&mut Command::new(mariadbd))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--socket={d}/mysqld.sock"))
            .arg(format!("--pid-file={d}/mysqld.pid"))
            .arg(format!("--init-file={}", init.display()))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-networking=0",
                "--user=root",
                "--skip-name-resolve",
            ])
            .args(["--skip-log-bin", "--innodb-buffer-pool-size=16M"]),
    );
    wait_for_tcp(port);
    Some(Peer {
        port,
        _daemon: daemon,
        _dir: dir,
    })
}

/// FreeRADIUS with one client, 127.0.0.1 sharing `secret`, and one user in its files
/// module, `user` with the cleartext password `password`, checked by pap.
pub fn freeradius(secret: &str, user: &str, password: &str) -> Option<Peer> {
    let freeradius = program("freeradius", "freeradius")?;
    let dir = workdir();
    let d = dir.path().display();
    let port = free_udp_port();
    write(
        &dir.path().join("users"),
        &format!("{user} Cleartext-Password := \"{password}\"\n"),
    );
    write(
        &dir.path().join("radiusd.conf"),
        &format!(
            r#"prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
datarootdir = /usr/share
dictdir = /usr/share/freeradius
libdir = /usr/lib/freeradius
confdir = {d}
raddbdir = {d}
logdir = {d}
run_dir = {d}
radacctdir = {d}
pidfile = {d}/radiusd.pid
name = freeradius
max_request_time = 5
cleanup_delay = 1
max_requests = 64
log {{
  destination = stderr
}}
security {{
  allow_core_dumps = no
  reject_delay = 0
  status_server = no
}}
client loopback {{
  ipaddr = 127.0.0.1
  secret = {secret}
}}
modules {{
  pap {{
  }}
  files {{
    filename = {d}/users
  }}
}}
server default {{
  listen {{
    type = auth
    ipaddr = 127.0.0.1
    port = {port}
  }}
  authorize {{
    files
    pap
  }}
  authenticate {{
    pap
  }}
}}
"#
        ),
    );
    let daemon = Daemon::spawn(
        quiet(&mut Command::new(freeradius))
            .arg("-f")
            .arg("-d")
            .arg(dir.path()),
    );
    Some(Peer {
        port,
        _daemon: daemon,
        _dir: dir,
    })
}

/// SIPp as a UAS that answers every OPTIONS with "100 Trying" then `status` `reason`.
pub fn sipp(status: u16, reason: &str) -> Option<Peer> {
    let sipp = program("sipp", "sip-tester")?;
    let dir = workdir();
    let scenario = dir.path().join("options.xml");
    let response = |line: &str| {
        format!(
            "  <send>\n    <![CDATA[\n      SIP/2.0 {line}\n      [last_Via:]\n      [last_From:]\n      \
             [last_To:];tag=[pid]SIPpTag01[call_number]\n      [last_Call-ID:]\n      \
             [last_CSeq:]\n      Content-Length: 0\n\n    ]]>\n  </send>\n"
        )
    };
    write(
        &scenario,
        &format!(
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"answer OPTIONS\">\n  \
             <recv request=\"OPTIONS\"/>\n{}{}</scenario>\n",
            response("100 Trying"),
            response(&format!("{status} {reason}"))
        ),
    );
    let port = free_udp_port();
    let daemon = Daemon::spawn(
        quiet(&mut Command::new(sipp))
            .current_dir(dir.path())
            .arg("-sf")
            .arg(&scenario)
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-t", "u1"]),
    );
    Some(Peer {
        port,
        _daemon: daemon,
        _dir: dir,
    })
}
