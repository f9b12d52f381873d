//! lvsadm's command line: the subcommands clap parses; any other first word is ipvsadm syntax
//! ([`crate::ipvsadm`]). The manual page and the shell completions are generated from here.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "lvsadm",
    version,
    about = "lvs-director's command line: ipvsadm-compatible table management and daemon status",
    after_help = crate::ipvsadm::USAGE
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate director.toml and print what it describes; exit 78 (EX_CONFIG) when invalid
    CheckConfig {
        #[command(flatten)]
        config: lvs_config::ConfigArgs,
    },
    /// Convert a keepalived.conf, ldirectord.cf or `ipvsadm -Sn` save into director.toml
    Import {
        /// What FILE is
        #[arg(long = "from", value_enum)]
        from: ImportSource,
        /// Fail (exit 65) on any directive that has no equivalent
        #[arg(long)]
        strict: bool,
        /// Write here instead of stdout
        #[arg(short = 'o', long = "output", value_name = "OUT")]
        output: Option<std::path::PathBuf>,
        file: std::path::PathBuf,
    },
    /// Everything on one screen: VRRP, the IPVS table with health and weights, sync, feedback;
    /// exits 69 while a daemon the config needs does not answer (a health check)
    Status(Daemon),
    /// directord only: services, real servers, health and weights
    Table(Daemon),
    /// vrrpd: instances, states, priorities and counters; `force-backup` and `release` for
    /// director maintenance
    Vrrp(Vrrp),
    /// syncd: role, mirror table and counters
    Sync(Daemon),
    /// feedbackd: each agent's last reply and the weight derived from it
    Feedback(Daemon),
    /// keepalived's genhash: the MD5 digest of a page, as an http check's `digest` wants it
    Genhash(crate::genhash::Args),
    /// Drain a real server of a service (its name or label): weight 0, its connections go on,
    /// no new ones; kept across reloads and restarts until `enable`
    Drain(Admin),
    /// Take a real server out of a service for maintenance (out of the table whatever its
    /// health); kept across reloads and restarts until `enable`
    Maint(Admin),
    /// Undo drain or maint: health and feedback decide again
    Enable(Admin),
    /// The routing engine's part of `[announce]`: FRR's prefix-lists, route-map and BFD profile
    /// (and with --asn the `router bgp` lines), or BIRD's kernel protocol, filter, BFD and BGP
    /// template, redistributing exactly the VIP routes vrrpd installs
    RoutingConfig {
        #[command(flatten)]
        config: lvs_config::ConfigArgs,
        #[arg(long, value_enum)]
        engine: crate::routing::Engine,
        /// FRR: the local AS of the `router bgp` block to redistribute in
        #[arg(long, value_name = "ASN")]
        asn: Option<u32>,
    },
    /// `[announce]` VIPs: `drain` withdraws (the router moves new flows to the other
    /// directors; established ones here go on while the router still sends them), `resume`
    /// lets vrrpd announce again while healthy. Every VIP when none is named; kept across
    /// vrrpd's restarts until resume
    Announce(AnnounceArgs),
    /// Every daemon's events as they happen (VRRP transitions, health changes, reloads, sync
    /// roles), one JSON line each after the daemon's name, until interrupted
    Watch(Watch),
}

