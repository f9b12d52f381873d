mod daemon;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = lvs_control::cli::vrrpd();
    if args.own.release_vips {
        return lvs_control::daemon::main("vrrpd", &args.config, false, daemon::release_vips);
    }
    lvs_control::daemon::main("vrrpd", &args.config, args.check, daemon::run)
}
