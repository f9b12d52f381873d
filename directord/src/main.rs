mod daemon;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = lvs_control::cli::directord();
    lvs_control::daemon::main("directord", &args.config, args.check, daemon::run)
}
