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
    /// Remove every instance's VIPs (and virtual-MAC macvlan) and exit: for the unit's
    /// ExecStopPost after an unclean stop. Does nothing when $SERVICE_RESULT is "success".
    #[arg(long, conflicts_with = "check")]
    release_vips: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.release_vips {
        return lvs_control::daemon::main("vrrpd", &args.config, false, daemon::release_vips);
    }
    lvs_control::daemon::main("vrrpd", &args.config, args.check, daemon::run)
}
