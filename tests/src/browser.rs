//! Headless Chromium (Debian `chromium`) driven over the DevTools protocol on a pipe:
//! `--remote-debugging-pipe` reads commands on the browser's fd 3 and writes replies and events
//! on its fd 4, each message one JSON value ended by a NUL byte. A test opens a page, reads its
//! DOM as the page's scripts left it (`Runtime.evaluate`) as often as it likes, and saves a
//! screenshot, with no WebSocket client and no browser restart per look (a start costs ~15 s
//! under UML).
//!
//! As root Chromium needs `--no-sandbox`; `--disable-dev-shm-usage` because a UML guest has no
//! /dev/shm of its own.
//!
//! A UML case does not run Chromium in the guest (20-40 s of its one CPU to start): the case's
//! host side ([`host_side`]) runs it on the host, on the host-guest link
//! ([`crate::uml::UPLINK`]), and the guest drives it through files in the shared results folder
//! ([`Remote`]): `open.json` (the page, when it is ready, what to watch), `seen` (each new value
//! of what is watched, one JSON line each, appended as the host sees it), `shot` (a screenshot's
//! path; `shot.done` once written) and `error`.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::netns::Netns;
use crate::process::{Guarded, which};

/// Where Debian installs it.
pub const CHROMIUM: &str = "chromium";

/// Why a browser test cannot run here, if it cannot.
pub fn missing() -> Option<String> {
    which(CHROMIUM)
        .is_none()
        .then(|| format!("{CHROMIUM} is not installed (Debian package chromium)"))
}

pub struct Browser {
    commands: File,
    replies: mpsc::Receiver<Value>,
    next_id: u64,
    session: String,
    // After the pipes: the process ends (its group killed) when the browser drops.
    _process: Guarded,
    _profile: tempfile::TempDir,
}

