//! `feedbackd` on a director: polls every configured agent, turns replies into weights with
//! the policy, and hands weights and states to directord (the only writer of the IPVS table).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use lvs_config::{Config, Feedback};
use lvs_control::directord::{
    FeedbackState, Request as DirectorRequest, Response as DirectorResponse,
};
use lvs_control::feedbackd::{AgentStatus, Request, Status};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc};
use tracing::{info, warn};

use feedbackd::agent_check::{AgentReply, MAX_REPLY_LEN, Packet};
use feedbackd::error::{Error, PollError};
use feedbackd::policy::{Decision, PolicySettings, ServerPolicy, StateHint};

struct Polled {
    agent: usize,
    result: Result<Vec<u8>, PollError>,
}

struct Tracked {
    real: SocketAddr,
    agent: SocketAddr,
    policy: ServerPolicy,
    last_reply: Option<String>,
    replies: u64,
    /// What directord last accepted, so a refused hand-over is retried.
    delivered: Option<(u32, String)>,
    /// A hand-over to directord is under way; the next waits for its result.
    in_flight: bool,
}

/// How long directord has to take a weight. Calls run beside the loop, each bounded, so a
/// stopped or wedged directord delays hand-overs, never the polling, status or the watchdog.
const DIRECTORD_TIMEOUT: Duration = Duration::from_secs(2);

/// A hand-over's result, back in the loop.
struct Delivered {
    agent: usize,
    handed: (u32, String),
    why: String,
    result: Result<(), lvs_control::ControlError>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RealLabels {
    real: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabels {
    cause: String,
}

#[derive(Default)]
struct Metrics {
    replies: Family<RealLabels, Counter>,
    malformed: Family<CauseLabels, Counter>,
    poll_failures: Family<RealLabels, Counter>,
    weight: Family<RealLabels, Gauge>,
    directord_failures: Family<CauseLabels, Counter>,
}

pub fn settings(feedback: &Feedback) -> PolicySettings {
    let percent = |p: lvs_config::Percent| p.0.round().clamp(0.0, f64::from(u16::MAX)) as u16;
    PolicySettings {
        smoothing: feedback.smoothing,
        min_weight_percent: percent(feedback.min_weight),
        max_weight_percent: percent(feedback.max_weight),
        hysteresis_percent: percent(feedback.hysteresis),
        min_interval: feedback.min_change_interval.get(),
        lost_after: feedback.lost_after.get(),
        ..PolicySettings::default()
    }
}

/// The weight a real server is configured with (its first service when it is in several).
fn configured_weight(config: &Config, real: SocketAddr) -> u32 {
    config
        .virtual_servers
        .iter()
        .flat_map(|vs| vs.real.iter())
        .find(|r| r.address == real)
        .map_or(1, |r| r.weight)
}

impl Metrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "feedbackd_replies",
            "Agent replies received",
            self.replies.clone(),
        );
        registry.register(
            "feedbackd_malformed_replies",
            "Malformed agent replies by cause",
            self.malformed.clone(),
        );
        registry.register(
            "feedbackd_poll_failures",
            "Agent polls that failed",
            self.poll_failures.clone(),
        );
        registry.register(
            "feedbackd_weight",
            "Weight handed to directord",
            self.weight.clone(),
        );
        registry.register(
            "feedbackd_directord_failures",
            "Hand-overs to directord that failed, by cause (timeout, io, protocol, refused)",
            self.directord_failures.clone(),
        );
    }
}

/// The director side's state: every agent's policy, and the hand-overs to directord.
struct Director {
    agents: Vec<Tracked>,
    metrics: Metrics,
    directord: std::path::PathBuf,
    delivered: mpsc::Sender<Delivered>,
    failure_log: lvs_control::limits::RateLimit,
}

impl Director {
    fn hand(&mut self, agent: usize) {
        deliver(
            agent,
            &mut self.agents[agent],
            &self.directord,
            &self.metrics,
            &self.delivered,
        );
    }

    fn on_polled(&mut self, Polled { agent, result }: Polled) {
        let tracked = &mut self.agents[agent];
        let now = Instant::now();
        let labels = RealLabels {
            real: tracked.real.to_string(),
        };
        let decision = match result {
            Ok(bytes) => {
                tracked.last_reply = Some(String::from_utf8_lossy(&bytes).trim_end().to_owned());
                match Packet::new_checked(&bytes[..]).and_then(|p| AgentReply::parse(&p)) {
                    Ok(reply) => {
                        tracked.replies += 1;
                        self.metrics.replies.get_or_create(&labels).inc();
                        tracked.policy.handle_reply(now, &reply)
                    }
                    Err(e) => {
                        self.metrics
                            .malformed
                            .get_or_create(&CauseLabels {
                                cause: e.as_str().to_owned(),
                            })
                            .inc();
                        tracked.policy.handle_malformed(now, &e)
                    }
                }
            }
            Err(e) => {
                self.metrics.poll_failures.get_or_create(&labels).inc();
                tracked.policy.handle_poll_failure(now, &e)
            }
        };
        if decision.is_some() {
            self.hand(agent);
        }
    }

