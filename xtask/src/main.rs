//! `cargo run -p xtask -- man DIR | completions DIR`: the manual pages and shell completions,
//! generated from the clap definitions the binaries parse and from the config model, so they
//! cannot drift from what the programs accept. `make deb` stages them into the package.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "lvs-director's build-time tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Write lvsadm.8, vrrpd.8, directord.8, syncd.8, feedbackd.8 and director.toml.5 to DIR
    Man { dir: PathBuf },
    /// Write bash, zsh and fish completions of every program to DIR/{bash,zsh,fish}
    Completions { dir: PathBuf },
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Every program: lvsadm and the four daemons.
fn commands() -> Vec<clap::Command> {
    let mut all = vec![lvsadm::cli::Cli::command()];
    all.extend(lvs_config::cli::daemon_commands());
    all
}

/// What every daemon's page says besides its options.
const DAEMON_SECTIONS: &str = r#".SH FILES
.TP
.I /etc/lvs-director/director.toml
The configuration, shared by every daemon; see
.BR director.toml (5).
.TP
.I /run/lvs-director/<daemon>.sock
The control socket
.B lvsadm
asks (the directory is
.B [control] socket_dir\fR).
.SH NOTES
Each daemon runs under its systemd unit (\fB<daemon>.service\fR), which restarts it on
failure but not after exit status 78 (an invalid config). \fBsystemctl reload\fR checks the
file with \fB\-\-check\fR, fails and says why when it is invalid, and otherwise sends SIGHUP.
A daemon given an invalid file on reload keeps its last good config.
A restart or crash never flushes the IPVS table or a healthy master's virtual addresses.
.SS Rolling upgrade
Upgrade the backup director first, then hand the master's VIPs over with
\fBlvsadm vrrp force\-backup\fR \fIINSTANCE\fR (or stop its \fBvrrpd\fR; either way they move to
the upgraded backup after its skew time, with the connection table that \fBsyncd\fR kept
there), upgrade it, restart its daemons, and \fBlvsadm vrrp release\fR \fIINSTANCE\fR: with
preemption it takes the VIPs back after its \fBpreempt_delay\fR. A forced backup stays backup
across restarts and reboots until released. The whole procedure, exit codes and environment:
\fI/usr/share/doc/lvs\-director/operations.md\fR; coming from keepalived or ldirectord:
\fImigration.md\fR there.
.SH SEE ALSO
.BR director.toml (5),
.BR lvsadm (8),
.BR vrrpd (8),
.BR directord (8),
.BR syncd (8),
.BR feedbackd (8),
.BR ipvsadm (8),
.BR keepalived (8)
"#;

const LVSADM_SECTIONS: &str = r#".SH IPVSADM SYNTAX
Any first word that is not a subcommand is read as an
.BR ipvsadm (8)
command line, with ipvsadm 1.31's options, output and exit codes:
.B lvsadm \-Ln
lists the table as
.B ipvsadm \-Ln
does. Changes made this way to services directord owns are undone by its next reconcile.
.SH MIGRATION
.B lvsadm import \-\-from keepalived|ldirectord|ipvsadm FILE
converts a keepalived.conf, an ldirectord.cf or an
.B ipvsadm \-Sn
save into director.toml, and lists on stderr each directive that has no equivalent
(with \fB\-\-strict\fR, any such directive fails the import with exit status 65).
.SH EXIT STATUS
0 on success; 1 when the kernel refuses a table change or a daemon does not answer;
69 (EX_UNAVAILABLE) when
.B status
finds a daemon the config needs not answering;
2 on a usage error; 65 when an import's input is malformed; 78 (EX_CONFIG) when
.B check\-config
finds the config invalid; 255 as ipvsadm when the kernel refuses a change made with ipvsadm syntax.
.SH ENVIRONMENT
.TP
.B LVS_DIRECTOR_CONFIG
The config file when \fB\-\-config\fR is not given.
.SH SEE ALSO
.BR director.toml (5),
.BR vrrpd (8),
.BR directord (8),
.BR syncd (8),
.BR feedbackd (8),
.BR ipvsadm (8)
"#;

fn man_page(command: &clap::Command) -> std::io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(command.clone())
        .section("8")
        .source(format!("lvs-director {VERSION}"))
        .manual("System Administration");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    if command.get_subcommands().next().is_some() {
        man.render_subcommands_section(&mut out)?;
    }
    // The daemons' after-help (signals, environment, exit status) as plain text.
    if let Some(text) = command
        .get_after_help()
        .map(ToString::to_string)
        .filter(|t| !t.is_empty())
    {
        out.extend_from_slice(b".SH \"SIGNALS, ENVIRONMENT AND EXIT STATUS\"\n.nf\n");
        for line in text.lines() {
            out.extend_from_slice(roff_line(line).as_bytes());
            out.push(b'\n');
        }
        out.extend_from_slice(b".fi\n");
    }
    let extra = if command.get_name() == "lvsadm" {
        LVSADM_SECTIONS
    } else {
        DAEMON_SECTIONS
    };
    out.extend_from_slice(extra.as_bytes());
    man.render_version_section(&mut out)?;
    Ok(out)
}

