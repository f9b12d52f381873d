use std::process::ExitCode;

use clap::Parser;

/// vrrpd: VRRPv2/v3 election between directors; the master holds the virtual IPs.
#[derive(Debug, Parser)]
#[command(name = "vrrpd", version)]
struct Args {
    #[command(flatten)]
    config: lvs_config::ConfigArgs,
    /// Validate the config and exit
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(code) = lvs_config::load_for_daemon("vrrpd", &args.config, args.check) {
        return code;
    }
    // The service loop lands with its issue (#6); refuse to pretend to run until then.
    eprintln!("vrrpd: only --check is available in this build");
    ExitCode::from(lvs_config::EX_UNAVAILABLE)
}
