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
}

/// Words that select a clap subcommand; anything else is ipvsadm syntax.
const SUBCOMMANDS: &[&str] = &["check-config", "help"];

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
    }
}
