//! syncd's figures against issue 7's targets, with plain std timing (no bench framework):
//!
//! - codec: entries encoded (MessageBuilder) and decoded (wire::decode) per second on one
//!   core, IPv4 entries, version 1 and version 0 (target >= 5 M/s for v1);
//! - wire: bytes per connection in full messages, against the kernel's 24 B (v0) / 36 B (v1)
//!   entry sizes;
//! - mirror: heap bytes per mirrored connection with 1 M entries, from a counting allocator,
//!   and the RSS growth beside it (target <= 128 B);
//! - relay: updates per second a master engine forwards over loopback UDP to a backup engine
//!   that injects them, at the highest offered rate with zero loss (target >= 200,000/s).
//!
//! Run: `cargo bench -p syncd --bench codec`. The machine is shared, so figures are a floor.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use syncd::engine::{Action, Engine, EngineConfig, Role};
use syncd::wire::{self, MessageBuilder, ProtocolVersion};
use syncd::{Connection, Mirror};

/// Counts live heap bytes, so the mirror's footprint is measured rather than estimated.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers every call to the system allocator unchanged and only keeps a tally.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The n-th of a family of distinct established NAT connections, as a kernel master syncs
/// them: client 192.0.2.0/24-ish addresses and ports, one VIP, four real servers.
fn connection(n: u32) -> Connection {
    let client = Ipv4Addr::from(0xc000_0000 | (n >> 16));
    let dest = Ipv4Addr::new(198, 51, 100, 11 + (n % 4) as u8);
    Connection::tcp(
        SocketAddr::new(client.into(), (n & 0xffff) as u16),
        "203.0.113.100:80".parse().unwrap(),
        SocketAddr::new(dest.into(), 8080),
    )
    .expect("one family")
}

fn connections(count: u32) -> Vec<Connection> {
    (0..count).map(connection).collect()
}

/// Builds every message for `conns` with the default 1472-byte limit.
fn encode(version: ProtocolVersion, conns: &[Connection]) -> Vec<Vec<u8>> {
    let mut builder = MessageBuilder::new(version, 5);
    let mut messages = Vec::new();
    for conn in conns {
        if let Some(full) = builder.push(conn).expect("encodable") {
            messages.push(full);
        }
    }
    messages.extend(builder.flush());
    messages
}

struct Codec {
    encode_per_sec: f64,
    decode_per_sec: f64,
    round_trip_per_sec: f64,
    bytes_per_conn: f64,
}

/// Repeats encode and decode over `conns` for at least `budget` each; every pass checks that
/// all entries came back, so a codec that drops entries cannot look fast.
fn codec(version: ProtocolVersion, conns: &[Connection], budget: Duration) -> Codec {
    let messages = encode(version, conns);
    let wire_bytes: usize = messages.iter().map(Vec::len).sum();

    let rate = |mut pass: Box<dyn FnMut() -> usize + '_>| {
        let started = Instant::now();
        let mut entries = 0usize;
        while started.elapsed() < budget {
            entries += pass();
        }
        entries as f64 / started.elapsed().as_secs_f64()
    };
    let expected = conns.len();
    let encode_per_sec = rate(Box::new(|| {
        let built = encode(version, black_box(conns));
        assert!(!built.is_empty());
        black_box(built);
        expected
    }));
    let decode_per_sec = rate(Box::new(|| {
        let decoded: usize = black_box(&messages)
            .iter()
            .map(|m| wire::decode(m).expect("decodable").conns.len())
            .sum();
        assert_eq!(decoded, expected);
        decoded
    }));
    let round_trip_per_sec = rate(Box::new(|| {
        let decoded: usize = encode(version, black_box(conns))
            .iter()
            .map(|m| wire::decode(m).expect("decodable").conns.len())
            .sum();
        assert_eq!(decoded, expected);
        decoded
    }));
    Codec {
        encode_per_sec,
        decode_per_sec,
        round_trip_per_sec,
        bytes_per_conn: wire_bytes as f64 / conns.len() as f64,
    }
}

fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * usize::try_from(page).ok()?)
}

struct MirrorFootprint {
    entries: usize,
    heap_per_conn: f64,
    /// After every entry was refreshed once.
    refreshed_per_conn: f64,
    /// What the mirror says it holds, to cross-check the allocator's count.
    reported_per_conn: f64,
    rss_per_conn: Option<f64>,
}

/// The connections are made one at a time and handed over, so what stays allocated after the
/// loop is the mirror alone.
fn mirror_footprint(count: u32) -> MirrorFootprint {
    let now = Instant::now();
    let heap_before = LIVE.load(Ordering::Relaxed);
    let rss_before = rss_bytes();
    let mut mirror = Mirror::new();
    for n in 0..count {
        mirror.apply(connection(n), now);
    }
    let heap = LIVE.load(Ordering::Relaxed) - heap_before;
    let rss = rss_bytes()
        .zip(rss_before)
        .map(|(after, before)| after.saturating_sub(before));
    let entries = mirror.len();
    assert_eq!(
        entries, count as usize,
        "distinct connections, distinct keys"
    );
    let reported = mirror.heap_bytes();
    // Every connection then changes state once (ESTABLISHED -> FIN_WAIT), as traffic does:
    // refreshes leave outdated expiry pairs behind until they are swept, so this is the
    // footprint a busy table settles at.
    for n in 0..count {
        let mut update = connection(n);
        update.state = 4;
        update.timeout = 120;
        mirror.apply(update, now + Duration::from_secs(1));
    }
    let heap_refreshed = LIVE.load(Ordering::Relaxed) - heap_before;
    assert_eq!(mirror.len(), entries);
    black_box(&mirror);
    MirrorFootprint {
        entries,
        heap_per_conn: heap as f64 / entries as f64,
        refreshed_per_conn: heap_refreshed as f64 / entries as f64,
        reported_per_conn: reported as f64 / entries as f64,
        rss_per_conn: rss.map(|r| r as f64 / entries as f64),
    }
}

struct Relay {
    offered_per_sec: f64,
    delivered: u64,
    sent: u64,
    achieved_per_sec: f64,
}

