use std::process::ExitCode;

use clap::Parser;
use lvs_proto::directord::AdminState;
use lvsadm::cli::{Cli, Command, ImportSource, SUBCOMMANDS, VrrpAction};

/// sysexits.h EX_DATAERR: the input to import is malformed or, with --strict, not convertible.
const EX_DATAERR: u8 = 65;

fn import(
    from: ImportSource,
    strict: bool,
    output: Option<&std::path::Path>,
    file: &std::path::Path,
) -> ExitCode {
    use lvsadm::import::Source;
    let source = match from {
        ImportSource::Keepalived => Source::Keepalived,
        ImportSource::Ldirectord => Source::Ldirectord,
        ImportSource::Ipvsadm => Source::Ipvsadm,
    };
    match lvsadm::import::import(source, file, strict) {
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(EX_DATAERR)
        }
        Ok(imported) => {
            for unsupported in &imported.unsupported {
                eprintln!("{unsupported}");
            }
            match output {
                None => print!("{}", imported.toml),
                Some(path) => {
                    if let Err(e) = std::fs::write(path, &imported.toml) {
                        eprintln!("lvsadm: {}: {e}", path.display());
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
    }
}

fn admin(a: &lvsadm::cli::Admin, state: AdminState) -> ExitCode {
    lvsadm::status::admin(
        &lvsadm::cli::socket_dir(&a.config),
        &a.service,
        a.real,
        state,
    )
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let subcommand = argv.get(1).is_some_and(|a| {
        SUBCOMMANDS.contains(&a.as_str()) || ["--version", "--help", "-h"].contains(&a.as_str())
    });
    if !subcommand {
        return lvsadm::ipvsadm::run(&argv[1..]);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => lvsadm::check_config::run(&config),
        Command::Import {
            from,
            strict,
            output,
            file,
        } => import(from, strict, output.as_deref(), &file),
        Command::Status(d) if !d.json => lvsadm::status::all(
            &d.socket_dir(),
            d.needed().as_deref(),
            d.frr_pathspace.as_deref(),
        ),
        Command::Status(d) | Command::Table(d) => {
            lvsadm::status::directord(&d.socket_dir(), d.json)
        }
        Command::Vrrp(lvsadm::cli::Vrrp {
            action: None,
            daemon,
        }) => lvsadm::status::vrrp_with_frr(
            &daemon.socket_dir(),
            daemon.json,
            daemon.frr_pathspace.as_deref(),
        ),
        Command::Vrrp(lvsadm::cli::Vrrp {
            action: Some(action),
            ..
        }) => {
            let (target, forced) = match &action {
                VrrpAction::ForceBackup(t) => (t, true),
                VrrpAction::Release(t) => (t, false),
            };
            let socket_dir = lvsadm::cli::socket_dir(&target.config);
            lvsadm::status::force_backup(&socket_dir, &target.name, forced)
        }
        Command::Sync(d) => lvsadm::status::sync(&d.socket_dir(), d.json),
        Command::Feedback(d) => lvsadm::status::feedback(&d.socket_dir(), d.json),
        Command::Genhash(args) => lvsadm::genhash::run(&args),
        Command::Watch(watch) => {
            lvsadm::watch::run(&lvsadm::cli::socket_dir(&watch.config), watch.events)
        }
        Command::Drain(a) => admin(&a, AdminState::Drain),
        Command::Maint(a) => admin(&a, AdminState::Maint),
        Command::Enable(a) => admin(&a, AdminState::Enabled),
        Command::RoutingConfig {
            config,
            engine,
            asn,
        } => lvsadm::routing::run(&config, engine, asn),
        Command::Announce(a) => {
            let drain = matches!(a.action, lvsadm::cli::AnnounceAction::Drain);
            let code = lvsadm::routing::drain(&a.socket_dir(), a.vip, drain);
            if !(drain && a.wait) || code != ExitCode::SUCCESS {
                return code;
            }
            lvsadm::routing::wait_drained(&a.config, a.vip, a.timeout.get(), a.quiet.get())
        }
    }
}
