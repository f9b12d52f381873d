//! Observes what instances track: interfaces and files and processes by polling, scripts by
//! running them on their interval in their own tasks.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use lvs_config::VrrpInstance;
use tokio::sync::mpsc;
use tracing::{info, warn};
use vrrpd::track::{Observation, RiseFall, Tracked};

enum Source {
    Interface(String),
    File(PathBuf),
    Process(String),
    /// `[vrrp] track_directord`, observed by the daemon's watch (see directord.rs).
    Directord,
    /// A virtual server's quorum (`track_services`), as directord reports it to that watch.
    Service(String),
    /// A `[[bfd.session]]` (`track_bfd`), Up or not, as the BFD thread reports it.
    Bfd(String),
    Script {
        index: usize,
        state: RiseFall,
        /// The script's command and timing, what makes it "the same script" across a reload.
        key: String,
    },
}

struct Object {
    weight: i32,
    source: Source,
    observation: Observation,
}

/// Everything one instance tracks.
pub struct Tracking {
    instance: String,
    objects: Vec<Object>,
}

/// A script run finished: which instance (its daemon-unique id), which script, did it succeed.
pub struct ScriptResult {
    pub instance: u64,
    pub script: usize,
    pub success: bool,
}

impl Tracking {
    /// What `config` tracks, and directord with `directord`'s weight and last seen state
    /// when vrrpd tracks it.
    pub fn new(config: &VrrpInstance, directord: Option<(i32, bool)>) -> Self {
        let mut objects = Vec::new();
        if let Some((weight, up)) = directord {
            objects.push(Object {
                weight,
                source: Source::Directord,
                observation: Observation::Healthy(up),
            });
        }
        // keepalived tracks an instance's own interface unless told not to (dont_track_primary):
        // a master whose link goes down goes to FAULT and gives up its addresses, so when the
        // link returns it comes back through BACKUP and takes over with gratuitous ARPs. Left
        // master, it stayed unheard while the backup drew the neighbours to itself, and nothing
        // drew them back when the link returned (the fault soak: the client lost the service
        // for 40 s after the master's link went down and up).
        if !config
            .track_interfaces
            .iter()
            .any(|t| t.name == config.interface)
        {
            objects.push(Object {
                weight: 0,
                source: Source::Interface(config.interface.clone()),
                observation: Observation::Healthy(true),
            });
        }
        for t in &config.track_interfaces {
            objects.push(Object {
                weight: t.weight,
                source: Source::Interface(t.name.clone()),
                observation: Observation::Healthy(true),
            });
        }
        for t in &config.track_files {
            objects.push(Object {
                weight: t.weight,
                source: Source::File(t.path.clone()),
                observation: Observation::Value(0),
            });
        }
        for t in &config.track_processes {
            objects.push(Object {
                weight: t.weight,
                source: Source::Process(t.name.clone()),
                observation: Observation::Healthy(true),
            });
        }
        // Held until directord says otherwise: a service is in quorum by default (quorum 1).
        for t in &config.track_services {
            objects.push(Object {
                weight: t.weight,
                source: Source::Service(t.service.clone()),
                observation: Observation::Healthy(true),
            });
        }
        // Not Up until the BFD thread says so: sessions start Down.
        for t in &config.track_bfd {
            objects.push(Object {
                weight: t.weight,
                source: Source::Bfd(t.name.clone()),
                observation: Observation::Healthy(false),
            });
        }
        for (index, t) in config.track_scripts.iter().enumerate() {
            objects.push(Object {
                weight: t.weight,
                source: Source::Script {
                    index,
                    state: RiseFall::new(t.rise, t.fall),
                    key: format!(
                        "{:?} {:?} {:?} {} {}",
                        t.command, t.interval, t.timeout, t.rise, t.fall
                    ),
                },
                observation: Observation::Healthy(false),
            });
        }
        Tracking {
            instance: config.name.clone(),
            objects,
        }
    }

    pub fn tracked(&self) -> Vec<Tracked> {
        self.objects
            .iter()
            .map(|o| Tracked {
                weight: o.weight,
                observation: o.observation,
            })
            .collect()
    }

    /// Re-reads interfaces, files and processes; returns true when anything changed.
    pub fn poll(&mut self) -> bool {
        let processes = self
            .objects
            .iter()
            .any(|o| matches!(o.source, Source::Process(_)))
            .then(running_processes)
            .unwrap_or_default();
        let mut changed = false;
        for object in &mut self.objects {
            let observation = match &object.source {
                Source::Interface(name) => Observation::Healthy(interface_up(name)),
                Source::File(path) => Observation::Value(read_value(path)),
                Source::Process(name) => Observation::Healthy(processes.iter().any(|p| p == name)),
                Source::Script { .. } | Source::Directord | Source::Service(_) | Source::Bfd(_) => {
                    continue;
                }
            };
            if observation != object.observation {
                info!(instance = %self.instance, "tracked {} is now {observation:?}", describe(&object.source));
                object.observation = observation;
                changed = true;
            }
        }
        changed
    }

    /// Records a script result; returns true when its tracked state changed.
    pub fn script_result(&mut self, script: usize, success: bool) -> bool {
        for object in &mut self.objects {
            if let Source::Script { index, state, .. } = &mut object.source
                && *index == script
                && state.record(success)
            {
                object.observation = Observation::Healthy(state.healthy());
                info!(instance = %self.instance, "track script {script} is now {}", if state.healthy() { "succeeding" } else { "failing" });
                return true;
            }
        }
        false
    }
}