/// Two pipes, close-on-exec: the child's ends are dup'ed onto 3 and 4 (which clears the flag).
fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array passed.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe2: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl Browser {
    /// Starts Chromium inside the namespace named `ns` (here without one) on a blank page;
    /// `limit` bounds its start. By name, so a test can start it on a thread of its own while
    /// it goes on.
    pub fn start(ns: Option<&str>, limit: Duration) -> Result<Browser, String> {
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (to_browser, commands) = pipe()?;
        let (replies, from_browser) = pipe()?;
        let user_data = format!("--user-data-dir={}", profile.path().display());
        let argv = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--window-size=1280,1000",
            "--remote-debugging-pipe",
            &user_data,
            "about:blank",
        ];
        let mut command = match ns {
            Some(ns) => Netns::command_in(ns, &argv),
            None => crate::process::command(&argv),
        };
        command
            .env("HOME", profile.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let (child_in, child_out) = (to_browser.as_raw_fd(), from_browser.as_raw_fd());
        // SAFETY: only async-signal-safe fcntl and dup2 calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                // Moved above 3 and 4 first: either end may be 3 or 4 already, and dup2 onto
                // itself would neither move it nor clear its close-on-exec flag.
                let high_in = libc::fcntl(child_in, libc::F_DUPFD_CLOEXEC, 10);
                let high_out = libc::fcntl(child_out, libc::F_DUPFD_CLOEXEC, 10);
                if high_in < 0
                    || high_out < 0
                    || libc::dup2(high_in, 3) < 0
                    || libc::dup2(high_out, 4) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let process = Guarded::spawn(&mut command)?;
        drop((to_browser, from_browser));
        let (tx, rx) = mpsc::channel();
        let reader = File::from(replies);
        std::thread::spawn(move || {
            for message in BufReader::new(reader).split(0) {
                let Ok(bytes) = message else { return };
                if let Ok(value) = serde_json::from_slice::<Value>(&bytes)
                    && tx.send(value).is_err()
                {
                    return;
                }
            }
        });
        let mut browser = Browser {
            commands: File::from(commands),
            replies: rx,
            next_id: 0,
            session: String::new(),
            _process: process,
            _profile: profile,
        };
        let target = browser.call("Target.createTarget", &json!({"url": "about:blank"}), limit)?;
        let target = target["targetId"].as_str().unwrap_or_default().to_owned();
        let attached = browser.call(
            "Target.attachToTarget",
            &json!({"targetId": target, "flatten": true}),
            limit,
        )?;
        browser.session = attached["sessionId"]
            .as_str()
            .ok_or("no session from Target.attachToTarget")?
            .to_owned();
        Ok(browser)
    }

    /// One command and its result (the page's session once attached); events in between are
    /// skipped.
    pub fn call(&mut self, method: &str, params: &Value, limit: Duration) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        self.commands
            .write_all(&bytes)
            .map_err(|e| format!("{method}: the browser is gone: {e}"))?;
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut reply = self
                .replies
                .recv_timeout(left)
                .map_err(|_| format!("{method}: no reply within {limit:?}"))?;
            if reply["id"].as_u64() != Some(id) {
                continue;
            }
            if let Some(error) = reply.get("error") {
                return Err(format!("{method}: {error}"));
            }
            return Ok(reply["result"].take());
        }
    }

    /// Loads `url` in the page.
    pub fn navigate(&mut self, url: &str, limit: Duration) -> Result<(), String> {
        self.call("Page.navigate", &json!({"url": url}), limit)
            .map(drop)
    }

    /// What `expression` gives in the page, as JSON.
    pub fn evaluate(&mut self, expression: &str) -> Result<Value, String> {
        let result = self.call(
            "Runtime.evaluate",
            &json!({"expression": expression, "returnByValue": true}),
            Duration::from_secs(10),
        )?;
        if let Some(exception) = result.get("exceptionDetails") {
            return Err(format!("{expression}: {exception}"));
        }
        Ok(result["result"]["value"].clone())
    }

    /// Polls `expression` until it gives `Some` (through `accept`), every `period`.
    pub fn wait_for<T>(
        &mut self,
        expression: &str,
        limit: Duration,
        period: Duration,
        mut accept: impl FnMut(&Value) -> Option<T>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + limit;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            last = self.evaluate(expression)?;
            if let Some(found) = accept(&last) {
                return Ok(found);
            }
            std::thread::sleep(period);
        }
        Err(format!("{expression}: still {last} after {limit:?}"))
    }

    /// The page as a PNG, written to `path`.
    pub fn screenshot(&mut self, path: &Path) -> Result<PathBuf, String> {
        use base64::Engine as _;
        let shot = self.call(
            "Page.captureScreenshot",
            &json!({"format": "png", "captureBeyondViewport": true}),
            Duration::from_secs(30),
        )?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or_default())
            .map_err(|e| format!("screenshot: {e}"))?;
        std::fs::write(path, png).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path.to_owned())
    }
}

/// Runs a browser for the guest on `side`'s link, at `cidr` on the host's end, until the guest
/// halts; a failure is written to `error` for the guest to report.
pub fn host_side(side: &crate::uml::HostSide<'_>, cidr: &str) {
    let dir = side.dir.join("browser");
    let driven = std::fs::create_dir_all(&dir)
        .map_err(|e| e.to_string())
        .and_then(|()| drive(side, &dir, cidr));
    if let Err(why) = driven {
        let _ = std::fs::write(dir.join("error"), why);
    }
}

