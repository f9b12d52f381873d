mod daemon;

use std::process::ExitCode;

use lvs_control::daemon::{Args, NoFlags};

const ABOUT: &str = "syncd: IPVS connection sync in the kernel's wire format, with full resync";

fn main() -> ExitCode {
    let args = Args::<NoFlags>::parse_for("syncd", ABOUT, None);
    lvs_control::daemon::main("syncd", &args.config, args.check, daemon::run)
}
