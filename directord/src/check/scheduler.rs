//! Runs the checks of every real server: one tokio task per server, so a server's probes run
//! one after another (never two at once, a slow server delays only itself) and a thousand
//! servers cost a thousand small tasks, not threads.
//!
//! The first probe of each server added in one [`Scheduler::update`] is placed at
//! `i / n` of its interval, so a director starting with many servers does not probe them all
//! in the same instant. Servers added later one by one take golden-ratio offsets, which stay
//! evenly spread however many come.
//!
//! The clock comes in as an argument (`now`), as in the other cores: the grid starts at the
//! `now` the scheduler was made with, and first probes are placed from the `now` of the
//! update that added them. Each server's task sleeps and reads the time on tokio's clock, so
//! a test on a paused runtime runs the schedule on a fake one.
//!
//! Probes start on a grid of [`SLOT`]s: the ones that fall in the same slot share one wake-up
//! of the runtime (timers, epoll, clock reads) instead of one each, which at thousands of
//! probes a second is most of what a probe costs beyond its own socket calls.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tracing::warn;

use super::health::{DownCause, Exhausted, HealthState, Transition, Verdict};
use super::probe::{self, ProbeContext};
use super::spec::{CheckSpec, SpecError, Target};

/// The grid probe starts are put on: fine enough against the usual 1 s interval that
/// checks stay spread over it. Not a divisor or multiple of a kernel tick (10 ms at HZ=100,
/// 4 ms at HZ=250): kernels that account CPU time by sampling at the tick would otherwise
/// catch the checker's wake-ups always or never, and `top` would show it busy or idle by
/// the phase it happened to start at.
pub const SLOT: Duration = Duration::from_millis(7);

/// The first slot boundary at or after `t`.
fn on_grid(origin: Instant, t: Instant) -> Instant {
    let slot = SLOT.as_nanos();
    let since = t.saturating_duration_since(origin).as_nanos();
    let slots = since.div_ceil(slot);
    origin + Duration::from_nanos(u64::try_from(slots * slot).unwrap_or(u64::MAX))
}

/// Probes whose result was unknown, by the director's resource that ran out.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UnknownLabels {
    pub cause: Exhausted,
}

/// Probes that found the server down, by why.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DownLabels {
    pub cause: DownCause,
}

/// The counters the probes feed (metrics, when registered).
#[derive(Debug, Clone, Default)]
pub struct ProbeCounters {
    pub unknown: Family<UnknownLabels, Counter>,
    pub down: Family<DownLabels, Counter>,
}

/// How often a shortage is logged at most: with thousands of servers, every probe in a
/// shortage would otherwise log the same line.
const UNKNOWN_LOG_EVERY: Duration = Duration::from_secs(10);

/// One server to check.
#[derive(Debug, Clone)]
pub struct Server {
    pub spec: CheckSpec,
    pub target: Target,
    /// Overrides the check's initial state (a server adopted from the kernel table).
    pub initial_up: Option<bool>,
    /// Reports the first result even when it confirms the state: a shared check whose
    /// entries started in different states brings them all to it.
    pub report_first: bool,
}

impl Server {
    pub fn new(spec: CheckSpec, target: Target) -> Self {
        Server {
            spec,
            target,
            initial_up: None,
            report_first: false,
        }
    }

    /// The check of `real` under `service`, as the config says.
    pub fn from_config(
        service: &lvs_config::VirtualServer,
        real: &lvs_config::RealServer,
    ) -> Result<Self, SpecError> {
        Ok(Server::new(
            CheckSpec::resolve(service, real)?,
            CheckSpec::target(service, real),
        ))
    }
}

/// A server went up or down, or its dynamic weight changed while up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<Id> {
    pub id: Id,
    pub up: bool,
    pub weight: Option<u32>,
    pub detail: String,
}

/// What the scheduler knows of a server now, for status output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHealth {
    pub up: bool,
    pub weight: Option<u32>,
    /// Reason of the last probe, or "initial state".
    pub detail: String,
    /// How long the last probe took.
    pub latency: Option<Duration>,
    pub probes: u64,
}

