use std::process::ExitCode;

use clap::Parser;

/// feedbackd: real-server load agent (--agent) and director-side weight controller.
#[derive(Debug, Parser)]
#[command(name = "feedbackd", version)]
struct Args {
    #[command(flatten)]
    config: lvs_config::ConfigArgs,
    /// Validate the config and exit
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(code) = lvs_config::load_for_daemon("feedbackd", &args.config, args.check) {
        return code;
    }
    // The service loop lands with its issue (#8); refuse to pretend to run until then.
    eprintln!("feedbackd: only --check is available in this build");
    ExitCode::from(lvs_config::EX_UNAVAILABLE)
}
