//! BIRD 2 (Debian `bird2`) inside a test's namespace: one foreground process per namespace
//! with its own control socket, ended by its PID when dropped. A config BIRD refuses fails
//! the start, with BIRD's message.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::netns::Netns;
use crate::process::{self, Guarded, wait_for};

/// Why BIRD cannot run here, if it cannot.
pub fn missing() -> Option<String> {
    ["bird", "birdc"]
        .iter()
        .find(|tool| process::which(tool).is_none())
        .map(|tool| format!("{tool} is not installed (Debian package bird2)"))
}

/// Checks `config` with `bird -p` (parse only): BIRD's own verdict on a config text.
pub fn parse(config: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("bird.conf");
    std::fs::write(&file, config).map_err(|e| e.to_string())?;
    process::run(Command::new("bird").arg("-p").arg("-c").arg(&file))
        .map(drop)
        .map_err(|e| format!("BIRD refused the config: {e}\n{config}"))
}

/// A director's bird.conf: `snippet` (`lvsadm routing-config --engine bird`) and one session
/// from `address` (AS 65001) to the router (AS 65000) on the snippet's `lvs_director` template.
pub fn director_config(address: &str, router: &str, snippet: &str) -> String {
    format!(
        "router id {address};\nprotocol device {{}}\n{snippet}\
         protocol bgp r1 from lvs_director {{ local {address} as 65001; neighbor {router} as 65000; }}\n"
    )
}

pub struct Bird {
    process: Guarded,
    socket: PathBuf,
    netns_name: String,
    _dir: tempfile::TempDir,
}

impl Bird {
    /// Starts BIRD in `netns` on `config` (checked first with [`parse`]); returns once birdc
    /// reaches it.
    pub fn start(netns: &Netns, config: &str) -> Result<Bird, String> {
        parse(config)?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let file = dir.path().join("bird.conf");
        std::fs::write(&file, config).map_err(|e| e.to_string())?;
        let socket = dir.path().join("bird.ctl");
        let process = netns.spawn(&[
            "bird".as_ref(),
            "-f".as_ref(),
            "-c".as_ref(),
            file.as_os_str(),
            "-s".as_ref(),
            socket.as_os_str(),
        ])?;
        let bird = Bird {
            process,
            socket,
            netns_name: netns.name().to_owned(),
            _dir: dir,
        };
        wait_for(Duration::from_secs(10), || bird.birdc("show status").ok())
            .ok_or("birdc does not reach bird")?;
        Ok(bird)
    }

    /// One birdc command's output.
    pub fn birdc(&self, command: &str) -> Result<String, String> {
        let mut birdc = Command::new("ip");
        birdc
            .args(["netns", "exec", &self.netns_name, "birdc", "-s"])
            .arg(&self.socket)
            .args(command.split_whitespace());
        process::run_stdout(&mut birdc)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// kill -9: a crashed engine, which withdraws nothing itself.
    pub fn kill(&self) {
        self.process.signal(libc::SIGKILL);
    }
}
