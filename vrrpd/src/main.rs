mod daemon;

use std::process::ExitCode;

use lvs_control::daemon::Args;

const ABOUT: &str = "vrrpd: VRRPv2/v3 election between directors; the master holds the virtual IPs";

/// vrrpd's own flags, after [`Args`]' `--config` and `--check`.
#[derive(Debug, clap::Args)]
struct Flags {
    /// Remove every instance's VIPs (and virtual-MAC macvlan) and exit: for the unit's
    /// ExecStopPost after an unclean stop. Does nothing when $SERVICE_RESULT is "success".
    #[arg(long, conflicts_with = "check")]
    release_vips: bool,
}

fn main() -> ExitCode {
    let args = Args::<Flags>::parse_for("vrrpd", ABOUT, None);
    if args.own.release_vips {
        return lvs_control::daemon::main("vrrpd", &args.config, false, daemon::release_vips);
    }
    lvs_control::daemon::main("vrrpd", &args.config, args.check, daemon::run)
}
