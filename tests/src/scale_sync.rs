//! syncd at scale (issue 20 item 5): its mirror holding 4 M connections, and a paced resync of
//! all of them to a late backup.
//!
//! What runs: syncd's own sans-IO core ([`syncd::engine::Engine`], the one the daemon wraps)
//! fed through real sockets in network namespaces on this machine's kernel, not the syncd
//! daemon: the daemon needs the IPVS netlink family at start, which this kernel lacks, and 4 M
//! real connection entries are out of reach in User-Mode Linux (the kernel would need
//! gigabytes, and traffic to create them). So:
//!
//! 1. a generator in host `ya` sends kernel-format version 1 sync messages (36-byte IPv4
//!    entries, 1472-byte payloads, built by syncd's codec, whose bytes the unit tests hold
//!    to a real kernel's) to the group 224.0.0.81:8848 over the LAN;
//! 2. in host `yb` a thread reads the group socket and hands every datagram to
//!    `Engine::handle_group`, as the daemon does with another director's kernel master;
//! 3. the generator keeps at most [`WINDOW`] entries ahead of what the engine has learned,
//!    so no queue on the way overflows and every entry arrives (checked);
//! 4. then `ya` sends a hello to the engine's unicast port and counts the entries the engine's
//!    paced resync sends back until its `ResyncDone`.
//!
//! Figures: the process's resident memory before and after the load (the generator and the
//! peer keep nothing per entry) and the mirror's own heap count, per connection; the load's
//! rate; the resync's duration from the hello to `ResyncDone`, the entries per second it
//! achieved against the configured `resync_rate`, and the engine thread's CPU over the
//! resync, its mean and its peak over half-second windows.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use socket2::{Domain, Protocol as SockProtocol, Socket, Type};
use syncd::engine::{Action, Engine, EngineConfig, Role};
use syncd::wire::hello;
use syncd::{Connection, MessageBuilder, ProtocolVersion};

use crate::lan::Lan;

/// The size issue 20 asks for.
pub const FULL_ENTRIES: usize = 4_000_000;
/// syncd's default `resync_rate`.
pub const DEFAULT_RATE: u32 = 100_000;

const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
const GROUP_PORT: u16 = 8848;
const PEER_PORT: u16 = 8849;
const ENGINE_PORT: u16 = 8850;
const SYNC_ID: u8 = 5;
const YA: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 21);
const YB: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 22);
/// Entries the generator may be ahead of the engine: ~250 messages. The veth under the LAN
/// queues received frames in the CPU's backlog (net.core.netdev_max_backlog, 1,000 by
/// default, shared with every other namespace): a window of 5,000 messages lost some there
/// when the machine was busy.
const WINDOW: usize = 10_000;
const SOCKET_BUFFER: usize = 64 << 20;
/// Client ports 1024..65535 on as many client hosts as it takes.
const PORTS_PER_CLIENT: usize = 64_512;

/// Connection `i`: a distinct client tuple (203.0.113.x:port) to 192.0.2.100:80 by NAT to one
/// of 50 real servers, ESTABLISHED with the kernel's 900 s timeout (so none expires during a
/// run). Documentation ranges only, as every test host.
pub fn connection(i: usize) -> Connection {
    let client = Ipv4Addr::new(
        203,
        0,
        113,
        u8::try_from(1 + i / PORTS_PER_CLIENT).expect("at most ~16 M connections"),
    );
    let dest = Ipv4Addr::new(198, 51, 100, 10 + (i % 50) as u8);
    Connection::tcp(
        SocketAddr::new(client.into(), (1024 + i % PORTS_PER_CLIENT) as u16),
        "192.0.2.100:80".parse().unwrap(),
        SocketAddr::new(dest.into(), 8080),
    )
    .expect("one family")
}

/// What a run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    pub entries: usize,
    pub learned: usize,
    pub load_secs: f64,
    /// The process's VmRSS before the engine existed and after the load, in kB.
    pub rss_before_kb: u64,
    pub rss_after_kb: u64,
    /// What the mirror says its heap holds.
    pub mirror_heap_bytes: usize,
    pub rate: u32,
    pub resync_secs: f64,
    /// Entries the peer received, and the count its `ResyncDone` announced.
    pub resync_received: usize,
    pub resync_announced: u32,
    /// The engine thread's CPU over the resync (share of a core): mean, and peak over
    /// half-second windows.
    pub resync_cpu_mean: f64,
    pub resync_cpu_peak: f64,
}

