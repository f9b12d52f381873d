mod daemon;

use std::process::ExitCode;

use lvs_control::daemon::{Args, NoFlags};

const ABOUT: &str = "directord: owns the IPVS table: reconciles it from director.toml, runs \
                     real-server health checks, applies feedback weights";

fn main() -> ExitCode {
    let args = Args::<NoFlags>::parse_for("directord", ABOUT, None);
    lvs_control::daemon::main("directord", &args.config, args.check, daemon::run)
}
