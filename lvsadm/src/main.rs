use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "lvsadm",
    version,
    about = "lvs-director's command line: ipvsadm-compatible table management and daemon status"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate director.toml and print what it describes; exit 78 (EX_CONFIG) when invalid
    CheckConfig {
        #[command(flatten)]
        config: lvs_config::ConfigArgs,
    },
    /// Convert a keepalived.conf, ldirectord.cf or `ipvsadm -Sn` save into director.toml
    Import {
        /// What FILE is
        #[arg(long = "from", value_enum)]
        from: ImportSource,
        /// Fail (exit 65) on any directive that has no equivalent
        #[arg(long)]
        strict: bool,
        /// Write here instead of stdout
        #[arg(short = 'o', long = "output", value_name = "OUT")]
        output: Option<std::path::PathBuf>,
        file: std::path::PathBuf,
    },
    /// Everything on one screen: VRRP, the IPVS table with health and weights, sync, feedback
    Status(Daemon),
    /// directord only: services, real servers, health and weights
    Table(Daemon),
    /// vrrpd: instances, states, priorities and counters
    Vrrp(Daemon),
    /// syncd: role, mirror table and counters
    Sync(Daemon),
    /// feedbackd: each agent's last reply and the weight derived from it
    Feedback(Daemon),
    /// keepalived's genhash: the MD5 digest of a page, as an http check's `digest` wants it
    Genhash(lvsadm::genhash::Args),
}

#[derive(Debug, clap::Args)]
struct Daemon {
    #[command(flatten)]
    config: lvs_config::ConfigArgs,
    /// Print the daemon's answer as JSON
    #[arg(long)]
    json: bool,
}

impl Daemon {
    /// Where the daemons' sockets are: the config's control.socket_dir, or the default.
    /// An operator halfway through editing the config still wants to see the daemons, so an
    /// invalid file is reported and its `socket_dir` used if it can be read at all.
    fn socket_dir(&self) -> std::path::PathBuf {
        let path = &self.config.path;
        let fallback = lvs_config::Control::default().socket_dir;
        match lvs_config::load(path) {
            Ok(config) => config.control.socket_dir,
            Err(lvs_config::ConfigError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                fallback
            }
            Err(e) => {
                let dir = std::fs::read_to_string(path)
                    .ok()
                    .and_then(|text| text.parse::<toml::Table>().ok())
                    .and_then(|table| {
                        table
                            .get("control")?
                            .get("socket_dir")?
                            .as_str()
                            .map(Into::into)
                    })
                    .unwrap_or(fallback);
                eprintln!(
                    "lvsadm: warning: the config is not valid (the daemons keep their last good \
                     one):\n{e}\nlvsadm: asking the daemons in {}",
                    dir.display()
                );
                dir
            }
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ImportSource {
    Keepalived,
    Ldirectord,
    Ipvsadm,
}

/// Words that select a clap subcommand; anything else is ipvsadm syntax.
const SUBCOMMANDS: &[&str] = &[
    "check-config",
    "import",
    "status",
    "table",
    "vrrp",
    "sync",
    "feedback",
    "genhash",
    "help",
];

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

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let subcommand = argv
        .get(1)
        .is_some_and(|a| SUBCOMMANDS.contains(&a.as_str()) || a == "--version");
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
        Command::Status(d) if !d.json => lvsadm::status::all(&d.socket_dir()),
        Command::Status(d) | Command::Table(d) => {
            lvsadm::status::directord(&d.socket_dir(), d.json)
        }
        Command::Vrrp(d) => lvsadm::status::vrrp(&d.socket_dir(), d.json),
        Command::Sync(d) => lvsadm::status::sync(&d.socket_dir(), d.json),
        Command::Feedback(d) => lvsadm::status::feedback(&d.socket_dir(), d.json),
        Command::Genhash(args) => lvsadm::genhash::run(&args),
    }
}