fn drive(side: &crate::uml::HostSide<'_>, dir: &Path, cidr: &str) -> Result<(), String> {
    let ns = side.netns;
    crate::process::run(&mut Netns::command_in(
        ns,
        &["ip", "addr", "add", cidr, "dev", crate::uml::UPLINK_TAP],
    ))?;
    // Started at once: it is ready long before the guest's topology is.
    let mut browser = Browser::start(Some(ns), Duration::from_secs(60))?;
    let open: Value = loop {
        if (side.done)() {
            return Ok(());
        }
        if let Ok(text) = std::fs::read_to_string(dir.join("open.json")) {
            break serde_json::from_str(&text).map_err(|e| format!("open.json: {e}"))?;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (url, ready, watch) = (
        open["url"].as_str().unwrap_or_default(),
        open["ready"].as_str().unwrap_or("true"),
        open["watch"].as_str().unwrap_or("null"),
    );
    // The page's server may not listen yet: Chromium then shows its error page.
    let mut tries = 0;
    loop {
        browser.navigate(url, Duration::from_secs(30))?;
        if browser.evaluate(ready)? == json!(true) {
            break;
        }
        tries += 1;
        if tries == 30 || (side.done)() {
            return Err(format!("{url}: `{ready}` still false after {tries} loads"));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let mut seen = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("seen"))
        .map_err(|e| e.to_string())?;
    let mut last = None;
    while !(side.done)() {
        let value = browser.evaluate(watch)?;
        if last.as_ref() != Some(&value) {
            writeln!(seen, "{value}").map_err(|e| e.to_string())?;
            last = Some(value);
        }
        if let Ok(path) = std::fs::read_to_string(dir.join("shot")) {
            let _ = std::fs::remove_file(dir.join("shot"));
            browser.screenshot(Path::new(path.trim()))?;
            std::fs::write(dir.join("shot.done"), "").map_err(|e| e.to_string())?;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// In the guest: the browser the case's host side runs ([`host_side`]).
pub struct Remote {
    dir: PathBuf,
    /// Lines of `seen` already looked at.
    read: usize,
}

impl Remote {
    /// Asks the host to open `url` once `ready` (a script expression) is true there, then to
    /// report every new value of `watch`.
    pub fn open(url: &str, ready: &str, watch: &str) -> Result<Remote, String> {
        let dir = crate::uml::shared_dir()
            .ok_or("not in a UML guest")?
            .join("browser");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let request = json!({"url": url, "ready": ready, "watch": watch}).to_string();
        // Whole or not at all: the host polls for the file.
        let partial = dir.join("open.json.part");
        std::fs::write(&partial, request).map_err(|e| e.to_string())?;
        std::fs::rename(&partial, dir.join("open.json")).map_err(|e| e.to_string())?;
        Ok(Remote { dir, read: 0 })
    }

    fn host_error(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join("error"))
            .ok()
            .map(|why| format!("the host's browser: {why}"))
    }

    /// Waits for a watched value that `accept` takes, among those not looked at yet; returns
    /// it with when this guest saw it (polling every 10 ms).
    pub fn wait_seen(
        &mut self,
        limit: Duration,
        mut accept: impl FnMut(&Value) -> bool,
    ) -> Result<(Value, Instant), String> {
        let deadline = Instant::now() + limit;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            let text = std::fs::read_to_string(self.dir.join("seen")).unwrap_or_default();
            // Only whole lines: the host may be writing the last one.
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            for line in lines.iter().skip(self.read) {
                if !line.ends_with('\n') {
                    break;
                }
                self.read += 1;
                last = serde_json::from_str(line.trim()).unwrap_or(Value::Null);
                if accept(&last) {
                    return Ok((last, Instant::now()));
                }
            }
            if let Some(why) = self.host_error() {
                return Err(why);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(format!("the page still shows {last} after {limit:?}"))
    }

    /// A screenshot of the page, written by the host to `path` (a path both see).
    pub fn screenshot(&self, path: &Path, limit: Duration) -> Result<(), String> {
        let done = self.dir.join("shot.done");
        let _ = std::fs::remove_file(&done);
        std::fs::write(self.dir.join("shot"), path.to_string_lossy().as_bytes())
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if done.exists() {
                return Ok(());
            }
            if let Some(why) = self.host_error() {
                return Err(why);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("no screenshot within {limit:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The DOM read back is the one the page's script made, not the HTML as sent, and the
    // screenshot is a PNG.
    #[test]
    fn reads_the_dom_as_scripts_left_it() {
        if !crate::lane_available("browser", missing()) {
            return;
        }
        let mut browser = Browser::start(None, Duration::from_secs(60)).unwrap();
        browser
            .navigate(
                "data:text/html,<p id=x>sent</p><script>x.textContent='scripted '+(6*7)</script>",
                Duration::from_secs(30),
            )
            .unwrap();
        let text = browser
            .wait_for(
                "(document.getElementById('x') || {}).textContent || null",
                Duration::from_secs(30),
                Duration::from_millis(50),
                |v| v.as_str().map(str::to_owned),
            )
            .unwrap();
        assert_eq!(text, "scripted 42");
        let dir = tempfile::tempdir().unwrap();
        let shot = browser.screenshot(&dir.path().join("x.png")).unwrap();
        let png = std::fs::read(shot).unwrap();
        assert!(
            png.starts_with(b"\x89PNG"),
            "{:?}",
            &png[..8.min(png.len())]
        );
    }
}