impl Figures {
    pub fn rss_bytes_per_conn(&self) -> f64 {
        (self.rss_after_kb.saturating_sub(self.rss_before_kb) * 1024) as f64 / self.learned as f64
    }

    pub fn heap_bytes_per_conn(&self) -> f64 {
        self.mirror_heap_bytes as f64 / self.learned as f64
    }

    pub fn resync_rate(&self) -> f64 {
        self.resync_received as f64 / self.resync_secs
    }
}

/// Moves the calling thread into the named network namespace: sockets it makes from then on
/// live there.
fn enter(netns: &str) -> io::Result<()> {
    let file = std::fs::File::open(format!("/run/netns/{netns}"))?;
    // SAFETY: setns(2) on a namespace file descriptor we hold open; it changes only this
    // thread's network namespace and touches no memory of ours.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn udp(bind: SocketAddrV4) -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(SockProtocol::UDP))?;
    socket.set_reuse_address(true)?;
    // Forced past rmem_max (we run as root): the load must not depend on the host's sysctls.
    socket.set_recv_buffer_size(SOCKET_BUFFER)?;
    // SAFETY: setsockopt(2) with a valid descriptor and an int-sized option value.
    unsafe {
        let size = SOCKET_BUFFER as libc::c_int;
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&raw const size).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    socket.bind(&SocketAddr::V4(bind).into())?;
    Ok(socket)
}

/// The generator: every entry to the group, at most WINDOW ahead of the engine.
fn generate(netns: &str, entries: usize, learned: &AtomicUsize) -> io::Result<()> {
    enter(netns)?;
    let socket: UdpSocket = udp(SocketAddrV4::new(YA, 0))?.into();
    socket.set_multicast_ttl_v4(1)?;
    socket.set_multicast_loop_v4(false)?;
    let to = SocketAddrV4::new(GROUP, GROUP_PORT);
    let mut builder = MessageBuilder::new(ProtocolVersion::V1, SYNC_ID);
    let mut sent = 0;
    for i in 0..entries {
        let full = builder
            .push(&connection(i))
            .map_err(|e| io::Error::other(e.to_string()))?;
        if let Some(message) = full {
            while sent > learned.load(Ordering::Acquire) + WINDOW {
                std::thread::sleep(Duration::from_micros(200));
            }
            socket.send_to(&message, to)?;
            sent = i;
        }
    }
    if let Some(message) = builder.flush() {
        socket.send_to(&message, to)?;
    }
    Ok(())
}

/// Sends the hello and counts the resync's entries until its `ResyncDone`.
fn late_backup(socket: &UdpSocket) -> io::Result<(usize, u32)> {
    let hello = hello::Repr::Hello { sync_id: SYNC_ID }.to_bytes();
    socket.send_to(&hello, SocketAddrV4::new(YB, ENGINE_PORT))?;
    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = vec![0u8; 65536];
    let mut received = 0;
    loop {
        let n = socket.recv(&mut buf)?;
        let datagram = &buf[..n];
        if hello::is_hello(datagram) {
            let packet = hello::Packet::new_checked(datagram)
                .map_err(|e| io::Error::other(e.to_string()))?;
            if let Ok(hello::Repr::ResyncDone { entries, .. }) = hello::Repr::parse(&packet) {
                return Ok((received, entries));
            }
            continue;
        }
        let decoded = syncd::wire::decode(datagram).map_err(|e| io::Error::other(e.to_string()))?;
        received += decoded
            .strict()
            .map_err(|e| io::Error::other(e.to_string()))?
            .1
            .len();
    }
}

fn engine_config(entries: usize, rate: u32) -> EngineConfig {
    EngineConfig {
        sync_id: SYNC_ID,
        version: ProtocolVersion::V1,
        max_len: 1472,
        peers: vec![SocketAddr::V4(SocketAddrV4::new(YA, PEER_PORT))],
        hello_interval: Duration::from_secs(3),
        resync_interval: Duration::from_secs(5),
        resync_rate: rate,
        group_sources: vec![IpNet::new(YA.into(), 32).expect("a /32")],
        max_entries: entries,
        ceilings: Default::default(),
        key: None,
    }
}

/// The engine's side of the load: learns from the group until `entries` are held or the
/// group goes quiet.
fn load(engine: &mut Engine, group: &UdpSocket, entries: usize, learned: &AtomicUsize) {
    let mut buf = vec![0u8; 65536];
    while engine.mirror().len() < entries {
        let Ok((n, from)) = group.recv_from(&mut buf) else {
            return;
        };
        engine.handle_group(from, &buf[..n], Instant::now());
        learned.store(engine.mirror().len(), Ordering::Release);
    }
}

