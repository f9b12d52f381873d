//! director.toml: the one file every lvs-director daemon reads.
//!
//! Each daemon reads its own sections but validates the whole file, so a config that one daemon
//! accepts is never refused by another. [`load`] returns either a fully validated [`Config`] or
//! every problem found, each at its file:line:column.

pub mod announce;
pub mod bfd;
pub mod cli;
pub mod diagnostic;
pub mod model;
pub mod reference;
pub mod reparse;
mod shape;
mod validate;
pub mod values;

use std::fmt;
use std::path::{Path, PathBuf};

pub use announce::{Announce, AnnounceVip, Community};
pub use bfd::{Bfd, BfdAuthType, BfdAuthentication, BfdSession, TrackBfd};
pub use diagnostic::{Diagnostic, KeyPath, Segment};
pub use model::*;
pub use reparse::{BlockIndex, Reparsed};
pub use validate::parse_digest;
pub use values::{
    AgentReport, CheckType, Duration, Family, Forwarding, GROUP_RANGE_MAX, GroupMember,
    InitialState, Netmask, OnFailure, Percent, Protocol, RouteType, Scheduler, Scope, ServiceFlag,
    UnknownName,
};

/// Where the daemons look when neither `--config` nor the environment says otherwise.
pub const DEFAULT_PATH: &str = "/etc/lvs-director/director.toml";
/// Overrides [`DEFAULT_PATH`]; `--config` overrides both.
pub const ENV_VAR: &str = "LVS_DIRECTOR_CONFIG";
/// sysexits.h EX_CONFIG: what a daemon or `lvsadm check-config` exits with on a bad config.
pub const EX_CONFIG: i32 = 78;

/// The `--config` option, shared by every binary of the suite.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// Path of director.toml
    #[arg(long = "config", short = 'f', env = ENV_VAR, default_value = DEFAULT_PATH, value_name = "FILE")]
    pub path: PathBuf,
}

impl ConfigArgs {
    pub fn load(&self) -> Result<Config, ConfigError> {
        load(&self.path)
    }
}

#[derive(Debug)]
pub enum ConfigError {
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    Invalid(Vec<Diagnostic>),
}

impl ConfigError {
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Invalid(diagnostics) => diagnostics,
            ConfigError::Read { .. } => &[],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, source } => {
                write!(f, "{}: cannot read config: {source}", path.display())
            }
            ConfigError::Invalid(diagnostics) => {
                for (i, diagnostic) in diagnostics.iter().enumerate() {
                    if i > 0 {
                        f.write_str("\n")?;
                    }
                    write!(f, "{diagnostic}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { source, .. } => Some(source),
            ConfigError::Invalid(_) => None,
        }
    }
}

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Reads `path` again for a daemon running `running`: as [`load`], parsing only the
/// `[[virtual_server]]` blocks that changed (see [`reparse`]); says how many when it could.
pub fn reload(path: &Path, running: &Config) -> (Result<Config, ConfigError>, Option<Reparsed>) {
    match std::fs::read_to_string(path) {
        Ok(text) => reparse::reparse(&text, &path.display().to_string(), running),
        Err(source) => (
            Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            }),
            None,
        ),
    }
}

/// Parses and validates config text; `origin` names it in diagnostics.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let config: Config = toml::from_str(text).map_err(|e| {
        // serde stops at the first error; the file may hold more, and an operator fixing
        // them wants all of them at once.
        let mut found = shape::errors(text);
        if found.is_empty() {
            let offset = e.span().map_or(0, |span| span.start);
            found.push((offset, e.message().trim_end().replace('\n', "; ")));
        }
        ConfigError::Invalid(Diagnostic::at_offsets(origin, text, found))
    })?;
    let issues = validate::validate(&config);
    if issues.is_empty() {
        let mut config = expand_groups(config);
        config.blocks = reparse::index(text, &config);
        return Ok(config);
    }
    let locator = diagnostic::Locator::new(text)
        .expect("text that deserialized must parse again for locating");
    let located = issues
        .into_iter()
        .map(|issue| (locator.span(&issue.path).start, issue.message));
    Err(ConfigError::Invalid(Diagnostic::at_offsets(
        origin, text, located,
    )))
}

/// One service per member of each virtual-server group, in the block's place: every daemon
/// sees plain services; `group_of` says which block each came from, so the checks see one
/// group.
fn expand_groups(mut config: Config) -> Config {
    if config.virtual_servers.iter().all(|vs| vs.group.is_empty()) {
        return config;
    }
    let mut expanded = Vec::with_capacity(config.virtual_servers.len());
    for (block, mut vs) in std::mem::take(&mut config.virtual_servers)
        .into_iter()
        .enumerate()
    {
        let members = std::mem::take(&mut vs.group);
        if members.is_empty() {
            expanded.push(vs);
            continue;
        }
        vs.group_of = Some(block);
        for service in members.into_iter().flat_map(GroupMember::expand) {
            let mut member = vs.clone();
            match service {
                Ok(address) => member.address = Some(address),
                Err(mark) => member.fwmark = Some(mark),
            }
            expanded.push(member);
        }
    }
    config.virtual_servers = expanded;
    config
}

/// sysexits.h EX_UNAVAILABLE.
pub const EX_UNAVAILABLE: u8 = 69;

/// The start of every daemon: load and validate the whole file. On a bad config it prints every
/// diagnostic and gives the exit code (EX_CONFIG); with `check_only` it reports success and
/// gives exit code 0, so the caller stops either way.
pub fn load_for_daemon(
    daemon: &str,
    args: &ConfigArgs,
    check_only: bool,
) -> Result<Config, std::process::ExitCode> {
    match args.load() {
        Err(error) => {
            // Formatted first: stderr is unbuffered, and writing the diagnostics piecewise cost
            // eight write(2)s each (0.4 s for 37,298 of them).
            let text = error.to_string();
            eprintln!("{text}");
            Err(std::process::ExitCode::from(EX_CONFIG as u8))
        }
        Ok(_) if check_only => {
            println!("{daemon}: {} is valid", args.path.display());
            Err(std::process::ExitCode::SUCCESS)
        }
        Ok(config) => Ok(config),
    }
}
