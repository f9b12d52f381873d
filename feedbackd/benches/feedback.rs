//! feedbackd's costs, measured on loopback:
//! - the agent: replies per second under concurrent clients, and its CPU and RSS while idle,
//!   against a bare accept/write/close loop measured with the same clients;
//! - the director side: polling 1,000 agents every second, its CPU and RSS.
//!
//! Run: `cargo build --release --bins && cargo bench -p feedbackd --bench feedback`
//! (`-- agent` or `-- director` for one part).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CLIENTS: usize = 64;
const AGENTS: u16 = 1000;

fn feedbackd() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let release = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/release/deps");
    let path = release.join("feedbackd");
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --release --bins` first",
        path.display()
    );
    path
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    stat_cpu_seconds(&format!("/proc/{pid}/stat"))
}

/// utime + stime from a /proc stat file (a process's or a thread's), in seconds.
fn stat_cpu_seconds(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
        f.iter().filter_map(|v| v.parse::<f64>().ok()).sum()
    });
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str], config: &Path) -> Killed {
    let child = Command::new(feedbackd())
        .args(args)
        .arg("--config")
        .arg(config)
        .env("LVS_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start feedbackd");
    Killed(child)
}

async fn ask(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return false;
    };
    let mut reply = Vec::with_capacity(32);
    stream.read_to_end(&mut reply).await.is_ok() && reply.ends_with(b"\n")
}

async fn agent(dir: &Path) {
    let port = 39_333;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[control]\nsocket_dir = \"{d}\"\n[agent]\nlisten = \"{addr}\"\noverride_file = \"{d}/override\"\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let agent = spawn(&["--agent"], &config);
    let pid = agent.0.id();
    while !ask(addr).await {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu_idle_start = cpu_seconds(pid);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_cpu = (cpu_seconds(pid) - cpu_idle_start) / 5.0 * 100.0;
    let idle_rss = rss_mb(pid);

    let cpu_start = cpu_seconds(pid);
    let (replies, elapsed) = hammer(addr).await;
    let cpu = cpu_seconds(pid) - cpu_start;
    // The clients share the machine's cores with the agent, so wall-clock replies/s depends on
    // the client side too; replies per agent CPU-second is the agent's own cost.
    let ours = replies as f64 / cpu.max(1e-9);
    println!(
        "agent: {replies} replies in {elapsed:.1} s = {:.0} replies/s with {CLIENTS} clients; agent CPU {cpu:.2} s ({:.0}% of one core); {ours:.0} replies per agent CPU-second (target >= 50,000 on one core)",
        replies as f64 / elapsed,
        cpu / elapsed * 100.0,
    );
    println!(
        "agent idle: {idle_cpu:.2}% CPU, {idle_rss:.1} MB RSS; under load {:.1} MB RSS",
        rss_mb(pid)
    );
    drop(agent);

    let (replies, elapsed, cpu) = reference_agent(([127, 0, 0, 1], port + 1).into()).await;
    let floor = replies as f64 / cpu.max(1e-9);
    println!(
        "reference (bare std accept/write/close loop, same clients): {:.0} replies/s; CPU {cpu:.2} s; {floor:.0} replies per CPU-second; feedbackd reaches {:.0}% of it",
        replies as f64 / elapsed,
        ours / floor * 100.0
    );
}

/// `CLIENTS` concurrent clients asking `addr` for a few seconds: replies received, seconds.
async fn hammer(addr: SocketAddr) -> (u64, f64) {
    let run = Duration::from_secs(5);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while started.elapsed() < run {
                if ask(addr).await {
                    n += 1;
                }
            }
            n
        }));
    }
    let mut replies = 0;
    for task in tasks {
        replies += task.await.unwrap();
    }
    (replies, started.elapsed().as_secs_f64())
}

/// The least any agent can do per connection, as a yardstick measured in the same run: a
/// thread of this process with std's blocking accept, one write of a fixed line and close,
/// nothing else. Its CPU comes from its own /proc/thread-self/stat, counted like the agent's.
async fn reference_agent(addr: SocketAddr) -> (u64, f64, f64) {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    let listener = std::net::TcpListener::bind(addr).expect("bind the reference agent");
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let thread = std::thread::spawn({
        let stop = std::sync::Arc::clone(&stop);
        move || {
            let start = stat_cpu_seconds("/proc/thread-self/stat");
            while let Ok((mut conn, _)) = listener.accept() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let _ = conn.write_all(b"ready 100% up\n");
            }
            stat_cpu_seconds("/proc/thread-self/stat") - start
        }
    });
    let (replies, elapsed) = hammer(addr).await;
    stop.store(true, Ordering::Relaxed);
    let _ = std::net::TcpStream::connect(addr);
    let cpu = thread.join().expect("reference agent thread");
    (replies, elapsed, cpu)
}

async fn director(dir: &Path) {
    // 1,000 agents: one task answering on 1,000 ports, as real agents would.
    let base = 40_000;
    for i in 0..AGENTS {
        let listener = TcpListener::bind(("127.0.0.1", base + i))
            .await
            .expect("bind agent port");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream.write_all(b"ready 50% up\n").await;
            }
        });
    }
    // A stand-in directord control socket that accepts every weight.
    let (requests_tx, mut requests) = tokio::sync::mpsc::channel::<
        lvs_control::Incoming<lvs_control::directord::Request, lvs_control::directord::Response>,
    >(1024);
    let (events, _) = tokio::sync::broadcast::channel::<()>(1);
    let listener = lvs_control::bind(&lvs_control::socket_path(dir, "directord")).unwrap();
    tokio::spawn(lvs_control::serve(
        listener,
        requests_tx,
        events,
        tokio_util::sync::CancellationToken::new(),
    ));
    let handed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = std::sync::Arc::clone(&handed);
    tokio::spawn(async move {
        while let Some(incoming) = requests.recv().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            incoming.reply_ok(lvs_control::directord::Response::Done {});
        }
    });

    let mut config = format!(
        "[control]\nsocket_dir = \"{}\"\n\n[[virtual_server]]\naddress = \"192.0.2.100:80\"\n",
        dir.display()
    );
    for i in 0..AGENTS {
        config.push_str(&format!(
            "\n[[virtual_server.real]]\naddress = \"198.51.{}.{}:80\"\nweight = 100\n",
            100 + i / 250,
            1 + i % 250
        ));
    }
    config.push_str("\n[feedback]\ninterval = \"1s\"\ntimeout = \"500ms\"\n");
    for i in 0..AGENTS {
        config.push_str(&format!(
            "\n[[feedback.agent]]\nreal = \"198.51.{}.{}:80\"\naddress = \"127.0.0.1:{}\"\n",
            100 + i / 250,
            1 + i % 250,
            base + i
        ));
    }
    let path = dir.join("director.toml");
    std::fs::write(&path, config).unwrap();
    let poller = spawn(&[], &path);
    let pid = poller.0.id();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cpu_start = cpu_seconds(pid);
    let window = 20.0;
    tokio::time::sleep(Duration::from_secs_f64(window)).await;
    let cpu = (cpu_seconds(pid) - cpu_start) / window * 100.0;
    println!(
        "director: {AGENTS} agents polled every 1 s: {cpu:.1}% of one core, {:.1} MB RSS; {} weight hand-overs to directord",
        rss_mb(pid),
        handed.load(std::sync::atomic::Ordering::Relaxed)
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let agent_dir = dir.path().join("agent");
    let director_dir = dir.path().join("director");
    std::fs::create_dir_all(&agent_dir).unwrap();
    std::fs::create_dir_all(&director_dir).unwrap();
    // `cargo bench ... -- agent` (or `director`) runs one part only.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |part: &str| only.is_empty() || only.iter().any(|a| a == part);
    if wanted("agent") {
        runtime.block_on(agent(&agent_dir));
    }
    if wanted("director") {
        runtime.block_on(director(&director_dir));
    }
}