    fn on_delivered(&mut self, delivered: Delivered) {
        let Delivered {
            agent,
            handed,
            why,
            result,
        } = delivered;
        let tracked = &mut self.agents[agent];
        tracked.in_flight = false;
        match result {
            Ok(()) => {
                info!(
                    "{}: weight {}, {} ({why})",
                    tracked.real, handed.0, handed.1
                );
                tracked.delivered = Some(handed);
            }
            Err(e) => {
                self.metrics
                    .directord_failures
                    .get_or_create(&CauseLabels {
                        cause: e.cause().to_owned(),
                    })
                    .inc();
                if let Some(held) = self.failure_log.allow(Instant::now()) {
                    warn!(
                        "{}: directord did not take weight {}: {e} ({held} more failures since the last report)",
                        tracked.real, handed.0
                    );
                }
            }
        }
    }

    fn on_timeout(&mut self) {
        let now = Instant::now();
        for agent in 0..self.agents.len() {
            if self.agents[agent].policy.handle_timeout(now).is_some() {
                self.hand(agent);
            }
        }
    }

    /// Hands over again what directord has not taken yet.
    fn on_retry(&mut self) {
        for agent in 0..self.agents.len() {
            let tracked = &self.agents[agent];
            let current = tracked.policy.decision();
            if tracked.delivered.as_ref() != Some(&(current.weight, state_name(tracked)))
                && heard_from(tracked)
            {
                self.hand(agent);
            }
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        self.agents
            .iter()
            .filter_map(|a| a.policy.poll_timeout())
            .min()
    }
}

pub async fn run(config: Config, feedback: Feedback) -> Result<super::Exit, Error> {
    let now = Instant::now();
    let policy_settings = settings(&feedback);
    let agents: Vec<Tracked> = feedback
        .agent
        .iter()
        .map(|a| Tracked {
            real: a.real,
            agent: a.address,
            policy: ServerPolicy::new(configured_weight(&config, a.real), policy_settings, now),
            last_reply: None,
            replies: 0,
            delivered: None,
            in_flight: false,
        })
        .collect();
    let metrics = Metrics::default();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let http = super::serve_metrics(&config, registry, true).await?;
    let (delivered_tx, mut delivered) = mpsc::channel::<Delivered>(256);
    let (polled_tx, mut polled) = mpsc::channel::<Polled>(256);
    let pollers: Vec<_> = agents
        .iter()
        .enumerate()
        .map(|(index, agent)| {
            spawn_poller(
                index,
                agent.agent,
                feedback.interval.get(),
                feedback.timeout.get(),
                polled_tx.clone(),
            )
        })
        .collect();
    let mut director = Director {
        agents,
        metrics,
        directord: lvs_control::socket_path(&config.control.socket_dir, "directord"),
        delivered: delivered_tx,
        failure_log: lvs_control::limits::RateLimit::new(Duration::from_secs(10)),
    };

    let (events, _) = broadcast::channel::<()>(1);
    let lvs_control::daemon::ControlSocket {
        mut requests,
        shutdown,
        path: socket,
    } = lvs_control::daemon::serve_control::<Request, Status, _>(
        &config.control,
        "feedbackd",
        events,
    )?;
    info!(
        "polling {} agent(s) every {}",
        director.agents.len(),
        feedback.interval
    );
    super::notify_ready();

    let mut retry = tokio::time::interval(Duration::from_secs(1));
    loop {
        let deadline = director.next_timeout();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(p) = polled.recv() => director.on_polled(p),
            Some(d) = delivered.recv() => director.on_delivered(d),
            () = sleep => director.on_timeout(),
            _ = retry.tick() => director.on_retry(),
            Some(incoming) = requests.recv() => {
                let Request::Status = incoming.request;
                incoming.reply_ok(status(&director.agents, &director.metrics));
            }
            exit = super::signalled() => {
                shutdown.cancel();
                for poller in pollers {
                    poller.abort();
                }
                let _ = std::fs::remove_file(&socket);
                // Closed before a reload binds the port again.
                if let Some(http) = http {
                    http.stop().await;
                }
                return Ok(exit);
            }
        }
    }
}

