mod daemon;

use std::process::ExitCode;

use clap::Parser;

/// syncd: IPVS connection sync in the kernel's wire format, with full resync.
#[derive(Debug, Parser)]
#[command(name = "syncd", version)]
struct Args {
    #[command(flatten)]
    config: lvs_config::ConfigArgs,
    /// Validate the config and exit
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    lvs_control::daemon::main("syncd", &args.config, args.check, daemon::run)
}
