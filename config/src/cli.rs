//! Every daemon's command line in one place: the binaries parse it, and the manual pages and
//! shell completions are generated from the same definitions.

/// The command line of every daemon: `--config`, `--check`, then the daemon's own flags `X`
/// (most have none: [`NoFlags`]). One definition, so the four cannot drift apart.
#[derive(Debug, clap::Parser)]
#[command(version)]
pub struct Args<X: clap::Args = NoFlags> {
    #[command(flatten)]
    pub config: crate::ConfigArgs,
    /// Validate the config and exit
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub own: X,
}

/// Flags of a daemon that has none beyond [`Args`].
#[derive(Debug, clap::Args)]
pub struct NoFlags {}

impl<X: clap::Args> Args<X> {
    /// The process's arguments, or exit with clap's usage error. `name` and `about` head
    /// `--help` (the derive would take lvs-config's), `after_help` ends it.
    pub fn parse_for(
        name: &'static str,
        about: &'static str,
        after_help: Option<&'static str>,
    ) -> Self {
        Self::try_parse_for(name, about, after_help, std::env::args_os())
            .unwrap_or_else(|e| e.exit())
    }

    /// The daemon's command line as clap describes it: what `--help`, the manual page and the
    /// shell completions are made of.
    pub fn command_for(
        name: &'static str,
        about: &'static str,
        after_help: Option<&'static str>,
    ) -> clap::Command {
        let mut command = <Self as clap::CommandFactory>::command()
            .name(name)
            .bin_name(name)
            .about(about)
            .version(env!("CARGO_PKG_VERSION"));
        if let Some(text) = after_help {
            command = command.after_help(text);
        }
        command
    }

    /// [`Args::parse_for`] on given arguments (the program's name first).
    pub fn try_parse_for<I, T>(
        name: &'static str,
        about: &'static str,
        after_help: Option<&'static str>,
        args: I,
    ) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Self::command_for(name, about, after_help).try_get_matches_from(args)?;
        <Self as clap::FromArgMatches>::from_arg_matches(&matches)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Args)]
    struct Own {
        #[arg(long, conflicts_with = "check")]
        release: bool,
    }

    #[test]
    fn every_daemon_parses_the_same_arguments_plus_its_own() {
        let parse = |line: &[&str]| Args::<Own>::try_parse_for("testd", "about testd", None, line);
        let args = parse(&["testd", "-f", "/x.toml", "--check"]).unwrap();
        assert_eq!(
            (args.config.path.to_str(), args.check),
            (Some("/x.toml"), true)
        );
        assert!(!args.own.release);
        assert!(parse(&["testd", "--release"]).unwrap().own.release);
        // The daemon's own flags may refer to the shared ones.
        assert!(parse(&["testd", "--check", "--release"]).is_err());
        assert!(parse(&["testd", "--agent"]).is_err());
        let plain = Args::<NoFlags>::try_parse_for("testd", "about testd", None, ["testd"]);
        assert!(!plain.unwrap().check);
        let help = Args::<NoFlags>::try_parse_for(
            "testd",
            "about testd",
            Some("Signals: none"),
            ["testd", "--help"],
        )
        .unwrap_err()
        .to_string();
        assert!(
            help.starts_with("about testd\n\nUsage: testd [OPTIONS]"),
            "{help}"
        );
        assert!(
            help.contains("--config <FILE>") && help.contains("Signals: none"),
            "{help}"
        );
        let version = Args::<NoFlags>::try_parse_for("testd", "", None, ["testd", "--version"]);
        assert_eq!(
            version.unwrap_err().to_string(),
            format!("testd {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}