impl Tracking {
    /// A reload changed what the instance tracks in place: every object tracked before too
    /// (the same interface, file, process, or script with the same command and timing; its
    /// weight may differ) keeps what was observed of it, so the change moves no priority by
    /// itself. Only a newly tracked object starts afresh.
    pub fn carry_over(&mut self, old: &Tracking) {
        for object in &mut self.objects {
            if let Some(seen) = old.objects.iter().find(|o| o.source.same(&object.source)) {
                object.observation = seen.observation;
                if let (Source::Script { state, .. }, Source::Script { state: was, .. }) =
                    (&mut object.source, &seen.source)
                {
                    *state = was.clone();
                }
            }
        }
    }
}

impl Tracking {
    /// The watch saw directord go down or come back; returns whether this instance tracks it.
    pub fn set_directord(&mut self, up: bool) -> bool {
        let mut tracked = false;
        for object in &mut self.objects {
            if matches!(object.source, Source::Directord) {
                object.observation = Observation::Healthy(up);
                tracked = true;
            }
        }
        tracked
    }
}

impl Tracking {
    /// directord answered with its services' quorum; returns whether a tracked one changed.
    /// A service it does not name (not loaded yet, or renamed) keeps its last state.
    pub fn set_services(&mut self, quorum: &std::collections::BTreeMap<String, bool>) -> bool {
        let mut changed = false;
        for object in &mut self.objects {
            let Source::Service(name) = &object.source else {
                continue;
            };
            let Some(&held) = quorum.get(name) else {
                continue;
            };
            let observation = Observation::Healthy(held);
            if observation != object.observation {
                info!(instance = %self.instance, "tracked service {name} is {} quorum", if held { "back in" } else { "below" });
                object.observation = observation;
                changed = true;
            }
        }
        changed
    }
}

impl Tracking {
    /// The BFD sessions' states (Up or not, by name); returns whether a tracked one changed.
    pub fn set_bfd(&mut self, up: &std::collections::BTreeMap<String, bool>) -> bool {
        let mut changed = false;
        for object in &mut self.objects {
            let Source::Bfd(name) = &object.source else {
                continue;
            };
            let observation = Observation::Healthy(up.get(name).copied().unwrap_or(false));
            if observation != object.observation {
                info!(instance = %self.instance, "tracked BFD session {name} is {}", if observation == Observation::Healthy(true) { "up" } else { "down" });
                object.observation = observation;
                changed = true;
            }
        }
        changed
    }
}

impl Source {
    fn same(&self, other: &Source) -> bool {
        match (self, other) {
            (Source::Bfd(a), Source::Bfd(b)) => a == b,
            (Source::Directord, Source::Directord) => true,
            (Source::Service(a), Source::Service(b)) => a == b,
            (Source::Interface(a), Source::Interface(b)) => a == b,
            (Source::File(a), Source::File(b)) => a == b,
            (Source::Process(a), Source::Process(b)) => a == b,
            (Source::Script { key: a, .. }, Source::Script { key: b, .. }) => a == b,
            _ => false,
        }
    }
}

fn describe(source: &Source) -> String {
    match source {
        Source::Interface(name) => format!("interface {name}"),
        Source::File(path) => format!("file {}", path.display()),
        Source::Process(name) => format!("process {name}"),
        Source::Directord => "directord".to_owned(),
        Source::Service(name) => format!("service {name}"),
        Source::Bfd(name) => format!("BFD session {name}"),
        Source::Script { index, .. } => format!("script {index}"),
    }
}

/// keepalived treats a link as up when it is administratively up and has carrier.
fn interface_up(name: &str) -> bool {
    let base = Path::new("/sys/class/net").join(name);
    let operstate = std::fs::read_to_string(base.join("operstate")).unwrap_or_default();
    match operstate.trim() {
        "up" => true,
        // Links without carrier reporting (lo, dummy) say "unknown": go by IFF_UP.
        "unknown" => std::fs::read_to_string(base.join("flags"))
            .ok()
            .and_then(|flags| u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).ok())
            .is_some_and(|flags| flags & 1 != 0),
        _ => false,
    }
}

/// An unreadable or non-numeric file counts as 0, as in keepalived.
fn read_value(path: &Path) -> i64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0)
}

fn running_processes() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .map(|comm| comm.trim_end().to_owned())
        .collect()
}

/// Runs each of an instance's track scripts on its interval, reporting every result; the
/// tasks end when their handles are aborted.
pub fn spawn_scripts(
    instance: u64,
    config: &VrrpInstance,
    results: &mpsc::Sender<ScriptResult>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = Vec::new();
    for (script, t) in config.track_scripts.iter().enumerate() {
        let command = t.command.clone();
        let interval = t.interval.get();
        let timeout = t.timeout.map_or(interval, lvs_config::Duration::get);
        let results = results.clone();
        let name = config.name.clone();
        handles.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                let success = run_script(&command, timeout).await;
                if !success {
                    tracing::debug!(instance = %name, "track script {command:?} failed");
                }
                if results
                    .send(ScriptResult {
                        instance,
                        script,
                        success,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }));
    }
    handles
}

/// keepalived's way: the command split on whitespace, no shell; killed at the timeout.
async fn run_script(command: &str, timeout: Duration) -> bool {
    let mut words = command.split_whitespace();
    let Some(program) = words.next() else {
        return false;
    };
    let child = tokio::process::Command::new(program)
        .args(words)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            warn!("track script {command:?}: {e}");
            return false;
        }
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status.success(),
        Ok(Err(_)) | Err(_) => false,
    }
}
