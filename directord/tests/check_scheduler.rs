//! The scheduler end to end: real probes (external commands and TCP connects on loopback),
//! real time, transitions read from its channel.

mod check_support;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use check_support::{free_tcp_port, local, spec};
use directord::check::spec::{External, Kind, Target};
use directord::check::{Event, ProbeContext, Scheduler, Server};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

fn external(command: &str, dynamic_weight: bool) -> Kind {
    Kind::External(External {
        command: command.into(),
        dynamic_weight,
    })
}

fn server(kind: Kind, port: u16, interval_ms: u64) -> Server {
    let mut spec = spec(kind);
    spec.timing.interval = Duration::from_millis(interval_ms);
    spec.timing.retry_delay = Duration::from_millis(interval_ms);
    Server::new(spec, Target::new(local(port)))
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

async fn next_event<Id>(events: &mut mpsc::Receiver<Event<Id>>, within: Duration) -> Event<Id> {
    tokio::time::timeout(within, events.recv())
        .await
        .expect("no event in time")
        .expect("scheduler gone")
}

async fn no_event(events: &mut mpsc::Receiver<Event<u32>>, during: Duration) {
    if let Ok(Some(event)) = tokio::time::timeout(during, events.recv()).await {
        panic!("unexpected event {event:?}");
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn first_runs_are_spread_over_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs");
    let command = format!("echo $LVS_REAL_PORT $(date +%s%N) >> {}", log.display());
    let (tx, _events) = mpsc::channel(16);
    let mut scheduler = Scheduler::new(ProbeContext::system(), tx, tokio::time::Instant::now());
    let started = now_ns();
    scheduler.update(
        (0..5u32).map(|i| (i, server(external(&command, false), 1000 + i as u16, 1000))),
        tokio::time::Instant::now(),
    );
    tokio::time::sleep(Duration::from_millis(950)).await;
    let mut offsets_ms: Vec<(u16, u128)> = lines(&log)
        .iter()
        .map(|line| {
            let (port, ns) = line.split_once(' ').unwrap();
            (
                port.parse().unwrap(),
                (ns.parse::<u128>().unwrap() - started) / 1_000_000,
            )
        })
        .collect();
    offsets_ms.sort_by_key(|&(_, ms)| ms);
    assert_eq!(
        offsets_ms.len(),
        5,
        "each server probed once: {offsets_ms:?}"
    );
    for (slot, &(port, ms)) in offsets_ms.iter().enumerate() {
        assert_eq!(
            port,
            1000 + slot as u16,
            "slot order follows the update order"
        );
        let expected = slot as u128 * 200;
        assert!(
            (expected..expected + 120).contains(&ms),
            "server {slot} first probed at {ms} ms, expected about {expected} ms: {offsets_ms:?}"
        );
    }
}

#[tokio::test]
async fn probes_of_one_server_never_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs");
    let command = format!(
        "echo start >> {0}; sleep 0.25; echo end >> {0}",
        log.display()
    );
    let (tx, _events) = mpsc::channel(16);
    let mut scheduler = Scheduler::new(ProbeContext::system(), tx, tokio::time::Instant::now());
    // The interval is far shorter than a probe.
    scheduler.insert(
        1u32,
        server(external(&command, false), 80, 20),
        tokio::time::Instant::now(),
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    drop(scheduler);
    let seen = lines(&log);
    assert!(seen.len() >= 6, "{seen:?}");
    for (i, line) in seen.iter().enumerate() {
        let expected = if i % 2 == 0 { "start" } else { "end" };
        assert_eq!(line, expected, "probes overlapped: {seen:?}");
    }
}

#[tokio::test]
async fn rise_and_fall_end_to_end() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, mut events) = mpsc::channel(16);
    let mut scheduler = Scheduler::new(ProbeContext::system(), tx, tokio::time::Instant::now());
    let mut check = server(Kind::Connect, port, 50);
    check.spec.timing.rise = 2;
    check.spec.timing.fall = 3;
    scheduler.insert(7u32, check, tokio::time::Instant::now());
    no_event(&mut events, Duration::from_millis(300)).await;
    assert!(scheduler.health(&7).unwrap().probes >= 3);

    drop(listener);
    let started = std::time::Instant::now();
    let down = next_event(&mut events, Duration::from_secs(2)).await;
    assert_eq!(
        (down.id, down.up, down.detail.as_str()),
        (7, false, "connect refused")
    );
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "three failures 50 ms apart"
    );
    assert!(!scheduler.health(&7).unwrap().up);

    let _listener = TcpListener::bind(local(port)).await.unwrap();
    let up = next_event(&mut events, Duration::from_secs(2)).await;
    assert_eq!((up.id, up.up, up.weight), (7, true, None));
    no_event(&mut events, Duration::from_millis(200)).await;
}