/// Every checked server's [`ServerHealth`], as the probes update it.
#[derive(Clone)]
pub struct HealthView<Id>(Arc<Mutex<HashMap<Id, ServerHealth>>>);

impl<Id: Eq + Hash> HealthView<Id> {
    pub fn get(&self, id: &Id) -> Option<ServerHealth> {
        self.0.lock().expect("health lock").get(id).cloned()
    }

    /// Visits every checked server, for the metrics.
    pub fn for_each(&self, mut visit: impl FnMut(&Id, &ServerHealth)) {
        for (id, health) in self.0.lock().expect("health lock").iter() {
            visit(id, health);
        }
    }
}

/// The non-zero counts of `family`, by cause.
pub fn unknown_counts(
    family: &Family<UnknownLabels, Counter>,
) -> std::collections::BTreeMap<Exhausted, u64> {
    Exhausted::ALL
        .into_iter()
        .map(|cause| (cause, family.get_or_create(&UnknownLabels { cause }).get()))
        .filter(|(_, n)| *n > 0)
        .collect()
}

struct Running {
    /// Holds the check the task runs: the one copy kept here (a copy beside it cost 1.4 MB
    /// in this map at 2,300 checks).
    updates: watch::Sender<(CheckSpec, Target)>,
    task: JoinHandle<()>,
}

pub struct Scheduler<Id> {
    common: Arc<Common<Id>>,
    servers: HashMap<Id, Running>,
    added: u64,
}

/// What every server's task shares, behind one pointer per task.
struct Common<Id> {
    ctx: ProbeContext,
    events: mpsc::Sender<Event<Id>>,
    health: Arc<Mutex<HashMap<Id, ServerHealth>>>,
    /// Where the grid of probe starts begins.
    origin: Instant,
    unknown: Family<UnknownLabels, Counter>,
    down: Family<DownLabels, Counter>,
    /// When a shortage was last logged, and how many unknowns since.
    unknown_log: Mutex<(Option<Instant>, u64)>,
}

impl<Id> Common<Id> {
    fn count_unknown(&self, cause: Exhausted, detail: &str, now: Instant) {
        self.unknown.get_or_create(&UnknownLabels { cause }).inc();
        let mut log = self.unknown_log.lock().expect("unknown log lock");
        log.1 += 1;
        if log
            .0
            .is_none_or(|last| now.duration_since(last) >= UNKNOWN_LOG_EVERY)
        {
            warn!(
                "{} probe(s) without a result: the director is short of a resource ({detail}); \
                 health left as it was",
                log.1
            );
            *log = (Some(now), 0);
        }
    }
}

