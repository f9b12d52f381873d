mod daemon;

use std::process::ExitCode;

use clap::Parser;

/// directord: owns the IPVS table: reconciles it from director.toml, runs real-server health
/// checks, applies feedback weights.
#[derive(Debug, Parser)]
#[command(name = "directord", version)]
struct Args {
    #[command(flatten)]
    config: lvs_config::ConfigArgs,
    /// Validate the config and exit
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    lvs_control::daemon::main("directord", &args.config, args.check, daemon::run)
}