/// A master engine fed the kernel master's messages at `offered` updates/s for `length`,
/// forwarding to a backup engine over loopback UDP; the backup counts entries it injects.
fn relay(kernel_messages: &[Vec<u8>], per_message: usize, offered: f64, length: Duration) -> Relay {
    let master_socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let backup_socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .expect("socket");
    // Room for a burst between two reads (the kernel caps it at net.core.rmem_max).
    let _ = backup_socket.set_recv_buffer_size(4 << 20);
    backup_socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    let backup_socket: UdpSocket = backup_socket.into();
    backup_socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let master_addr = master_socket.local_addr().expect("addr");
    let backup_addr = backup_socket.local_addr().expect("addr");
    let config = |peer: SocketAddr| EngineConfig {
        sync_id: 5,
        version: ProtocolVersion::V1,
        max_len: 1472,
        peers: vec![peer],
        hello_interval: Duration::from_secs(1),
        resync_interval: Duration::from_secs(60),
        resync_rate: 0,
        group_sources: Vec::new(),
        max_entries: usize::MAX,
        ceilings: syncd::TimeoutCeilings::default(),
        key: None,
    };

    let backup = std::thread::spawn(move || {
        let mut engine = Engine::new(config(master_addr), Role::Backup, Instant::now());
        let mut buf = [0u8; 65536];
        let mut injected = 0u64;
        while let Ok((len, from)) = backup_socket.recv_from(&mut buf) {
            engine.handle_unicast(from, &buf[..len], Instant::now());
            while let Some(action) = engine.poll_action() {
                if let Action::Inject { payload } = action {
                    injected += wire::decode(&payload).map_or(0, |d| d.conns.len() as u64);
                }
            }
        }
        injected
    });

    let mut engine = Engine::new(config(backup_addr), Role::Master, Instant::now());
    let started = Instant::now();
    let mut sent = 0u64;
    let mut next = 0usize;
    while started.elapsed() < length {
        // Paced by the clock: behind schedule, catch up; ahead, yield.
        let due = (started.elapsed().as_secs_f64() * offered) as u64;
        if sent >= due {
            std::thread::yield_now();
            continue;
        }
        let now = Instant::now();
        engine.handle_observed(&kernel_messages[next % kernel_messages.len()], now);
        next += 1;
        sent += per_message as u64;
        while let Some(action) = engine.poll_action() {
            if let Action::SendPeer { to, payload } = action {
                master_socket.send_to(&payload, to).expect("send");
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let delivered = backup.join().expect("backup thread");
    Relay {
        offered_per_sec: offered,
        delivered,
        sent,
        achieved_per_sec: sent as f64 / elapsed,
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs a short smoke pass.
    let full = std::env::args().any(|a| a == "--bench");
    let budget = if full {
        Duration::from_secs(2)
    } else {
        Duration::from_millis(50)
    };
    let conns = connections(100_000);

    println!("\nsyncd codec, one core, IPv4 TCP entries in 1472-byte messages");
    println!(
        "{:<8} {:>14} {:>14} {:>16} {:>12} {:>12}",
        "version", "encode/s", "decode/s", "enc+dec/s", "B/conn", "kernel B"
    );
    for (version, kernel) in [(ProtocolVersion::V1, 36), (ProtocolVersion::V0, 24)] {
        let c = codec(version, &conns, budget);
        println!(
            "{:<8} {:>14.0} {:>14.0} {:>16.0} {:>12.2} {:>12}",
            version.as_str(),
            c.encode_per_sec,
            c.decode_per_sec,
            c.round_trip_per_sec,
            c.bytes_per_conn,
            kernel
        );
    }
    println!(
        "(B/conn includes the message header; enc+dec/s is one entry built and parsed, target >= 5,000,000)"
    );

    let count = if full { 1_000_000 } else { 10_000 };
    let m = mirror_footprint(count);
    println!("\nmirror table, {} IPv4 connections", m.entries);
    println!(
        "  heap per connection: {:.1} B (target <= 128); RSS growth per connection: {}",
        m.heap_per_conn,
        m.rss_per_conn
            .map_or("n/a".to_owned(), |r| format!("{r:.1} B"))
    );
    println!(
        "  heap per connection after every entry changed state once: {:.1} B (target <= 128)",
        m.refreshed_per_conn
    );
    println!(
        "  heap the mirror reports holding: {:.1} B per connection; a Connection is {} B",
        m.reported_per_conn,
        std::mem::size_of::<Connection>()
    );

    let kernel_messages = encode(ProtocolVersion::V1, &conns[..40_000]);
    let per_message = wire::decode(&kernel_messages[0])
        .expect("decodable")
        .conns
        .len();
    let length = if full {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(100)
    };
    println!("\nrelay master -> backup engine over loopback UDP, {per_message} entries/message");
    println!(
        "{:>14} {:>14} {:>12} {:>12} {:>8}",
        "offered/s", "achieved/s", "sent", "injected", "lost"
    );
    let mut best_lossless = 0.0f64;
    let mut offered = 100_000.0;
    while offered <= 6_400_000.0 {
        let r = relay(&kernel_messages, per_message, offered, length);
        let lost = r.sent.saturating_sub(r.delivered);
        println!(
            "{:>14.0} {:>14.0} {:>12} {:>12} {:>8}",
            r.offered_per_sec, r.achieved_per_sec, r.sent, r.delivered, lost
        );
        if lost == 0 {
            best_lossless = best_lossless.max(r.achieved_per_sec);
        }
        if lost > 0 || r.achieved_per_sec < 0.9 * offered || !full {
            break;
        }
        offered *= 2.0;
    }
    println!("highest rate with zero loss: {best_lossless:.0} updates/s (target >= 200,000)");
}
