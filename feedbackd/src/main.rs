mod daemon;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = lvs_control::cli::feedbackd();
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
