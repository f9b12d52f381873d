//! The UML lane: test cases that need a kernel with IPVS run inside User-Mode Linux.
//!
//! A test target declares `harness = false` and hands its cases to [`main`]. On the host,
//! `main` boots `linux.uml` once with the host's root filesystem (hostfs) as its root, so the
//! very test executable, ipvsadm, busybox and the workspace binaries are there at the same
//! paths. PID 1 in the guest is a generated script that mounts what is needed, loads ip_vs and
//! runs the executable again in guest mode; the guest runs each selected case as its own
//! process with its own timeout and writes status and log files to a results folder on the host
//! path. UML's exit status carries nothing, so the host reads those files after the guest
//! halts. The whole boot is bounded by a timeout and killed by process group when it expires.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::process::{Guarded, which};

/// One test that needs the UML kernel. `run` executes inside the guest, as root, with ip_vs and
/// the modules in [`MODULES`] loaded.
#[derive(Clone, Copy)]
pub struct Case {
    pub name: &'static str,
    pub run: fn() -> Result<(), String>,
    pub timeout: Duration,
    /// Runs on the host, on a thread of its own, while the guest runs; see [`HostSide`].
    pub host: Option<fn(&HostSide<'_>)>,
}

impl Case {
    pub const fn new(name: &'static str, run: fn() -> Result<(), String>) -> Self {
        Case {
            name,
            run,
            timeout: Duration::from_secs(60),
            host: None,
        }
    }

    pub const fn with_timeout(self, timeout: Duration) -> Self {
        Case { timeout, ..self }
    }

    /// A host side for the case, and a link between host and guest: what the guest cannot
    /// afford to run itself (a browser costs 20-40 s of the guest's one CPU to start, under 3 s
    /// on the host) runs on the host and reaches the guest's topology over that link.
    pub const fn with_host(self, host: fn(&HostSide<'_>)) -> Self {
        Case {
            host: Some(host),
            ..self
        }
    }
}

/// The guest's interface of the host-guest link, an ethernet whose other end is [`UPLINK_TAP`]
/// in the namespace [`HostSide::netns`] on the host. The case moves it where its topology
/// needs it (onto a bridge), the host side gives its end an address. UML names it `eth0`;
/// the init script renames it, since topologies name their veths eth0 and the kernel checks
/// a new link's name in the namespace it is created in.
pub const UPLINK: &str = "uplink0";
/// The host's end of the link: a tap device UML's tuntap transport opens.
pub const UPLINK_TAP: &str = "umltap0";

/// What a case's host side is given: the namespace holding [`UPLINK_TAP`], and the results
/// folder, shared with the guest (hostfs), through which the two talk in files. It should end
/// when `done` returns true (the guest has halted).
pub struct HostSide<'a> {
    pub netns: &'a str,
    pub dir: &'a Path,
    pub done: &'a dyn Fn() -> bool,
}

/// In the guest: the folder shared with the case's host side.
pub fn shared_dir() -> Option<PathBuf> {
    std::env::var_os("LVS_UML_RESULTS").map(PathBuf::from)
}

pub const UML_KERNEL: &str = "/usr/bin/linux.uml";
pub const UML_MODULES: &str = "/usr/lib/uml/modules";

/// Loaded at boot so cases need not: ip_vs with every scheduler the 6.1 kernel ships, and the
/// link types tests build topologies from.
pub const MODULES: &[&str] = &[
    "ip_vs",
    "ip_vs_rr",
    "ip_vs_wrr",
    "ip_vs_lc",
    "ip_vs_wlc",
    "ip_vs_lblc",
    "ip_vs_lblcr",
    "ip_vs_dh",
    "ip_vs_sh",
    "ip_vs_sed",
    "ip_vs_nq",
    "ip_vs_fo",
    "ip_vs_ovf",
    "ip_vs_mh",
    "ip_vs_ftp",
    "ip_vs_pe_sip",
    "veth",
    "dummy",
    "bridge",
    "macvlan",
    "nlmon",
    "sch_netem",
];

/// Seconds allowed for the guest to boot and halt, on top of the cases' own timeouts.
const BOOT_ALLOWANCE: Duration = Duration::from_secs(60);

const GUEST_FLAG: &str = "--uml-guest";
const CASE_FLAG: &str = "--uml-case";

/// Why the UML lane cannot run here, if it cannot.
pub fn missing() -> Option<String> {
    if let Some(reason) = crate::netns_missing() {
        return Some(reason);
    }
    if !Path::new(UML_KERNEL).exists() {
        return Some(format!(
            "{UML_KERNEL} is absent (Debian package user-mode-linux)"
        ));
    }
    if !Path::new(UML_MODULES).is_dir() {
        return Some(format!("{UML_MODULES} is absent"));
    }
    None
}

/// True inside the UML guest.
pub fn in_guest() -> bool {
    std::env::var_os("LVS_UML_RESULTS").is_some()
}

/// Entry point of a UML-lane test target.
pub fn main(cases: &[Case]) -> ExitCode {
    dispatch(cases, std::env::var_os("LVS_UML_SHOW").is_some())
}

/// Entry point of a UML-lane benchmark: like [`main`], but every case's output (its figures)
/// is printed, pass or fail. `cargo bench` passes `--bench`, which selects nothing.
pub fn bench(cases: &[Case]) -> ExitCode {
    dispatch(cases, true)
}

fn dispatch(cases: &[Case], show: bool) -> ExitCode {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some(CASE_FLAG) => run_case(cases, args.get(1).map(String::as_str).unwrap_or_default()),
        Some(GUEST_FLAG) => run_guest(cases, &args[1..]),
        _ => run_host(cases, &args, show),
    }
}