#[tokio::test]
async fn reload_keeps_health_of_kept_servers() {
    let closed = free_tcp_port();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open = listener.local_addr().unwrap().port();
    let (tx, mut events) = mpsc::channel(16);
    let mut scheduler = Scheduler::new(ProbeContext::system(), tx, tokio::time::Instant::now());
    let failing = server(Kind::Connect, closed, 50);
    scheduler.update(
        [
            (1u32, failing.clone()),
            (2, server(Kind::Connect, open, 50)),
        ],
        tokio::time::Instant::now(),
    );
    let down = next_event(&mut events, Duration::from_secs(2)).await;
    assert_eq!((down.id, down.up), (1, false));

    // The same config again, less server 2: server 1 stays down (no reset to the initial
    // up state, so no event), server 2 is gone.
    scheduler.update([(1u32, failing.clone())], tokio::time::Instant::now());
    assert!(!scheduler.health(&1).unwrap().up);
    assert_eq!(scheduler.health(&2), None);
    assert_eq!(scheduler.len(), 1);
    no_event(&mut events, Duration::from_millis(300)).await;

    // A changed check takes over from the next probe, from the state the server is in.
    let mut fixed = failing;
    fixed.spec.kind = Kind::On;
    scheduler.update([(1u32, fixed)], tokio::time::Instant::now());
    let up = next_event(&mut events, Duration::from_secs(2)).await;
    assert_eq!((up.id, up.up, up.detail.as_str()), (1, true, "check is on"));

    // A server adopted as down from the kernel table starts down whatever its check says.
    let mut adopted = server(Kind::Connect, open, 50);
    adopted.initial_up = Some(false);
    scheduler.insert(3, adopted, tokio::time::Instant::now());
    let up = next_event(&mut events, Duration::from_secs(2)).await;
    assert_eq!((up.id, up.up), (3, true));
    assert!(scheduler.remove(&3));
    assert!(!scheduler.remove(&3));
}

#[tokio::test]
async fn dynamic_weight_follows_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::write(&code, "7").unwrap();
    let (tx, mut events) = mpsc::channel(16);
    let mut scheduler = Scheduler::new(ProbeContext::system(), tx, tokio::time::Instant::now());
    scheduler.insert(
        1u32,
        server(
            external(&format!("exit $(cat {})", code.display()), true),
            80,
            50,
        ),
        tokio::time::Instant::now(),
    );
    let first = next_event(&mut events, Duration::from_secs(2)).await;
    assert_eq!((first.up, first.weight), (true, Some(5)));
    std::fs::write(&code, "12").unwrap();
    let second = next_event(&mut events, Duration::from_secs(2)).await;
    assert_eq!((second.up, second.weight), (true, Some(10)));
    std::fs::write(&code, "1").unwrap();
    let third = next_event(&mut events, Duration::from_secs(2)).await;
    assert_eq!(
        (third.up, third.weight, third.detail.as_str()),
        (false, None, "exit 1")
    );
}

