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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => lvsadm::check_config::run(&config),
    }
}