/// libtest-compatible selection: positional arguments are substring filters, `--exact` makes
/// them whole names; other flags (such as --nocapture or --test-threads) do not apply here.
fn select<'a>(cases: &'a [Case], args: &[String]) -> Vec<&'a Case> {
    let exact = args.iter().any(|a| a == "--exact");
    let mut filters = Vec::new();
    let mut skip_value = false;
    for arg in args {
        if skip_value {
            skip_value = false;
        } else if arg == "--test-threads" || arg == "--format" || arg == "--color" {
            skip_value = true;
        } else if !arg.starts_with('-') {
            filters.push(arg.as_str());
        }
    }
    cases
        .iter()
        .filter(|case| {
            filters.is_empty()
                || filters.iter().any(|f| {
                    if exact {
                        case.name == *f
                    } else {
                        case.name.contains(f)
                    }
                })
        })
        .collect()
}

fn run_host(cases: &[Case], args: &[String], show: bool) -> ExitCode {
    if args.iter().any(|a| a == "--list") {
        for case in cases {
            println!("{}: test", case.name);
        }
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--ignored") {
        println!("running 0 tests (the UML lane has no ignored tests)");
        return ExitCode::SUCCESS;
    }
    let selected = select(cases, args);
    println!("\nrunning {} tests in User-Mode Linux", selected.len());
    if selected.is_empty() || !crate::lane_available("UML", missing()) {
        return ExitCode::SUCCESS;
    }
    match boot(&selected) {
        Ok(report) => report.print_and_exit_code(show),
        Err(e) => {
            eprintln!("UML lane failed before its cases could report: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Report {
    results: Vec<(&'static str, Result<(), String>, String)>,
    elapsed: Duration,
}

impl Report {
    fn print_and_exit_code(&self, show: bool) -> ExitCode {
        let mut failed = Vec::new();
        for (name, result, log) in &self.results {
            match result {
                Ok(()) if show => println!("test {name} ... ok\n{log}"),
                Ok(()) => println!("test {name} ... ok"),
                Err(why) => {
                    println!("test {name} ... FAILED");
                    failed.push((name, why, log));
                }
            }
        }
        if !failed.is_empty() {
            println!("\nfailures:");
            for (name, why, log) in &failed {
                println!("\n---- {name} ({why}) ----\n{log}");
            }
        }
        println!(
            "\ntest result: {}. {} passed; {} failed; finished in {:.2}s (one UML boot)\n",
            if failed.is_empty() { "ok" } else { "FAILED" },
            self.results.len() - failed.len(),
            failed.len(),
            self.elapsed.as_secs_f64()
        );
        if failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

fn boot(selected: &[&Case]) -> Result<Report, String> {
    let started = Instant::now();
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let folder = tempfile::Builder::new()
        .prefix("lvs-uml-")
        .tempdir()
        .map_err(|e| format!("cannot create a results folder: {e}"))?;
    let dir = folder.path();
    let init = dir.join("init.sh");
    let names: Vec<&str> = selected.iter().map(|c| c.name).collect();
    write_init(&init, &exe, dir, &names)?;

    let console = fs::File::create(dir.join("console.log")).map_err(|e| e.to_string())?;
    // A case with a host side gets the link: the tap waits in a namespace of its own (the
    // host's own network is left alone), and UML runs in that namespace to open it.
    let hosted: Vec<fn(&HostSide<'_>)> = selected.iter().filter_map(|c| c.host).collect();
    let link = if hosted.is_empty() {
        None
    } else {
        let ns = crate::netns::Netns::new("uml-uplink")?;
        ns.ip(&["tuntap", "add", "dev", UPLINK_TAP, "mode", "tap"])?;
        ns.ip(&["link", "set", UPLINK_TAP, "up"])?;
        Some(ns)
    };
    let mut command = match &link {
        Some(ns) => {
            let mut command = ns.command(&[UML_KERNEL]);
            command.arg(format!("eth0=tuntap,{UPLINK_TAP}"));
            command
        }
        None => Command::new(UML_KERNEL),
    };
    command
        .args([
            "mem=1024M",
            "rootfstype=hostfs",
            "rootflags=/",
            "rw",
            "con=null",
            "con0=null,fd:1",
        ])
        .arg(format!("init={}", init.display()))
        .env("TMPDIR", "/dev/shm")
        .stdin(Stdio::null())
        .stdout(console.try_clone().map_err(|e| e.to_string())?)
        .stderr(console);
    let limit = BOOT_ALLOWANCE + selected.iter().map(|c| c.timeout).sum::<Duration>();
    let mut uml = Guarded::spawn(&mut command)?;
    let halted = std::sync::atomic::AtomicBool::new(false);
    let waited = std::thread::scope(|scope| {
        for host in &hosted {
            let netns = link.as_ref().map_or("", |ns| ns.name());
            let halted = &halted;
            scope.spawn(move || {
                host(&HostSide {
                    netns,
                    dir,
                    done: &|| halted.load(std::sync::atomic::Ordering::Relaxed),
                });
            });
        }
        let waited = uml.wait_timeout(limit);
        halted.store(true, std::sync::atomic::Ordering::Relaxed);
        waited
    });

    let console_tail = tail(
        &fs::read_to_string(dir.join("console.log")).unwrap_or_default(),
        40,
    );
    if fs::read_to_string(dir.join("guest.status")).is_err() {
        let why = match waited {
            Err(e) => e,
            Ok(status) => format!("the guest halted ({status}) without reporting"),
        };
        let guest_log = fs::read_to_string(dir.join("guest.log")).unwrap_or_default();
        return Err(format!(
            "{why}\n--- guest log ---\n{guest_log}\n--- console (last lines) ---\n{console_tail}"
        ));
    }
    let results = selected
        .iter()
        .map(|case| {
            let status = fs::read_to_string(dir.join(format!("{}.status", case.name)))
                .unwrap_or_else(|_| "no status written (guest stopped early?)".to_owned());
            let log =
                fs::read_to_string(dir.join(format!("{}.log", case.name))).unwrap_or_default();
            let result = if status.trim() == "ok" {
                Ok(())
            } else {
                Err(status.trim().to_owned())
            };
            (case.name, result, log)
        })
        .collect();
    // Kept for post-mortems when asked: LVS_UML_KEEP=1.
    if std::env::var_os("LVS_UML_KEEP").is_some() {
        println!("UML results kept in {}", folder.keep().display());
    }
    Ok(Report {
        results,
        elapsed: started.elapsed(),
    })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn write_init(init: &Path, exe: &Path, dir: &Path, cases: &[&str]) -> Result<(), String> {
    let mut script = String::from(
        "#!/bin/sh\n\
         # PID 1 of the UML guest, written by lvs-tests; it must halt, never exit.\n\
         export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sys /sys\n\
         mount -t tmpfs tmpfs /run\n\
         mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm\n\
         # modprobe -d finds <dir>/lib/modules/<release>; a link under the guest's /run\n\
         # serves the UML modules without touching the host's /lib/modules.\n\
         mkdir -p /run/uml-modroot/lib\n\
         ln -s /usr/lib/uml/modules /run/uml-modroot/lib/modules\n\
         ip link set lo up\n\
         [ -e /sys/class/net/eth0 ] && ip link set eth0 name uplink0\n",
    );
    // The guest starts with an empty environment; the knobs of the cases (LVS_BIN_DIR,
    // LVS_REQUIRE_LANES, a bench's options) must reach them as set on the host.
    for (name, value) in std::env::vars() {
        if name.starts_with("LVS_") && !name.starts_with("LVS_UML_") {
            let _ = writeln!(script, "export {name}='{}'", value.replace('\'', r"'\''"));
        }
    }
    for module in MODULES {
        let _ = writeln!(
            script,
            "modprobe -d /run/uml-modroot {module} || echo 'modprobe {module} failed'"
        );
    }
    let _ = writeln!(
        script,
        "LVS_UML_RESULTS='{dir}' '{exe}' {GUEST_FLAG} {cases} > '{dir}/guest.log' 2>&1\n\
         echo $? > '{dir}/guest.status'\n\
         sync\n\
         halt -f",
        dir = dir.display(),
        exe = exe.display(),
        cases = cases.join(" "),
    );
    fs::write(init, script).map_err(|e| format!("cannot write {}: {e}", init.display()))?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(init, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())
}

/// In the guest: runs each named case as its own process, so a panic, a hang or a leftover
/// namespace of one case cannot take the others down.
fn run_guest(cases: &[Case], names: &[String]) -> ExitCode {
    let dir = PathBuf::from(std::env::var_os("LVS_UML_RESULTS").expect("set by the init script"));
    let exe = std::env::current_exe().expect("current_exe");
    for name in names {
        let Some(case) = cases.iter().find(|c| c.name == name) else {
            let _ = fs::write(dir.join(format!("{name}.status")), "unknown case");
            continue;
        };
        let log = dir.join(format!("{name}.log"));
        let status = match fs::File::create(&log) {
            Err(e) => format!("cannot create {}: {e}", log.display()),
            Ok(file) => run_case_process(&exe, case, file),
        };
        println!("{name}: {status}");
        let _ = fs::write(dir.join(format!("{name}.status")), status);
    }
    ExitCode::SUCCESS
}

fn run_case_process(exe: &Path, case: &Case, log: fs::File) -> String {
    let Ok(stderr) = log.try_clone() else {
        return "cannot duplicate the log file".to_owned();
    };
    let mut command = Command::new(exe);
    command
        .args([CASE_FLAG, case.name])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr);
    let started = Instant::now();
    let result =
        Guarded::spawn(&mut command).and_then(|mut child| child.wait_timeout(case.timeout));
    match result {
        Ok(status) if status.success() => "ok".to_owned(),
        Ok(status) => format!(
            "failed: {status} after {:.1}s",
            started.elapsed().as_secs_f64()
        ),
        Err(e) => format!("failed: {e}"),
    }
}

fn run_case(cases: &[Case], name: &str) -> ExitCode {
    let Some(case) = cases.iter().find(|c| c.name == name) else {
        eprintln!("no case named {name:?}");
        return ExitCode::FAILURE;
    };
    let started = Instant::now();
    match (case.run)() {
        Ok(()) => {
            println!("{name}: ok in {:.2}s", started.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(why) => {
            println!("{name}: {why}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `which` finds each tool inside the guest (same filesystem as the host).
pub fn tools_missing(tools: &[&str]) -> Option<String> {
    let absent: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| which(t).is_none())
        .collect();
    (!absent.is_empty()).then(|| format!("missing tools: {}", absent.join(", ")))
}