/// SIGUSR1/SIGUSR2 drain an agent; sent to a director's feedbackd by mistake they would kill
/// it (their default action), so they are caught and the mistake is logged.
pub fn refuse_agent_signals() {
    use tokio::signal::unix::{SignalKind, signal};
    for (kind, name) in [
        (SignalKind::user_defined1(), "SIGUSR1"),
        (SignalKind::user_defined2(), "SIGUSR2"),
    ] {
        match signal(kind) {
            Ok(mut stream) => {
                tokio::spawn(async move {
                    while stream.recv().await.is_some() {
                        warn!("{name} ignored: it drains only `feedbackd --agent`");
                    }
                });
            }
            Err(e) => warn!("cannot catch {name}: {e}"),
        }
    }
}

/// Until an agent has answered once, directord keeps its own view of the server.
fn heard_from(tracked: &Tracked) -> bool {
    tracked.replies > 0 || tracked.policy.is_lost()
}

fn state_name(tracked: &Tracked) -> String {
    if tracked.policy.is_lost() {
        "lost".to_owned()
    } else {
        tracked.policy.decision().state.as_str().to_owned()
    }
}

/// Hands the current decision to directord in a task of its own; its result comes back on
/// `done`. One at a time per agent: a newer decision waits and goes on the next retry.
fn deliver(
    agent: usize,
    tracked: &mut Tracked,
    directord: &Path,
    metrics: &Metrics,
    done: &mpsc::Sender<Delivered>,
) {
    if tracked.in_flight {
        return;
    }
    let Decision { weight, state, why } = tracked.policy.decision().clone();
    let feedback_state = if tracked.policy.is_lost() {
        FeedbackState::Lost
    } else {
        match state {
            StateHint::Up => FeedbackState::Up,
            StateHint::Drain => FeedbackState::Drain,
            StateHint::Maint | StateHint::Down { .. } => FeedbackState::Down,
        }
    };
    metrics
        .weight
        .get_or_create(&RealLabels {
            real: tracked.real.to_string(),
        })
        .set(i64::from(weight));
    let request = DirectorRequest::Feedback {
        real: tracked.real,
        weight: Some(weight),
        state: feedback_state,
    };
    tracked.in_flight = true;
    let handed = (weight, state_name(tracked));
    let directord = directord.to_owned();
    let done = done.clone();
    tokio::spawn(async move {
        let result = lvs_control::call_async_within::<_, DirectorResponse>(
            &directord,
            &request,
            DIRECTORD_TIMEOUT,
        )
        .await
        .map(drop);
        let _ = done
            .send(Delivered {
                agent,
                handed,
                why,
                result,
            })
            .await;
    });
}

fn spawn_poller(
    agent: usize,
    address: SocketAddr,
    interval: Duration,
    timeout: Duration,
    tx: mpsc::Sender<Polled>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let result = match tokio::time::timeout(timeout, poll(address)).await {
                Ok(result) => result,
                Err(_) => Err(PollError::Timeout(timeout)),
            };
            if tx.send(Polled { agent, result }).await.is_err() {
                return;
            }
        }
    })
}

/// Connects and reads one line, at most haproxy's buffer size.
async fn poll(address: SocketAddr) -> Result<Vec<u8>, PollError> {
    let mut stream = TcpStream::connect(address).await?;
    let mut reply = Vec::with_capacity(64);
    let mut chunk = [0u8; 512];
    while reply.len() < MAX_REPLY_LEN {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&chunk[..n]);
        if reply.contains(&b'\n') {
            break;
        }
    }
    Ok(reply)
}

fn status(agents: &[Tracked], metrics: &Metrics) -> Status {
    let agents = agents
        .iter()
        .map(|t| {
            let decision = t.policy.decision();
            AgentStatus {
                real: t.real,
                agent: t.agent,
                last_reply: t.last_reply.clone(),
                configured_weight: t.policy.configured_weight(),
                weight: decision.weight,
                state: state_name(t),
                why: decision.why.clone(),
                lost: t.policy.is_lost(),
                replies: t.replies,
                malformed_replies: t.policy.malformed_replies(),
                poll_failures: t.policy.poll_failures(),
                last_error: t.policy.last_error().map(str::to_owned),
            }
        })
        .collect();
    let directord_failures = ["timeout", "io", "protocol", "refused"]
        .into_iter()
        .map(|cause| {
            let labels = CauseLabels {
                cause: cause.to_owned(),
            };
            (
                cause.to_owned(),
                metrics.directord_failures.get_or_create(&labels).get(),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    Status {
        agents,
        directord_failures,
    }
}
