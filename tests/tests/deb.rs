//! The Debian package `make deb` builds (here from the debug binaries the test run has already
//! built: `--no-build`): it holds what an operator expects, installs into a clean root with its
//! units verified and its conffile valid, and remove and purge leave nothing behind.
//!
//! dpkg installs into a scratch root (`--root`) with the maintainer scripts run outside a
//! chroot (`--force-script-chrootless`, the root has no shell) and `DPKG_ROOT` set, which
//! the scripts honour: they touch nothing outside it.

use std::path::{Path, PathBuf};
use std::process::Command;

use lvs_tests::lane_available;
use lvs_tests::process::which;

fn missing() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root (dpkg --root)".to_owned());
    }
    ["dpkg", "dpkg-deb", "systemd-analyze", "make", "git"]
        .into_iter()
        .find(|tool| which(tool).is_none())
        .map(|tool| format!("{tool} is not installed"))
}

fn run(command: &mut Command) -> String {
    let out = command.output().expect("spawn");
    assert!(
        out.status.success(),
        "{command:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_owned()
}

fn dpkg(root: &Path) -> Command {
    let mut command = Command::new("dpkg");
    command.arg(format!("--root={}", root.display())).args([
        "--force-script-chrootless",
        "--force-depends",
        "--log=/dev/null",
    ]);
    command
}

/// Every file and symlink under `root`, relative, dpkg's own database left out.
fn files_under(root: &Path) -> Vec<String> {
    let out = run(Command::new("find").arg(root).args(["-not", "-type", "d"]));
    out.lines()
        .filter_map(|line| line.strip_prefix(&format!("{}/", root.display())))
        .filter(|path| !path.starts_with("var/lib/dpkg/"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_package_installs_verifies_and_purges_clean() {
    if !lane_available("deb", missing()) {
        return;
    }
    let scratch = tempfile::tempdir().expect("tempdir");
    let target = lvs_tests::workspace_bin_dir()
        .parent()
        .expect("target dir")
        .to_owned();
    let built = run(Command::new(workspace().join("scripts/build-deb"))
        .args(["--profile", "debug", "--no-build", "--out"])
        .arg(scratch.path().join("out"))
        .env("CARGO_TARGET_DIR", &target));
    let deb = PathBuf::from(built.trim().lines().last().expect("the .deb's path"));

    let info = run(Command::new("dpkg-deb").arg("--info").arg(&deb));
    for field in ["Package: lvs-director", "Version: ", "Depends: libc6"] {
        assert!(info.contains(field), "{field} not in:\n{info}");
    }
    let contents = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    for path in [
        "./usr/sbin/vrrpd",
        "./usr/sbin/directord",
        "./usr/sbin/syncd",
        "./usr/sbin/feedbackd",
        "./usr/sbin/lvsadm",
        "./usr/lib/systemd/system/vrrpd.service",
        "./usr/lib/systemd/system/feedbackd-agent.service",
        "./usr/share/man/man8/lvsadm.8.gz",
        "./usr/share/man/man8/lvsadm-import.8.gz",
        "./usr/share/man/man8/lvsadm-genhash.8.gz",
        "./usr/share/man/man8/lvsadm-watch.8.gz",
        "./usr/share/man/man8/lvsadm-drain.8.gz",
        "./usr/share/man/man8/vrrpd.8.gz",
        "./usr/share/man/man5/director.toml.5.gz",
        "./usr/share/bash-completion/completions/lvsadm",
        "./usr/share/zsh/vendor-completions/_lvsadm",
        "./usr/share/fish/vendor_completions.d/lvsadm.fish",
        "./usr/share/doc/lvs-director/copyright",
        "./usr/share/doc/lvs-director/changelog.Debian.gz",
        "./usr/share/doc/lvs-director/CHANGELOG.md",
        "./usr/share/doc/lvs-director/operations.md",
        "./usr/share/doc/lvs-director/migration.md",
        "./usr/share/doc/lvs-director/monitoring/grafana-dashboard.json",
        "./usr/share/doc/lvs-director/monitoring/alerts.yml",
        "./etc/lvs-director/director.toml",
    ] {
        assert!(
            contents.lines().any(|line| line.ends_with(path)),
            "{path} not in the package:\n{contents}"
        );
    }
    let control = scratch.path().join("control");
    run(Command::new("dpkg-deb")
        .arg("--control")
        .arg(&deb)
        .arg(&control));
    assert_eq!(
        std::fs::read_to_string(control.join("conffiles")).expect("conffiles"),
        "/etc/lvs-director/director.toml\n"
    );

    // A clean root: dpkg's database and nothing else.
    let root = scratch.path().join("root");
    for dir in ["var/lib/dpkg/info", "var/lib/dpkg/updates"] {
        std::fs::create_dir_all(root.join(dir)).expect("mkdir");
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").expect("status");
    run(dpkg(&root).arg("--install").arg(&deb));
    let installed = run(dpkg(&root).args(["--status", "lvs-director"]));
    assert!(
        installed.contains("Status: install ok installed"),
        "{installed}"
    );

    // The units as installed, against the binaries as installed.
    let verify = Command::new("systemd-analyze")
        .arg(format!("--root={}", root.display()))
        .arg("verify")
        .args(
            [
                "vrrpd",
                "directord",
                "syncd",
                "feedbackd",
                "feedbackd-agent",
            ]
            .map(|unit| root.join(format!("usr/lib/systemd/system/{unit}.service"))),
        )
        .output()
        .expect("systemd-analyze");
    let complaints: Vec<String> = String::from_utf8_lossy(&verify.stderr)
        .lines()
        .filter(|line| line.contains(&root.display().to_string()) || line.contains("lvs"))
        .map(str::to_owned)
        .collect();
    assert!(
        complaints.is_empty(),
        "systemd-analyze verify: {complaints:#?}"
    );

    // The conffile is the example, and the installed lvsadm accepts it.
    let config = root.join("etc/lvs-director/director.toml");
    run(Command::new(root.join("usr/sbin/lvsadm"))
        .args(["check-config", "--config"])
        .arg(&config));
    let man = run(Command::new("zcat").arg(root.join("usr/share/man/man5/director.toml.5.gz")));
    assert!(man.contains(".SS [[vrrp.instance]]"), "director.toml.5");

    // Remove keeps the operator's config (a conffile); purge leaves nothing at all.
    run(dpkg(&root).args(["--remove", "lvs-director"]));
    assert_eq!(files_under(&root), ["etc/lvs-director/director.toml"]);
    run(dpkg(&root).args(["--purge", "lvs-director"]));
    assert_eq!(files_under(&root), Vec::<String>::new());
    let dirs = run(Command::new("find").arg(&root).args([
        "-mindepth",
        "1",
        "-type",
        "d",
        "-not",
        "-path",
        "*/var/lib/dpkg*",
    ]));
    let left: Vec<&str> = dirs
        .lines()
        .filter(|d| {
            !["var", "var/lib"]
                .iter()
                .any(|k| d.ends_with(&format!("/{k}")))
        })
        .collect();
    assert!(left.is_empty(), "directories left after purge: {left:?}");
}
