mod daemon;

use std::process::ExitCode;

use lvs_control::daemon::Args;

const ABOUT: &str = "feedbackd: on a director, turns real-server load reports into IPVS weights \
                     (through directord); with --agent, reports this real server's load in \
                     haproxy's agent-check protocol";

/// feedbackd's own flag, after [`Args`]' `--config` and `--check`.
#[derive(Debug, clap::Args)]
struct Flags {
    /// Run the agent (the [agent] section) instead of the director-side poller
    #[arg(long)]
    agent: bool,
}

const SIGNALS: &str = "\
Signals:
  SIGHUP   reload the config file (a bad file is refused and the running config stays)
  SIGTERM  stop
With --agent, operator overrides besides [agent] override_file:
  SIGUSR1  drain: replies say \"drain\" (existing connections stay, no new ones)
  SIGUSR2  lift SIGUSR1's drain: back to the measured reply (or the override file's)
  The stronger of the two wins: the file's maint or down/fail/stopped beats a signalled drain,
  a signalled drain beats the file's ready or none. A reload keeps the signalled drain, a
  restart forgets it. Without --agent, SIGUSR1 and SIGUSR2 are logged and ignored.";

fn main() -> ExitCode {
    let args = Args::<Flags>::parse_for("feedbackd", ABOUT, Some(SIGNALS));
    let agent = args.own.agent;
    lvs_control::daemon::init_logging();
    let config = match lvs_config::load_for_daemon("feedbackd", &args.config, args.check) {
        Ok(config) => config,
        Err(code) => return code,
    };
    lvs_control::daemon::raise_fd_limit();
    let runtime = match lvs_control::daemon::runtime("feedbackd") {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    // Once per process, not per run: a reload runs again on this runtime, and what a run
    // spawned would pile up.
    let _runtime = runtime.enter();
    daemon::spawn_watchdog();
    if !agent {
        daemon::director::refuse_agent_signals();
    }
    let mut config = config;
    // SIGHUP ends a run; the loop re-reads the file and runs again (a bad file keeps the old one).
    let result = loop {
        let run = if agent {
            match config.agent.clone() {
                Some(agent) => runtime.block_on(daemon::agent::run(&config, agent)),
                None => Err(feedbackd::error::Error::NoAgentSection),
            }
        } else {
            match config.feedback.clone() {
                Some(feedback) => runtime.block_on(daemon::director::run(config.clone(), feedback)),
                None => Err(feedbackd::error::Error::NoFeedbackSection),
            }
        };
        match run {
            Ok(daemon::Exit::Reload) => match lvs_config::load(&args.config.path) {
                Ok(new) => {
                    tracing::info!("reloaded {}", args.config.path.display());
                    config = new;
                }
                Err(e) => tracing::error!("reload refused, keeping the running config:\n{e}"),
            },
            Ok(daemon::Exit::Terminate) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => lvs_control::daemon::fatal("feedbackd", &e.to_string()),
    }
}