/// A line of preformatted text: backslashes escaped, a leading dot or quote made literal.
fn roff_line(line: &str) -> String {
    let escaped = line.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

fn write_man(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for command in commands() {
        // lvsadm's help text ends with its ipvsadm usage: the page has a section of its own.
        let command = if command.get_name() == "lvsadm" {
            command.after_help("")
        } else {
            command
        };
        let path = dir.join(format!("{}.8", command.get_name()));
        std::fs::write(&path, man_page(&command)?)?;
        written.push(path);
        // lvsadm-import(8) and the others the SUBCOMMANDS section names.
        for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
            let name = format!("{}-{}", command.get_name(), sub.get_name());
            let page = clap_mangen::Man::new(sub.clone().name(name.clone()).bin_name(format!(
                "{} {}",
                command.get_name(),
                sub.get_name()
            )))
            .section("8")
            .source(format!("lvs-director {VERSION}"))
            .manual("System Administration");
            let mut out = Vec::new();
            page.render(&mut out)?;
            let path = dir.join(format!("{name}.8"));
            std::fs::write(&path, out)?;
            written.push(path);
        }
    }
    let path = dir.join("director.toml.5");
    std::fs::write(&path, lvs_config::reference::man_page(VERSION))?;
    written.push(path);
    Ok(written)
}

fn write_completions(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let shell_dir = dir.join(shell.to_string());
        std::fs::create_dir_all(&shell_dir)?;
        for mut command in commands() {
            let name = command.get_name().to_owned();
            written.push(clap_complete::generate_to(
                shell,
                &mut command,
                &name,
                &shell_dir,
            )?);
        }
    }
    Ok(written)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.task {
        Task::Man { dir } => write_man(dir),
        Task::Completions { dir } => write_completions(dir),
    };
    match result {
        Ok(paths) => {
            for path in paths {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cargo tree -p PACKAGE -i tokio`: Some(tree) when tokio is in the package's graph
    /// (dev-dependencies included, as cargo tree counts them), None when it is not.
    fn tokio_under(package: &str) -> Option<String> {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let out = std::process::Command::new(cargo)
            .args(["tree", "--locked", "-p", package, "-i", "tokio"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            return Some(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        assert!(stderr.contains("did not match any packages"), "{stderr}");
        None
    }

    /// Issue 21's layering: a runtime only where something runs on one (the daemons,
    /// lvs-control, the test harness). lvsadm's genhash fetches blocking through lvs-checks
    /// and xtask reads the daemons' command lines from lvs-config, so neither links tokio;
    /// directord does, which shows the question is asked right.
    #[test]
    fn only_the_daemons_and_their_runtime_link_tokio() {
        for light in [
            "lvsadm",
            "xtask",
            "lvs-checks",
            "lvs-config",
            "lvs-proto",
            "lvs-ipvs",
        ] {
            assert_eq!(tokio_under(light), None, "{light} links tokio");
        }
        assert!(tokio_under("directord").is_some_and(|tree| tree.contains("directord")));
    }

    /// Issue 21's typed errors stay typed: no `Result<_, String>` in shipped code outside a
    /// binary's main.rs (tests, benches and examples may), as `scripts/structure-report`
    /// counts it. A merge once brought two back unnoticed.
    #[test]
    fn shipped_code_has_no_string_errors() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut found = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                let skipped = ["target", ".git", "tests", "benches", "examples", "fuzz"];
                if path.is_dir() && !skipped.contains(&name.as_str()) {
                    dirs.push(path);
                } else if name.ends_with(".rs") && name != "main.rs" {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for (at, _) in text.match_indices("Result<") {
                        let rest = &text[at..];
                        let end = rest.find([';', '{', '}']).unwrap_or(rest.len());
                        let window: String =
                            rest[..end].chars().filter(|c| !c.is_whitespace()).collect();
                        if window.contains(",String>") {
                            found.push(format!("{}: {}", path.display(), &rest[..end.min(80)]));
                        }
                    }
                }
            }
        }
        assert!(
            found.is_empty(),
            "Result<_, String> in shipped code:\n{}",
            found.join("\n")
        );
    }

    /// Every page renders without a warning from groff (`-ww`: all warnings), and names what
    /// it documents. Skipped, with a note, where groff is not installed.
    #[test]
    fn pages_render_without_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let pages = write_man(dir.path()).unwrap();
        // lvsadm, the four daemons, director.toml(5), and a page per lvsadm subcommand.
        let subcommands = lvsadm::cli::Cli::command()
            .get_subcommands()
            .filter(|s| s.get_name() != "help")
            .count();
        assert_eq!(pages.len(), 6 + subcommands);
        if std::process::Command::new("groff")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("groff not installed: rendering not checked");
            return;
        }
        for page in pages {
            let out = std::process::Command::new("groff")
                .args(["-ww", "-man", "-Tutf8", "-z"])
                .arg(&page)
                .output()
                .unwrap();
            let warnings = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && warnings.trim().is_empty(),
                "{}: {warnings}",
                page.display()
            );
        }
        let lvsadm = std::fs::read_to_string(dir.path().join("lvsadm.8")).unwrap();
        for word in ["check\\-config", "import", "IPVSADM SYNTAX", "EXIT STATUS"] {
            assert!(lvsadm.contains(word), "lvsadm.8 lacks {word}");
        }
        let vrrpd = std::fs::read_to_string(dir.path().join("vrrpd.8")).unwrap();
        for word in ["\\-\\-release\\-vips", "SIGHUP", "Rolling upgrade", "78"] {
            assert!(vrrpd.contains(word), "vrrpd.8 lacks {word}");
        }
    }

    #[test]
    fn completions_for_every_program_and_shell() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_completions(dir.path()).unwrap();
        assert_eq!(written.len(), 15);
        let bash = std::fs::read_to_string(dir.path().join("bash/lvsadm.bash")).unwrap();
        assert!(bash.contains("check-config"), "{bash}");
    }
}
