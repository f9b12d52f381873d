//! ipvsadm-compatible front end: `lvsadm -A -t 192.0.2.1:80 -s rr`, `lvsadm -Ln`, ...

pub mod args;
pub mod conn;
pub mod list;
pub mod restore;

use std::io::{Read, Write};
use std::process::ExitCode;

use lvs_ipvs::{DaemonState, Error, IpvsClient};

use args::{Cmd, Invocation, UsageError};
use list::Entry;

/// ipvsadm's exit status for usage errors.
pub const EXIT_USAGE: u8 = 2;
/// Exit status for kernel errors while listing or restoring.
pub const EXIT_KERNEL: u8 = 1;
/// ipvsadm 1.31 returns -1 from main when the kernel refuses a table change (measured,
/// also for `-R`).
pub const EXIT_KERNEL_COMMAND: u8 = 255;

/// ipvsadm's usage, in lvsadm's name: printed on a usage error and ending `lvsadm --help`.
pub const USAGE: &str = "\
ipvsadm syntax:
  lvsadm -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags] [-o]
  lvsadm -D virtual-service
  lvsadm -C
  lvsadm -R
  lvsadm -S [-n]
  lvsadm -a|e virtual-service -r server-address [options]
  lvsadm -d virtual-service -r server-address
  lvsadm -L|l [virtual-service] [options]
  lvsadm -Z [virtual-service]
  lvsadm --set tcp tcpfin udp
  lvsadm --start-daemon {master|backup} --mcast-interface interface [--syncid sid] [...]
  lvsadm --stop-daemon {master|backup}
virtual-service: --tcp-service|-t addr:port, --udp-service|-u addr:port,
  --sctp-service addr:port, --fwmark-service|-f fwmark [-6]
";

fn kernel_fail(e: &Error) -> ExitCode {
    match e {
        Error::Kernel(k) => eprintln!("{}", k.message),
        other => eprintln!("{other}"),
    }
    ExitCode::from(EXIT_KERNEL)
}

fn usage_fail(e: &UsageError) -> ExitCode {
    eprintln!("{e}");
    ExitCode::from(EXIT_USAGE)
}

/// Runs an ipvsadm-style command line (without argv[0]).
pub fn run(argv: &[String]) -> ExitCode {
    let inv = match args::parse(argv) {
        Ok(inv) => inv,
        Err(e) => return usage_fail(&e),
    };
    match inv.cmd {
        Cmd::Help => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Cmd::Version => {
            println!("lvsadm {} (ipvsadm 1.31 syntax)", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    if inv.cmd == Cmd::List && inv.connections {
        return list_connections();
    }
    let mut client = match IpvsClient::connect() {
        Ok(c) => c,
        Err(e) => return kernel_fail(&e),
    };
    let result = match inv.cmd {
        Cmd::List => list(&mut client, &inv),
        Cmd::Save => save(&mut client),
        Cmd::Restore => return restore_stdin(&mut client),
        _ => match inv.request() {
            Some(req) => {
                return match client.request(&req) {
                    Ok(_) => ExitCode::SUCCESS,
                    Err(e) => {
                        kernel_fail(&e);
                        ExitCode::from(EXIT_KERNEL_COMMAND)
                    }
                };
            }
            None => unreachable!("every remaining command has a request"),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => kernel_fail(&e),
    }
}

fn read_table(client: &mut IpvsClient) -> Result<Vec<Entry>, Error> {
    let mut entries = Vec::new();
    for service in client.services()? {
        let dests = client.destinations(&service.key)?;
        entries.push(Entry { service, dests });
    }
    Ok(entries)
}

fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

fn list(client: &mut IpvsClient, inv: &Invocation) -> Result<(), Error> {
    if inv.timeout {
        let t = client.timeouts()?;
        emit(&format!(
            "Timeout (tcp tcpfin udp): {} {} {}\n",
            t.tcp.unwrap_or(0),
            t.tcp_fin.unwrap_or(0),
            t.udp.unwrap_or(0)
        ));
        return Ok(());
    }
    if inv.daemon_list {
        let mut out = String::new();
        let mut daemons = client.daemons()?;
        daemons.sort_by_key(|d| d.state == DaemonState::Backup);
        for d in daemons {
            out.push_str(&format!(
                "{} sync daemon (mcast={}, syncid={}",
                d.state.as_str(),
                d.mcast_ifn,
                d.syncid
            ));
            if let Some(v) = d.sync_maxlen {
                out.push_str(&format!(", maxlen={v}"));
            }
            if let Some(v) = d.mcast_group {
                out.push_str(&format!(", group={v}"));
            }
            if let Some(v) = d.mcast_port {
                out.push_str(&format!(", port={v}"));
            }
            if let Some(v) = d.mcast_ttl {
                out.push_str(&format!(", ttl={v}"));
            }
            out.push_str(")\n");
        }
        emit(&out);
        return Ok(());
    }
    if let Some(key) = &inv.key {
        let service = client.service(key)?;
        let mut dests = client.destinations(key)?;
        if !inv.format.nosort {
            dests.sort_by(list::cmp_dests);
        }
        emit(&list::list_one(&Entry { service, dests }, &inv.format));
        return Ok(());
    }
    let info = client.info()?;
    let mut entries = read_table(client)?;
    if !inv.format.nosort {
        list::sort(&mut entries);
    }
    emit(&list::list_all(&info, &entries, &inv.format));
    Ok(())
}

fn save(client: &mut IpvsClient) -> Result<(), Error> {
    let mut entries = read_table(client)?;
    list::sort(&mut entries);
    emit(&list::save(&entries));
    Ok(())
}

fn restore_stdin(client: &mut IpvsClient) -> ExitCode {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("cannot read standard input: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    let plan = match restore::parse(&input) {
        Ok(plan) => plan,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match restore::apply(client, &plan) {
        Ok(()) => ExitCode::SUCCESS,
        Err(restore::ApplyError::Io(e)) => kernel_fail(&e),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(EXIT_KERNEL_COMMAND)
        }
    }
}

/// `-L -c`: the kernel's connection table from /proc/net/ip_vs_conn, as ipvsadm shows it
/// with `-n`.
fn list_connections() -> ExitCode {
    match std::fs::read_to_string("/proc/net/ip_vs_conn") {
        Ok(text) => {
            emit(&conn::format(&text));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot read /proc/net/ip_vs_conn: {e}");
            ExitCode::from(EXIT_KERNEL)
        }
    }
}
