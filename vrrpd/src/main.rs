mod daemon;

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
    lvs_control::daemon::main("vrrpd", &args.config, args.check, daemon::run)
}
