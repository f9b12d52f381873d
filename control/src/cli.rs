//! Every daemon's command line in one place: the binaries parse it, and the manual pages and
//! shell completions are generated from the same definitions.

use crate::daemon::{Args, NoFlags};

pub const VRRPD_ABOUT: &str =
    "vrrpd: VRRPv2/v3 election between directors; the master holds the virtual IPs";

pub const DIRECTORD_ABOUT: &str = "directord: owns the IPVS table: reconciles it from \
                                   director.toml, runs real-server health checks, applies \
                                   feedback weights";

pub const SYNCD_ABOUT: &str =
    "syncd: IPVS connection sync in the kernel's wire format, with full resync";

pub const FEEDBACKD_ABOUT: &str = "feedbackd: on a director, turns real-server load reports \
                                   into IPVS weights (through directord); with --agent, reports \
                                   this real server's load in haproxy's agent-check protocol";

/// Said at the end of every daemon's `--help` and manual page.
pub const DAEMON_AFTER_HELP: &str = "\
Signals:
  SIGHUP   reload the config file (a bad file is refused and the running config stays)
  SIGTERM  stop
Environment:
  LVS_DIRECTOR_CONFIG  the config file when --config is not given
  LVS_LOG              log filter (tracing env-filter syntax: info, debug, vrrpd=trace); default info
Exit status:
  0   stopped on SIGTERM/SIGINT, or --check found the config valid
  1   a fatal error (the reason is the last line on stderr)
  2   a usage error on the command line
  78  the config is invalid (EX_CONFIG); every problem is printed at file:line:column";

pub const FEEDBACKD_AFTER_HELP: &str = "\
Signals:
  SIGHUP   reload the config file (a bad file is refused and the running config stays)
  SIGTERM  stop
With --agent, operator overrides besides [agent] override_file:
  SIGUSR1  drain: replies say \"drain\" (existing connections stay, no new ones)
  SIGUSR2  lift SIGUSR1's drain: back to the measured reply (or the override file's)
  The stronger of the two wins: the file's maint or down/fail/stopped beats a signalled drain,
  a signalled drain beats the file's ready or none. A reload keeps the signalled drain, a
  restart forgets it. Without --agent, SIGUSR1 and SIGUSR2 are logged and ignored.
Environment:
  LVS_DIRECTOR_CONFIG  the config file when --config is not given
  LVS_LOG              log filter (tracing env-filter syntax); default info
Exit status:
  0   stopped on SIGTERM/SIGINT, or --check found the config valid
  1   a fatal error (the reason is the last line on stderr)
  2   a usage error on the command line
  78  the config is invalid (EX_CONFIG)";

/// vrrpd's own flags, after [`Args`]' `--config` and `--check`.
#[derive(Debug, clap::Args)]
pub struct VrrpdFlags {
    /// Remove every instance's VIPs (and virtual-MAC macvlan) and exit: for the unit's
    /// ExecStopPost after an unclean stop. Does nothing when $SERVICE_RESULT is "success".
    #[arg(long, conflicts_with = "check")]
    pub release_vips: bool,
}

/// feedbackd's own flag, after [`Args`]' `--config` and `--check`.
#[derive(Debug, clap::Args)]
pub struct FeedbackdFlags {
    /// Run the agent (the [agent] section) instead of the director-side poller
    #[arg(long)]
    pub agent: bool,
}

pub fn vrrpd() -> Args<VrrpdFlags> {
    Args::parse_for("vrrpd", VRRPD_ABOUT, Some(DAEMON_AFTER_HELP))
}

pub fn directord() -> Args<NoFlags> {
    Args::parse_for("directord", DIRECTORD_ABOUT, Some(DAEMON_AFTER_HELP))
}

pub fn syncd() -> Args<NoFlags> {
    Args::parse_for("syncd", SYNCD_ABOUT, Some(DAEMON_AFTER_HELP))
}

pub fn feedbackd() -> Args<FeedbackdFlags> {
    Args::parse_for("feedbackd", FEEDBACKD_ABOUT, Some(FEEDBACKD_AFTER_HELP))
}

/// Each daemon's clap command, by name, for the manual pages and completions.
pub fn daemon_commands() -> Vec<clap::Command> {
    vec![
        Args::<VrrpdFlags>::command_for("vrrpd", VRRPD_ABOUT, Some(DAEMON_AFTER_HELP)),
        Args::<NoFlags>::command_for("directord", DIRECTORD_ABOUT, Some(DAEMON_AFTER_HELP)),
        Args::<NoFlags>::command_for("syncd", SYNCD_ABOUT, Some(DAEMON_AFTER_HELP)),
        Args::<FeedbackdFlags>::command_for(
            "feedbackd",
            FEEDBACKD_ABOUT,
            Some(FEEDBACKD_AFTER_HELP),
        ),
    ]
}