/// The engine's side of the resync: answers the hello, paces the table out, until its
/// `ResyncSent`.
fn resync(engine: &mut Engine, unicast: &UdpSocket) -> io::Result<(f64, f64)> {
    let mut buf = vec![0u8; 65536];
    let mut meter = CpuMeter::new();
    loop {
        meter.tick();
        while let Some(action) = engine.poll_action() {
            match action {
                Action::SendPeer { to, payload } => {
                    unicast.send_to(&payload, to)?;
                }
                Action::ResyncSent { .. } => return Ok(meter.finish()),
                Action::Inject { .. } | Action::HellosUnanswered { .. } => {}
            }
        }
        let now = Instant::now();
        let wait = engine
            .poll_timeout()
            .map_or(Duration::from_secs(10), |at| {
                at.saturating_duration_since(now)
            })
            .min(CpuMeter::WINDOW);
        unicast.set_read_timeout(Some(wait.max(Duration::from_micros(100))))?;
        match unicast.recv_from(&mut buf) {
            Ok((n, from)) => engine.handle_unicast(from, &buf[..n], Instant::now()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                engine.handle_timeout(Instant::now());
            }
            Err(e) => return Err(e),
        }
    }
}

fn vm_rss_kb() -> u64 {
    crate::pair::rss_kb(std::process::id()).unwrap_or(0)
}

/// This thread's CPU time.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime(2) writes the timespec we pass and nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The calling thread's CPU as a share of a core: over its whole life (mean) and the busiest
/// half-second window (peak). [`CpuMeter::tick`] is called from the thread's loop.
struct CpuMeter {
    start: (Instant, Duration),
    window: (Instant, Duration),
    peak: f64,
}

impl CpuMeter {
    const WINDOW: Duration = Duration::from_millis(500);

    fn new() -> Self {
        let now = (Instant::now(), thread_cpu());
        CpuMeter {
            start: now,
            window: now,
            peak: 0.0,
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        if now - self.window.0 >= Self::WINDOW {
            let cpu = thread_cpu();
            let share = (cpu - self.window.1).as_secs_f64() / (now - self.window.0).as_secs_f64();
            self.peak = self.peak.max(share);
            self.window = (now, cpu);
        }
    }

    fn finish(mut self) -> (f64, f64) {
        self.tick();
        let wall = self.start.0.elapsed().as_secs_f64();
        (
            (thread_cpu() - self.start.1).as_secs_f64() / wall,
            self.peak,
        )
    }
}

/// What the engine's thread reports when the resync is done.
struct EngineSide {
    learned: usize,
    heap_bytes: usize,
    load_secs: f64,
    rss_after_kb: u64,
    /// Its CPU over the resync: mean and peak.
    cpu: (f64, f64),
}

/// The engine in `netns`: says when its sockets are ready, learns the load, says when it is
/// loaded, waits for the go, then serves the resync.
fn engine_thread(
    netns: &str,
    entries: usize,
    rate: u32,
    learned: &AtomicUsize,
    loaded: &std::sync::mpsc::Sender<()>,
    go: &std::sync::mpsc::Receiver<()>,
) -> io::Result<EngineSide> {
    enter(netns)?;
    let group: UdpSocket = udp(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, GROUP_PORT))?.into();
    group.join_multicast_v4(&GROUP, &YB)?;
    group.set_read_timeout(Some(Duration::from_secs(5)))?;
    let unicast: UdpSocket = udp(SocketAddrV4::new(YB, ENGINE_PORT))?.into();
    let mut engine = Engine::new(engine_config(entries, rate), Role::Master, Instant::now());
    let _ = loaded.send(());
    let started = Instant::now();
    load(&mut engine, &group, entries, learned);
    let load_secs = started.elapsed().as_secs_f64();
    let rss_after_kb = vm_rss_kb();
    let _ = loaded.send(());
    let _ = go.recv();
    let cpu = resync(&mut engine, &unicast)?;
    Ok(EngineSide {
        learned: engine.mirror().len(),
        heap_bytes: engine.mirror().heap_bytes(),
        load_secs,
        rss_after_kb,
        cpu,
    })
}