impl<Id> Scheduler<Id>
where
    Id: Clone + Eq + Hash + Debug + Send + Sync + 'static,
{
    /// Must be called within a tokio runtime; events go to `events`. Probe starts are put
    /// on a grid of [`SLOT`]s from `now`.
    pub fn new(ctx: ProbeContext, events: mpsc::Sender<Event<Id>>, now: Instant) -> Self {
        Self::with_counters(ctx, events, ProbeCounters::default(), now)
    }

    /// [`Scheduler::new`], counting probes without a result and probes that found a server
    /// down, by cause, in `counters` (metrics).
    pub fn with_counters(
        ctx: ProbeContext,
        events: mpsc::Sender<Event<Id>>,
        counters: ProbeCounters,
        now: Instant,
    ) -> Self {
        Scheduler {
            common: Arc::new(Common {
                ctx,
                events,
                health: Arc::new(Mutex::new(HashMap::new())),
                origin: now,
                unknown: counters.unknown,
                down: counters.down,
                unknown_log: Mutex::new((None, 0)),
            }),
            servers: HashMap::new(),
            added: 0,
        }
    }

    /// Makes the checked set exactly `servers` (on start and on every reload): servers no
    /// longer named stop, new ones start spread over their interval, and the ones kept keep
    /// their health and streak, taking a changed check from their next probe on. New servers'
    /// first probes are spread from `now`.
    pub fn update(&mut self, servers: impl IntoIterator<Item = (Id, Server)>, now: Instant) {
        let servers: Vec<(Id, Server)> = servers.into_iter().collect();
        let keep: std::collections::HashSet<&Id> = servers.iter().map(|(id, _)| id).collect();
        let gone: Vec<Id> = self
            .servers
            .keys()
            .filter(|id| !keep.contains(id))
            .cloned()
            .collect();
        for id in gone {
            self.remove(&id);
        }
        let fresh = servers
            .iter()
            .filter(|(id, _)| !self.servers.contains_key(id))
            .count()
            .max(1);
        let mut slot = 0;
        for (id, server) in servers {
            if self.servers.contains_key(&id) {
                self.replace(&id, server);
            } else {
                let offset = server
                    .spec
                    .timing
                    .interval
                    .mul_f64(slot as f64 / fresh as f64);
                slot += 1;
                self.start(id, server, now + offset);
            }
        }
    }

    /// Adds or replaces one server; a new one is first probed within an interval of `now`.
    pub fn insert(&mut self, id: Id, server: Server, now: Instant) {
        if self.servers.contains_key(&id) {
            self.replace(&id, server);
            return;
        }
        const GOLDEN: f64 = 0.618_033_988_749_895;
        let fraction = (self.added as f64 * GOLDEN).fract();
        let offset = server.spec.timing.interval.mul_f64(fraction);
        self.start(id, server, now + offset);
    }

    /// Stops checking `id`; a probe in flight is dropped (an external command is killed).
    pub fn remove(&mut self, id: &Id) -> bool {
        self.common.health.lock().expect("health lock").remove(id);
        match self.servers.remove(id) {
            Some(running) => {
                running.task.abort();
                true
            }
            None => false,
        }
    }

    /// Probes without a result so far, by cause (only causes seen).
    pub fn unknown_probes(&self) -> std::collections::BTreeMap<Exhausted, u64> {
        unknown_counts(&self.common.unknown)
    }

    pub fn health(&self, id: &Id) -> Option<ServerHealth> {
        self.view().get(id)
    }

    /// A handle on what the probes find, for status output elsewhere.
    pub fn view(&self) -> HealthView<Id> {
        HealthView(Arc::clone(&self.common.health))
    }

    pub fn ids(&self) -> impl Iterator<Item = &Id> {
        self.servers.keys()
    }

    pub fn len(&self) -> usize {
        self.servers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    fn replace(&mut self, id: &Id, server: Server) {
        let running = self.servers.get(id).expect("caller checked");
        let changed = {
            let (spec, target) = &*running.updates.borrow();
            *spec != server.spec || *target != server.target
        };
        if changed {
            // send_replace: the value changes even while the task is between receivers.
            running.updates.send_replace((server.spec, server.target));
        }
    }

    fn start(&mut self, id: Id, server: Server, first: Instant) {
        self.added += 1;
        let health = match server.initial_up {
            Some(up) => HealthState::with_state(server.spec.timing.clone(), up),
            None => HealthState::new(server.spec.timing.clone()),
        };
        self.common.health.lock().expect("health lock").insert(
            id.clone(),
            ServerHealth {
                up: health.is_up(),
                weight: None,
                detail: health.detail().to_owned(),
                latency: None,
                probes: 0,
            },
        );
        let (updates, receiver) = watch::channel((server.spec, server.target));
        let task = tokio::spawn(check_loop(
            id.clone(),
            health,
            on_grid(self.common.origin, first),
            receiver,
            server.report_first,
            Arc::clone(&self.common),
        ));
        self.servers.insert(id, Running { updates, task });
    }
}

impl<Id> Drop for Scheduler<Id> {
    fn drop(&mut self) {
        for running in self.servers.values() {
            running.task.abort();
        }
    }
}

async fn check_loop<Id: Clone + Eq + Hash + Send + 'static>(
    id: Id,
    mut health: HealthState,
    mut due: Instant,
    mut updates: watch::Receiver<(CheckSpec, Target)>,
    mut report_first: bool,
    common: Arc<Common<Id>>,
) {
    let origin = common.origin;
    let (mut spec, mut target) = updates.borrow_and_update().clone();
    let mut probes = 0u64;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(due) => {}
            changed = updates.changed() => {
                if changed.is_err() {
                    return;
                }
                (spec, target) = updates.borrow_and_update().clone();
                health.set_timing(spec.timing.clone());
                // A server not probed yet keeps its spread slot; others follow the new
                // interval from their last result.
                if health.last_result().is_some() {
                    due = on_grid(origin, health.next_due(Instant::now().into_std()).into());
                }
                continue;
            }
        }
        // The timeout runs from the real start, not from when the probe was due: a checker
        // that falls behind must not eat into its probes' time and call healthy servers down.
        let started = Instant::now();
        // Boxed so the probe's state exists only while a probe runs, not inside each idle
        // server's task.
        let outcome = Box::pin(probe::run_until(
            &spec,
            &target,
            &common.ctx,
            started + spec.timing.timeout,
        ))
        .await;
        probes += 1;
        let now = Instant::now();
        match outcome.verdict {
            Verdict::Unknown(cause) => common.count_unknown(cause, &outcome.detail, now),
            Verdict::Down(cause) => {
                common.down.get_or_create(&DownLabels { cause }).inc();
            }
            Verdict::Up => {}
        }
        let known = !matches!(outcome.verdict, Verdict::Unknown(_));
        let mut transition = health.record(now.into_std(), outcome);
        if report_first && known {
            report_first = false;
            transition = transition.or_else(|| Some(health.current()));
        }
        if let Some(entry) = common.health.lock().expect("health lock").get_mut(&id) {
            entry.up = health.is_up();
            entry.weight = health.weight();
            entry.detail = health.detail().to_owned();
            entry.latency = Some(now.saturating_duration_since(started));
            entry.probes = probes;
        }
        if let Some(Transition { up, weight, detail }) = transition {
            let event = Event {
                id: id.clone(),
                up,
                weight,
                detail,
            };
            if common.events.send(event).await.is_err() {
                return;
            }
        }
        // The next probe follows this one's result by the interval, as keepalived's
        // delay_loop does: a server slow to answer is probed less often, not piled on.
        due = on_grid(origin, health.next_due(now.into_std()).into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_starts_round_up_to_the_slot_grid() {
        let origin = Instant::now();
        assert_eq!(on_grid(origin, origin), origin);
        assert_eq!(
            on_grid(origin, origin + Duration::from_millis(1)),
            origin + SLOT
        );
        assert_eq!(on_grid(origin, origin + SLOT * 7), origin + SLOT * 7);
        assert_eq!(
            on_grid(origin, origin + SLOT * 7 + Duration::from_nanos(1)),
            origin + SLOT * 8
        );
    }

    fn on_check(interval_ms: u64) -> Server {
        let spec = CheckSpec {
            timing: super::super::spec::Timing {
                interval: Duration::from_millis(interval_ms),
                retry_delay: Duration::from_millis(interval_ms),
                rise: 1,
                fall: 1,
                ..Default::default()
            },
            port: None,
            address: None,
            bind: Default::default(),
            max_bytes: super::super::spec::DEFAULT_MAX_BYTES,
            kind: super::super::spec::Kind::On,
        };
        let mut server = Server::new(spec, Target::new("192.0.2.10:80".parse().unwrap()));
        // Down at first, so each server's first probe ("check is on") is an event.
        server.initial_up = Some(false);
        server
    }

    fn context() -> ProbeContext {
        ProbeContext::with_roots(tokio_rustls::rustls::RootCertStore::empty())
    }

    // On a paused clock: the first probes of one update land at i/n of the interval from the
    // `now` given, on the slot grid from the scheduler's own `now`, to the nanosecond.
    #[tokio::test(start_paused = true)]
    async fn first_probes_follow_the_given_now_on_a_fake_clock() {
        let origin = Instant::now();
        let (tx, mut events) = mpsc::channel(16);
        let mut scheduler = Scheduler::new(context(), tx, origin);
        // The update's `now`, not the runtime's, places the probes: 3 s on.
        let added = origin + Duration::from_secs(3);
        scheduler.update((0..4u32).map(|i| (i, on_check(1000))), added);
        let mut firsts = Vec::new();
        for _ in 0..4 {
            let event = events.recv().await.unwrap();
            assert!(event.up);
            firsts.push((event.id, Instant::now() - origin));
        }
        let expected: Vec<(u32, Duration)> = (0..4u32)
            .map(|i| {
                let at = on_grid(origin, added + Duration::from_millis(250 * u64::from(i)));
                (i, at - origin)
            })
            .collect();
        assert_eq!(firsts, expected);
        // 3 s + 250 ms falls between slots (7 ms each): the probe waits for 465 * 7 ms.
        assert_eq!(expected[1].1, Duration::from_millis(3255));

        // One server added later takes a golden-ratio offset from its own `now`.
        let later = Instant::now() + Duration::from_secs(10);
        scheduler.insert(9, on_check(1000), later);
        let event = events.recv().await.unwrap();
        assert_eq!(event.id, 9);
        // The fifth server added: offset fract(4 * 0.618...) of the interval.
        let offset = Duration::from_millis(1000).mul_f64((4.0 * 0.618_033_988_749_895f64).fract());
        assert_eq!(Instant::now(), on_grid(origin, later + offset));
    }

    // A probe whose result is unknown is counted, and the log of it is limited by the `now`
    // passed in, not by a clock read of its own.
    #[test]
    fn unknown_probes_are_logged_at_most_once_per_period() {
        let (tx, _events) = mpsc::channel::<Event<u32>>(1);
        let common = Common {
            ctx: context(),
            events: tx,
            health: Arc::default(),
            origin: Instant::now(),
            unknown: Family::default(),
            down: Family::default(),
            unknown_log: Mutex::new((None, 0)),
        };
        let t0 = Instant::now();
        common.count_unknown(Exhausted::Emfile, "connect: too many open files", t0);
        assert_eq!(*common.unknown_log.lock().unwrap(), (Some(t0), 0));
        common.count_unknown(Exhausted::Emfile, "again", t0 + Duration::from_secs(1));
        assert_eq!(*common.unknown_log.lock().unwrap(), (Some(t0), 1));
        let t1 = t0 + UNKNOWN_LOG_EVERY;
        common.count_unknown(Exhausted::Enfile, "again", t1);
        assert_eq!(*common.unknown_log.lock().unwrap(), (Some(t1), 0));
        assert_eq!(
            unknown_counts(&common.unknown)
                .into_iter()
                .collect::<Vec<_>>(),
            [(Exhausted::Emfile, 2), (Exhausted::Enfile, 1)]
        );
    }

    // Every probe that finds a server down is counted by its cause, the label a dashboard
    // splits failures by.
    #[tokio::test(start_paused = true)]
    async fn down_probes_are_counted_by_cause() {
        let counters = ProbeCounters::default();
        let (tx, mut events) = mpsc::channel(16);
        let origin = Instant::now();
        let mut scheduler = Scheduler::with_counters(context(), tx, counters.clone(), origin);
        let mut off = on_check(100);
        off.spec.kind = super::super::spec::Kind::Off;
        off.initial_up = Some(true);
        scheduler.update([(1u32, off), (2, on_check(100))], origin);
        // Server 1 goes down on its first probe, server 2 up.
        for _ in 0..2 {
            events.recv().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let off_probes = counters
            .down
            .get_or_create(&DownLabels {
                cause: DownCause::Off,
            })
            .get();
        // One probe every 100 ms for a second and a bit: 10 or 11, never one of server 2's.
        assert!((10..=11).contains(&off_probes), "{off_probes}");
        assert_eq!(
            DownCause::ALL
                .iter()
                .map(|&cause| counters.down.get_or_create(&DownLabels { cause }).get())
                .sum::<u64>(),
            off_probes
        );
    }
}
