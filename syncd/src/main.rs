mod daemon;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = lvs_control::cli::syncd();
    lvs_control::daemon::main("syncd", &args.config, args.check, daemon::run)
}
