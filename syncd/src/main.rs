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
    if let Err(code) = lvs_config::load_for_daemon("syncd", &args.config, args.check) {
        return code;
    }
    // The service loop lands with its issue (#7); refuse to pretend to run until then.
    eprintln!("syncd: only --check is available in this build");
    ExitCode::from(lvs_config::EX_UNAVAILABLE)
}