/// Loads `entries` connections into the engine through the group, then times a resync of them
/// at `rate` entries per second to a late backup.
pub fn run(entries: usize, rate: u32) -> Result<Figures, String> {
    let lan = Lan::new(&[("ya", &format!("{YA}/24")), ("yb", &format!("{YB}/24"))])?;
    let (ya, yb) = (lan.host(0).name().to_owned(), lan.host(1).name().to_owned());
    let rss_before_kb = vm_rss_kb();
    let learned = Arc::new(AtomicUsize::new(0));
    let (loaded_tx, loaded_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let engine_side = {
        let learned = Arc::clone(&learned);
        std::thread::spawn(move || engine_thread(&yb, entries, rate, &learned, &loaded_tx, &go_rx))
    };
    loaded_rx
        .recv()
        .map_err(|_| "the engine thread did not start")?;
    let generator = {
        let learned = Arc::clone(&learned);
        let ya = ya.clone();
        std::thread::spawn(move || generate(&ya, entries, &learned))
    };
    generator
        .join()
        .map_err(|_| "the generator panicked")?
        .map_err(|e| format!("generator: {e}"))?;
    loaded_rx
        .recv()
        .map_err(|_| "the engine thread ended during the load")?;
    // The late backup, in ya, asks for everything.
    let (backup_tx, backup_rx) = std::sync::mpsc::channel();
    let backup = std::thread::spawn(move || -> io::Result<(usize, u32)> {
        enter(&ya)?;
        let socket: UdpSocket = udp(SocketAddrV4::new(YA, PEER_PORT))?.into();
        let _ = backup_tx.send(());
        late_backup(&socket)
    });
    backup_rx
        .recv()
        .map_err(|_| "the late backup did not start")?;
    let started = Instant::now();
    let _ = go_tx.send(());
    let (resync_received, resync_announced) = backup
        .join()
        .map_err(|_| "the late backup panicked")?
        .map_err(|e| format!("late backup: {e}"))?;
    let resync_secs = started.elapsed().as_secs_f64();
    let side = engine_side
        .join()
        .map_err(|_| "the engine thread panicked")?
        .map_err(|e| format!("engine: {e}"))?;
    Ok(Figures {
        entries,
        learned: side.learned,
        load_secs: side.load_secs,
        rss_before_kb,
        rss_after_kb: side.rss_after_kb,
        mirror_heap_bytes: side.heap_bytes,
        rate,
        resync_secs,
        resync_received,
        resync_announced,
        resync_cpu_mean: side.cpu.0,
        resync_cpu_peak: side.cpu.1,
    })
}

/// The figures as the benchmark prints them.
pub fn report(f: &Figures) -> String {
    format!(
        "syncd at scale: {} connections (IPv4, kernel sync v1) through the group into syncd's \
         engine, then a paced resync to a late backup\n\
         learned                      {:>12} of {} in {:.1} s ({:.0} entries/s)\n\
         RSS                          {:>9.1} MB -> {:.1} MB: {:.1} B per connection \
         (mirror's own heap count {:.1} B)\n\
         resync                       {:>12} entries (ResyncDone says {}) in {:.2} s: {:.0} \
         entries/s against resync_rate {} ({:.1} %)\n\
         engine thread CPU in resync  mean {:.1} %, peak {:.1} % of a core (0.5 s windows)",
        f.entries,
        f.learned,
        f.entries,
        f.load_secs,
        f.learned as f64 / f.load_secs,
        f.rss_before_kb as f64 / 1024.0,
        f.rss_after_kb as f64 / 1024.0,
        f.rss_bytes_per_conn(),
        f.heap_bytes_per_conn(),
        f.resync_received,
        f.resync_announced,
        f.resync_secs,
        f.resync_rate(),
        f.rate,
        f.resync_rate() / f64::from(f.rate) * 100.0,
        f.resync_cpu_mean * 100.0,
        f.resync_cpu_peak * 100.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncd::ConnKey;

    /// 4 M connections are 4 M distinct mirror keys, all in documentation ranges.
    #[test]
    fn generated_connections_are_distinct_and_documentation_addresses() {
        let mut keys = std::collections::HashSet::new();
        for i in (0..FULL_ENTRIES).step_by(997).chain([FULL_ENTRIES - 1]) {
            let conn = connection(i);
            let (client, virtual_addr, dest) = conn.addrs.v4().unwrap();
            assert_eq!(client.octets()[..3], [203, 0, 113]);
            assert_eq!(virtual_addr.octets()[..3], [192, 0, 2]);
            assert_eq!(dest.octets()[..3], [198, 51, 100]);
            assert!(
                keys.insert(ConnKey::of(&conn)),
                "connection {i} repeats a key"
            );
        }
        assert_eq!(ConnKey::of(&connection(5)), ConnKey::of(&connection(5)));
        assert_ne!(
            ConnKey::of(&connection(0)),
            ConnKey::of(&connection(PORTS_PER_CLIENT))
        );
    }
}
