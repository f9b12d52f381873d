//! Test hosts as network namespaces, with veth links and bridges between them.
//!
//! Every namespace is deleted when its [`Netns`] drops, whether the test passed or panicked;
//! links die with their namespaces. Processes started with [`Netns::spawn`] are ended by PID
//! when their guard drops, which must happen before the namespace goes: declare process guards
//! after the namespaces they run in, so they drop first.

use std::ffi::OsStr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::process::{self, Guarded};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace owned by the test.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `lvs-<role>-<pid>-<n>` with its loopback up (IPVS needs `lo` up before it
    /// accepts destinations).
    pub fn new(role: &str) -> Result<Self, String> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("lvs-{role}-{}-{n}", std::process::id());
        process::run(Command::new("ip").args(["netns", "add", &name]))?;
        let netns = Netns { name };
        netns.ip(&["link", "set", "lo", "up"])?;
        Ok(netns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `argv` inside the namespace.
    pub fn command<S: AsRef<OsStr>>(&self, argv: &[S]) -> Command {
        Self::command_in(&self.name, argv)
    }

    /// [`Netns::command`] in the namespace named `name`.
    pub fn command_in<S: AsRef<OsStr>>(name: &str, argv: &[S]) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", name]).args(argv);
        command
    }

    /// Runs to completion inside the namespace; non-zero exit is an error.
    pub fn run<S: AsRef<OsStr>>(&self, argv: &[S]) -> Result<Output, String> {
        process::run(&mut self.command(argv))
    }

    /// Runs inside the namespace and returns stdout.
    pub fn stdout<S: AsRef<OsStr>>(&self, argv: &[S]) -> Result<String, String> {
        process::run_stdout(&mut self.command(argv))
    }

    /// Runs a shell script inside the namespace and returns stdout.
    pub fn sh(&self, script: &str) -> Result<String, String> {
        self.stdout(&["sh", "-c", script])
    }

    /// Starts a long-running process inside the namespace, ended when the guard drops.
    pub fn spawn<S: AsRef<OsStr>>(&self, argv: &[S]) -> Result<Guarded, String> {
        Guarded::spawn(&mut self.command(argv))
    }

    /// `ip -n <ns> ...`
    pub fn ip(&self, args: &[&str]) -> Result<Output, String> {
        process::run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// Adds an address (CIDR) to an interface and brings it up.
    pub fn addr(&self, interface: &str, cidr: &str) -> Result<(), String> {
        self.ip(&["addr", "add", cidr, "dev", interface])?;
        self.ip(&["link", "set", interface, "up"])?;
        Ok(())
    }

    /// Sets a sysctl inside the namespace, e.g. `net.ipv4.ip_forward=1`.
    pub fn sysctl(&self, setting: &str) -> Result<(), String> {
        self.run(&["sysctl", "-qw", setting]).map(drop)
    }

    pub fn default_route(&self, via: &str) -> Result<(), String> {
        self.ip(&["route", "add", "default", "via", via]).map(drop)
    }

    /// Takes `interface` down from this process (SIOCSIFFLAGS on a socket made in the
    /// namespace by a thread of its own), without starting `ip`: returns the wall clock just
    /// before the kernel took it down. Starting a process costs tens of milliseconds in UML,
    /// too much slack for timing what follows a link failure.
    pub fn link_down_now(&self, interface: &str) -> Result<std::time::SystemTime, String> {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        let file = std::fs::File::open(std::path::Path::new("/run/netns").join(&self.name))
            .map_err(|e| format!("cannot open the namespace: {e}"))?;
        let name = interface.to_owned();
        if name.len() >= libc::IFNAMSIZ {
            return Err(format!("interface name too long: {name}"));
        }
        let thread = std::thread::spawn(move || -> Result<std::time::SystemTime, String> {
            let os = |what: &str| format!("{what}: {}", std::io::Error::last_os_error());
            // SAFETY: setns(2) on an open namespace file; it moves only this thread, which
            // ends right after.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(os("setns"));
            }
            // SAFETY: socket(2) has no memory preconditions; the descriptor is owned below.
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
            if fd < 0 {
                return Err(os("socket"));
            }
            // SAFETY: `fd` is a fresh descriptor owned by nothing else.
            let socket = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: an all-zero ifreq is valid (a name of NULs and a zero union).
            let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
            for (slot, byte) in request.ifr_name.iter_mut().zip(name.bytes()) {
                *slot = byte as libc::c_char;
            }
            // SAFETY: SIOCGIFFLAGS reads into the ifreq we own, whose name is NUL-terminated.
            if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) } < 0 {
                return Err(os("SIOCGIFFLAGS"));
            }
            // SAFETY: the kernel just filled ifru_flags, the union's member for this request.
            unsafe { request.ifr_ifru.ifru_flags &= !(libc::IFF_UP as libc::c_short) };
            let at = std::time::SystemTime::now();
            // SAFETY: SIOCSIFFLAGS reads the ifreq we own.
            if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) } < 0 {
                return Err(os("SIOCSIFFLAGS"));
            }
            Ok(at)
        });
        thread.join().map_err(|_| "the link-down thread panicked")?
    }

    /// Creates a bridge inside this namespace, up.
    pub fn bridge(&self, name: &str) -> Result<(), String> {
        self.ip(&["link", "add", name, "type", "bridge"])?;
        self.ip(&["link", "set", name, "up"])?;
        Ok(())
    }

    /// Enslaves an interface of this namespace to a bridge of this namespace, up.
    pub fn attach(&self, interface: &str, bridge: &str) -> Result<(), String> {
        self.ip(&["link", "set", interface, "master", bridge])?;
        self.ip(&["link", "set", interface, "up"])?;
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = process::run(Command::new("ip").args(["netns", "del", &self.name])) {
            eprintln!("cleanup: {e}");
        }
    }
}

/// Connects two namespaces with a veth pair: `a_if` in `a`, `b_if` in `b`, both down until
/// addressed. Interface names are at most 15 bytes.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<(), String> {
    process::run(Command::new("ip").args([
        "link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns",
        &b.name,
    ]))
    .map(drop)
}
