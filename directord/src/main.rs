use std::process::ExitCode;

use clap::Parser;

/// directord: owns the IPVS table: reconciles it from director.toml, runs real-server health checks.
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
    if let Err(code) = lvs_config::load_for_daemon("directord", &args.config, args.check) {
        return code;
    }
    // The service loop lands with its issue (#5); refuse to pretend to run until then.
    eprintln!("directord: only --check is available in this build");
    ExitCode::from(lvs_config::EX_UNAVAILABLE)
}
