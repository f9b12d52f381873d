//! Benchmark of directord's checker alone, on this machine's own kernel: N TCP-connect and N
//! HTTP checks at a 1 s interval (timeout 1 s) against 2N listeners on loopback, the checker
//! on one thread (directord's current-thread runtime), the listener on another. Prints the
//! checks/s the listener saw, how many targets were checked on schedule, and the CPU the
//! checker's thread used: the "10,000 checks/s on one core" figure, which UML (one slow CPU
//! shared with the listener; see `cargo bench -p lvs-tests --bench checkbench`, which compares
//! with keepalived there) cannot give. IPVS is not involved: this measures the scheduler and
//! the probes, the same code the daemon runs.
//!
//! Run: `cargo bench -p directord --bench checker` (sizes: `-- 1000 5000`).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use directord::check::{ProbeContext, Scheduler, Server};

const WARM_UP: Duration = Duration::from_secs(5);
const WINDOW: Duration = Duration::from_secs(20);

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1000, 5000]
    } else {
        sizes
    };
    // Unprivileged (or in a container with a lower hard limit) the bench runs on with what
    // it has: N=5,000 needs about 20,000 descriptors.
    if let Err(e) = lvs_tests::check_targets::raise_fd_limit(1 << 16) {
        println!("({e}; keeping the current limit)");
    }
    println!(
        "{:>6} {:>9} {:>9} {:>12} {:>12} {:>13}",
        "N", "expected", "checks/s", "on schedule", "checker CPU", "µs CPU/check"
    );
    for n in sizes {
        run(n);
    }
}

fn run(n: usize) {
    let (ports, counts) = Listener::start(n);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let config: lvs_config::Config =
            toml::from_str(&config_text(&ports, n)).expect("the bench's config");
        let servers: Vec<(usize, Server)> = config
            .virtual_servers
            .iter()
            .flat_map(|vs| vs.real.iter().map(move |real| (vs, real)))
            .map(|(vs, real)| Server::from_config(vs, real).expect("check spec"))
            .enumerate()
            .collect();
        let (events, mut heard) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(async move { while heard.recv().await.is_some() {} });
        let mut scheduler =
            Scheduler::new(ProbeContext::system(), events, tokio::time::Instant::now());
        scheduler.update(servers, tokio::time::Instant::now());
        tokio::time::sleep(WARM_UP).await;

        let before: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let cpu_before = thread_cpu();
        let started = Instant::now();
        tokio::time::sleep(WINDOW).await;
        let cpu = thread_cpu() - cpu_before;
        let elapsed = started.elapsed();
        let mut per_target: Vec<u64> = counts
            .iter()
            .zip(&before)
            .map(|(c, b)| c.load(Ordering::Relaxed) - b)
            .collect();
        // The last is the listener's count of HTTP connections left without a request.
        per_target.pop();
        let total: u64 = per_target.iter().sum();
        // A 1 s interval gives WINDOW checks a target; one fewer allows for where the window
        // cuts the period, and the interval counts from each result as keepalived's does.
        let due = WINDOW.as_secs() - 1;
        let on_time = per_target.iter().filter(|&&c| c >= due).count();
        let mut row = String::new();
        let _ = write!(
            row,
            "{:>6} {:>9} {:>9.0} {:>11.1}% {:>11.1}% {:>13.1}",
            n,
            2 * n,
            total as f64 / elapsed.as_secs_f64(),
            on_time as f64 * 100.0 / per_target.len() as f64,
            cpu.as_secs_f64() * 100.0 / elapsed.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / total.max(1) as f64,
        );
        println!("{row}");
        drop(scheduler);
    });
}

fn config_text(ports: &[u16], n: usize) -> String {
    let mut text = String::new();
    for (service, check, range) in [
        (
            80,
            r#"{ type = "connect", interval = "1s", timeout = "1s", fall = 2, retry_delay = "1s" }"#,
            &ports[..n],
        ),
        (
            8080,
            r#"{ type = "http", path = "/", expect_status = ["200"], interval = "1s", timeout = "1s", fall = 2, retry_delay = "1s" }"#,
            &ports[n..],
        ),
    ] {
        let _ = write!(
            text,
            "\n[[virtual_server]]\naddress = \"192.0.2.1:{service}\"\nscheduler = \"wrr\"\n\
             forwarding = \"nat\"\ncheck = {check}\n"
        );
        for port in range {
            let _ = write!(
                text,
                "\n[[virtual_server.real]]\naddress = \"127.0.0.1:{port}\"\n"
            );
        }
    }
    text
}

/// N ports that accept and close, then N that answer 200 to a request, on a thread of their
/// own; counts the checks each port received (one count more: HTTP connections left without
/// a request).
struct Listener;

impl Listener {
    fn start(n: usize) -> (Vec<u16>, Arc<Vec<AtomicU64>>) {
        let counts: Arc<Vec<AtomicU64>> =
            Arc::new((0..=2 * n).map(|_| AtomicU64::new(0)).collect());
        let (ready, ports) = std::sync::mpsc::channel();
        let thread_counts = Arc::clone(&counts);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("listener runtime");
            runtime.block_on(async move {
                let mut bound = Vec::new();
                for index in 0..2 * n {
                    let socket = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind a loopback port");
                    bound.push(socket.local_addr().expect("local address").port());
                    tokio::spawn(lvs_tests::check_targets::serve(
                        socket,
                        index >= n,
                        Arc::clone(&thread_counts),
                        index,
                    ));
                }
                let _ = ready.send(bound);
                std::future::pending::<()>().await;
            });
        });
        (ports.recv().expect("the listener bound its ports"), counts)
    }
}

/// CPU time of the calling thread (the checker's runtime).
fn thread_cpu() -> Duration {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_THREAD)
        .expect("getrusage");
    let user = usage.user_time();
    let system = usage.system_time();
    Duration::new(user.tv_sec() as u64, user.tv_usec() as u32 * 1000)
        + Duration::new(system.tv_sec() as u64, system.tv_usec() as u32 * 1000)
}