/// A loopback listener that counts the connections it accepts, until dropped.
struct Counting {
    port: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Counting {
    fn start() -> Counting {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (count, done) = (accepted.clone(), stop.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok(_) => {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Counting {
            port,
            accepted,
            stop,
        }
    }

    fn count(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

// Four services list the same two real servers with the same connect check: each server is
// connected to once per interval, not once per service (keepalived: four times), counted by
// the listeners themselves; and a server that stops answering is one event that the daemon
// fans out to all four of its entries.
#[tokio::test]
async fn services_sharing_a_real_server_probe_it_once_per_interval() {
    use directord::check::{Checks, dedup};
    let reals = [Counting::start(), Counting::start()];
    let mut text = String::new();
    for service in 0..4 {
        text.push_str(&format!(
            "[[virtual_server]]\naddress = \"192.0.2.{}:80\"\nforwarding = \"nat\"\n\
             check = {{ type = \"connect\", interval = \"200ms\", timeout = \"1s\" }}\n\
             real = [{{ address = \"127.0.0.1:{}\" }}, {{ address = \"127.0.0.1:{}\" }}]\n",
            100 + service,
            reals[0].port,
            reals[1].port
        ));
    }
    let config = lvs_config::parse(&text, "shared.toml").expect("valid config");
    let entries: Vec<_> = dedup::entries(&config)
        .map(|(id, server)| (id, server.unwrap()))
        .collect();
    assert_eq!(entries.len(), 8);
    let mut checks = Checks::new();
    let (tx, mut events) = mpsc::channel(16);
    let mut scheduler = Scheduler::new(ProbeContext::system(), tx, tokio::time::Instant::now());
    scheduler.update(checks.update(entries), tokio::time::Instant::now());
    assert_eq!(scheduler.len(), 2);

    tokio::time::sleep(Duration::from_millis(2100)).await;
    // 2.1 s at 200 ms: 10 or 11 probes each; one per entry would be 40 or more.
    for real in &reals {
        let n = real.count();
        assert!(
            (8..=12).contains(&n),
            "{n} connections to port {}",
            real.port
        );
    }

    let [first, _second] = reals;
    let gone = first.port;
    drop(first);
    // The port closes with the listener's thread: wait for the refusal.
    let event = loop {
        let event = next_event(&mut events, Duration::from_secs(3)).await;
        if !event.up {
            break event;
        }
    };
    let fanned: Vec<_> = checks.entries(event.id).to_vec();
    assert_eq!(fanned.len(), 4, "{fanned:?}");
    assert!(fanned.iter().all(|(_, real)| real.port() == gone));
}

// keepalived virtual_server_group: eight services of one group, two real servers, one
// external check. The command runs once per real server per interval for the whole group
// (an import used to make it eight services whose command ran eight times), counted by the
// command itself; it sees the group's first address.
#[tokio::test]
async fn a_groups_external_check_runs_once_per_interval() {
    use directord::check::{Checks, dedup};
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs");
    let text = format!(
        "[[virtual_server]]\ngroup = [\"192.0.2.100-107:80\"]\nforwarding = \"nat\"\n\
         check = {{ type = \"external\", command = \"echo $LVS_VIRTUAL_IP $LVS_REAL_PORT >> {}\", \
         interval = \"250ms\", timeout = \"1s\" }}\n\
         real = [{{ address = \"127.0.0.1:1001\" }}, {{ address = \"127.0.0.1:1002\" }}]\n",
        log.display()
    );
    let config = lvs_config::parse(&text, "group.toml").expect("valid config");
    assert_eq!(config.virtual_servers.len(), 8);
    let entries: Vec<_> = dedup::entries(&config)
        .map(|(id, server)| (id, server.unwrap()))
        .collect();
    let mut checks = Checks::new();
    let (tx, _events) = mpsc::channel(16);
    let mut scheduler = Scheduler::new(ProbeContext::system(), tx, tokio::time::Instant::now());
    scheduler.update(checks.update(entries), tokio::time::Instant::now());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let runs = lines(&log);
    for port in ["1001", "1002"] {
        let n = runs.iter().filter(|l| l.ends_with(port)).count();
        // 1.1 s at 250 ms: 4 or 5 runs; one per service would be 32 or more.
        assert!((3..=6).contains(&n), "{n} runs for port {port}: {runs:?}");
    }
    assert!(
        runs.iter().all(|l| l.starts_with("192.0.2.100 ")),
        "{runs:?}"
    );
}
