mod daemon;

use std::process::ExitCode;

use clap::Parser;

/// syncd: IPVS connection sync in the kernel's wire format, with full resync.
#[derive(Debug, Parser)]
#[command(name = "syncd", version)]
struct Args {
    #[command(flatten)]
    config: lvs_config::ConfigArgs,
    /// Validate the config and exit
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LVS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let config = match lvs_config::load_for_daemon("syncd", &args.config, args.check) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("syncd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(daemon::run(config, args.config.path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("syncd: {e}");
            ExitCode::FAILURE
        }
    }
}