#[derive(Debug, clap::Args)]
pub struct Admin {
    #[command(flatten)]
    pub config: lvs_config::ConfigArgs,
    /// The virtual server: its name, or its label as status shows it ("tcp 192.0.2.100:80")
    pub service: String,
    /// The real server, address:port as in the config
    pub real: std::net::SocketAddr,
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Vrrp {
    #[command(subcommand)]
    pub action: Option<VrrpAction>,
    #[command(flatten)]
    pub daemon: Daemon,
}

#[derive(Debug, Subcommand)]
pub enum VrrpAction {
    /// Give up mastership of an instance (or of every instance of a sync group) and stay
    /// backup, for director maintenance: a master leaves with priority 0, so the peer takes
    /// over at once. Kept in the state directory across restarts and reboots until `release`.
    /// With no other director the addresses are then held by nobody.
    ForceBackup(VrrpTarget),
    /// Undo force-backup: the election decides again (a backup takes over when no master is
    /// heard for Master_Down_Interval, or preempts a lower-priority master)
    Release(VrrpTarget),
}

#[derive(Debug, clap::Args)]
pub struct VrrpTarget {
    #[command(flatten)]
    pub config: lvs_config::ConfigArgs,
    /// A [[vrrp.instance]] or [[vrrp.sync_group]] name
    pub name: String,
}

#[derive(Debug, clap::Args)]
pub struct AnnounceArgs {
    #[command(flatten)]
    pub config: lvs_config::ConfigArgs,
    #[arg(value_enum)]
    pub action: AnnounceAction,
    /// One `[[announce.vip]]` address; all of them when absent
    pub vip: Option<std::net::IpAddr>,
    /// drain: after the withdrawal, wait until the flows here have moved or finished (the
    /// VIP's IPVS services hold no active connection, or, with connection sync, where the
    /// entries of flows served elsewhere count too, none of their packets arrived for
    /// --quiet), then report; exits 75 if --timeout passes first
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this long
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    pub timeout: lvs_config::values::Duration,
    /// With --wait: this long without a packet for the VIP counts as drained
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub quiet: lvs_config::values::Duration,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum AnnounceAction {
    Drain,
    Resume,
}

impl AnnounceArgs {
    pub fn socket_dir(&self) -> std::path::PathBuf {
        Daemon {
            config: self.config.clone(),
            json: false,
            frr_pathspace: None,
        }
        .socket_dir()
    }
}

#[derive(Debug, clap::Args)]
pub struct Watch {
    #[command(flatten)]
    pub config: lvs_config::ConfigArgs,
    /// Stop after this many events (a script waiting for the next one)
    #[arg(long, value_name = "N")]
    pub events: Option<usize>,
}

#[derive(Debug, clap::Args)]
pub struct Daemon {
    #[command(flatten)]
    pub config: lvs_config::ConfigArgs,
    /// Print the daemon's answer as JSON
    #[arg(long)]
    pub json: bool,
    /// The FRR instance (`vtysh -N NAME`) whose bgpd announces the `[announce]` VIPs; its
    /// view (neighbors, what each is sent) is shown beside vrrpd's when vtysh is installed
    #[arg(long, value_name = "NAME")]
    pub frr_pathspace: Option<String>,
}

impl Daemon {
    /// The daemons the config needs running; `None` when it cannot be read as valid.
    pub fn needed(&self) -> Option<Vec<&'static str>> {
        lvs_config::load(&self.config.path)
            .ok()
            .map(|config| crate::status::needed_daemons(&config))
    }

    /// Where the daemons' sockets are: [`socket_dir`].
    pub fn socket_dir(&self) -> std::path::PathBuf {
        socket_dir(&self.config)
    }
}

/// Where the daemons' sockets are: the config's control.socket_dir, or the default.
/// An operator halfway through editing the config still wants to see the daemons, so an
/// invalid file is reported and its `socket_dir` used if it can be read at all.
pub fn socket_dir(config: &lvs_config::ConfigArgs) -> std::path::PathBuf {
    let path = &config.path;
    let fallback = lvs_config::Control::default().socket_dir;
    match lvs_config::load(path) {
        Ok(config) => config.control.socket_dir,
        Err(lvs_config::ConfigError::Read { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            fallback
        }
        Err(e) => {
            let dir = std::fs::read_to_string(path)
                .ok()
                .and_then(|text| text.parse::<toml::Table>().ok())
                .and_then(|table| {
                    table
                        .get("control")?
                        .get("socket_dir")?
                        .as_str()
                        .map(Into::into)
                })
                .unwrap_or(fallback);
            eprintln!(
                "lvsadm: warning: the config is not valid (the daemons keep their last good \
                 one):\n{e}\nlvsadm: asking the daemons in {}",
                dir.display()
            );
            dir
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ImportSource {
    Keepalived,
    Ldirectord,
    Ipvsadm,
}

/// Words that select a clap subcommand; anything else is ipvsadm syntax.
pub const SUBCOMMANDS: &[&str] = &[
    "check-config",
    "import",
    "status",
    "table",
    "vrrp",
    "sync",
    "feedback",
    "genhash",
    "watch",
    "drain",
    "maint",
    "enable",
    "routing-config",
    "announce",
    "help",
];
