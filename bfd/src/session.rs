//! One BFD session in asynchronous mode (RFC 5880 section 6): the state machine of
//! section 6.2, timer negotiation with poll sequences (6.5, 6.8.3), detection time
//! (6.8.4), jittered transmission (6.8.7) and reception (6.8.6).
//!
//! Sans-IO: [`Session::handle_packet`], [`Session::handle_timeout`] and
//! [`Session::admin`] take `now`; packets to send come out of
//! [`Session::poll_transmit`], state changes out of [`Session::poll_event`], and the
//! next deadline out of [`Session::poll_timeout`]. Randomness (discriminator, first
//! sequence number, jitter) comes from a seed, so a test replays exactly.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::auth::{AuthConfig, AuthError};
use crate::wire::{self, Diag, Repr, State};

/// Section 6.8.3: the slowest rate, used whenever the session is not Up.
pub const SLOW_TX: Duration = Duration::from_secs(1);

/// What the protocol needs to know about one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// bfd.DesiredMinTxInterval once Up (FRR `transmit-interval`, keepalived `min_tx`).
    pub desired_min_tx: Duration,
    /// bfd.RequiredMinRxInterval (FRR `receive-interval`, keepalived `min_rx`).
    pub required_min_rx: Duration,
    /// bfd.DetectMult (FRR `detect-multiplier`, keepalived `multiplier`).
    pub detect_mult: u8,
    /// Passive role (section 6.1): send nothing until the peer has spoken
    /// (FRR `passive-mode`, keepalived `passive`).
    pub passive: bool,
    pub auth: Option<AuthConfig>,
}

/// Why a session refuses its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("detect multiplier must be at least 1")]
    ZeroDetectMult,
    #[error("intervals must be between 1 µs and {max:?}", max = Duration::from_micros(u32::MAX.into()))]
    Interval,
}

impl SessionConfig {
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.detect_mult == 0 {
            return Err(ConfigError::ZeroDetectMult);
        }
        for d in [self.desired_min_tx, self.required_min_rx] {
            if d.is_zero() || d > Duration::from_micros(u32::MAX.into()) {
                return Err(ConfigError::Interval);
            }
        }
        Ok(())
    }
}

/// Administrative control (section 6.8.16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admin {
    /// To AdminDown with diagnostic 7; the peer sees the session go down without
    /// a failure.
    Down,
    /// Out of AdminDown, to Down.
    Up,
}

/// What a session reports besides packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    StateChange { from: State, to: State, diag: Diag },
}

/// Why a received packet was discarded (one counter each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Discard {
    #[error(transparent)]
    Malformed(#[from] wire::Error),
    #[error("your discriminator {0:#x} is not ours")]
    YourDiscriminator(u32),
    #[error("your discriminator is zero in a packet whose state is neither Down nor AdminDown")]
    ZeroYourDiscriminator,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("session is administratively down")]
    AdminDown,
}

impl Discard {
    pub fn as_str(&self) -> &'static str {
        match self {
            Discard::Malformed(e) => e.as_str(),
            Discard::YourDiscriminator(_) => "your_discriminator",
            Discard::ZeroYourDiscriminator => "zero_your_discriminator",
            Discard::Auth(e) => e.as_str(),
            Discard::AdminDown => "admin_down",
        }
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn from_micros(us: u32) -> Duration {
    Duration::from_micros(us.into())
}

/// The session.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    rng: fastrand::Rng,
    state: State,
    local_diag: Diag,
    local_disc: u32,
    remote_disc: u32,
    remote_state: State,
    /// bfd.RemoteMinRxInterval, µs; 1 until the peer speaks (section 6.8.1).
    remote_min_rx: u32,
    remote_desired_min_tx: u32,
    remote_detect_mult: u8,
    /// Desired Min TX sent in packets (µs): at least 1 s unless Up.
    desired_min_tx: u32,
    required_min_rx: u32,
    /// The values the timers actually use: they lag the advertised ones while a poll
    /// sequence that increases TX or decreases RX runs (section 6.8.3).
    tx_in_use: u32,
    rx_in_use: u32,
    polling: bool,
    send_final: bool,
    next_tx: Option<Instant>,
    last_rx: Option<Instant>,
    xmit_seq: u32,
    rcv_seq: u32,
    seq_known: bool,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
}

impl Session {
    /// A session in Down, sending its first packet at `now` unless passive.
    pub fn new(cfg: SessionConfig, seed: u64, now: Instant) -> Result<Session, ConfigError> {
        cfg.check()?;
        let mut rng = fastrand::Rng::with_seed(seed);
        let local_disc = rng.u32(1..);
        let xmit_seq = rng.u32(..);
        let required_min_rx = micros(cfg.required_min_rx);
        let desired_min_tx = micros(cfg.desired_min_tx).max(micros(SLOW_TX));
        Ok(Session {
            rng,
            state: State::Down,
            local_diag: Diag::None,
            local_disc,
            remote_disc: 0,
            remote_state: State::Down,
            remote_min_rx: 1,
            remote_desired_min_tx: 0,
            remote_detect_mult: cfg.detect_mult,
            desired_min_tx,
            required_min_rx,
            tx_in_use: desired_min_tx,
            rx_in_use: required_min_rx,
            polling: false,
            send_final: false,
            next_tx: (!cfg.passive).then_some(now),
            last_rx: None,
            xmit_seq,
            rcv_seq: 0,
            seq_known: false,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            cfg,
        })
    }

    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn remote_state(&self) -> State {
        self.remote_state
    }

    pub fn local_diag(&self) -> Diag {
        self.local_diag
    }

    pub fn local_discriminator(&self) -> u32 {
        self.local_disc
    }

    pub fn remote_discriminator(&self) -> u32 {
        self.remote_disc
    }

    /// Whether a poll sequence is waiting for its Final.
    pub fn polling(&self) -> bool {
        self.polling
    }

    /// The negotiated transmit interval before jitter: the larger of what we want and
    /// what the peer can receive (section 6.8.7).
    pub fn tx_interval(&self) -> Duration {
        from_micros(self.tx_in_use.max(self.remote_min_rx))
    }

    /// Section 6.8.4: the peer's multiplier times the larger of what we can receive
    /// and what it last said it sends.
    pub fn detection_time(&self) -> Duration {
        from_micros(self.rx_in_use.max(self.remote_desired_min_tx)) * self.remote_detect_mult.into()
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next time [`handle_timeout`](Self::handle_timeout) has work: a periodic
    /// packet or the detection time running out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.next_tx, self.detect_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// When the peer's silence counts: in Init and Up the session goes down; in any state
    /// its discriminator is forgotten (section 6.8.1), so a peer that restarted with a new
    /// one is not refused forever for our stale Your Discriminator.
    fn detect_deadline(&self) -> Option<Instant> {
        let watching = matches!(self.state, State::Init | State::Up) || self.remote_disc != 0;
        self.last_rx
            .filter(|_| watching)
            .map(|at| at + self.detection_time())
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.detect_deadline().is_some_and(|at| at <= now) {
            self.remote_disc = 0;
            self.remote_state = State::Down;
            if matches!(self.state, State::Init | State::Up) {
                self.set_state(State::Down, Diag::DetectionTimeExpired, now);
            }
        }
        self.flush(now);
    }

    pub fn admin(&mut self, cmd: Admin, now: Instant) {
        match (cmd, self.state) {
            (Admin::Down, State::AdminDown)
            | (Admin::Up, State::Down | State::Init | State::Up) => {}
            (Admin::Down, _) => self.set_state(State::AdminDown, Diag::AdminDown, now),
            (Admin::Up, State::AdminDown) => self.set_state(State::Down, Diag::None, now),
        }
        self.flush(now);
    }

    /// Changes the configured timers; when Up, a poll sequence announces them and the
    /// timers that would loosen detection wait for its Final (section 6.8.3).
    pub fn set_timers(
        &mut self,
        desired_min_tx: Duration,
        required_min_rx: Duration,
        now: Instant,
    ) {
        self.cfg.desired_min_tx = desired_min_tx;
        self.cfg.required_min_rx = required_min_rx;
        self.apply_timers(now);
        self.flush(now);
    }

    fn apply_timers(&mut self, now: Instant) {
        let tx = if self.state == State::Up {
            micros(self.cfg.desired_min_tx)
        } else {
            micros(self.cfg.desired_min_tx).max(micros(SLOW_TX))
        };
        let rx = micros(self.cfg.required_min_rx);
        if tx == self.desired_min_tx && rx == self.required_min_rx {
            return;
        }
        self.desired_min_tx = tx;
        self.required_min_rx = rx;
        if self.state == State::Up {
            self.polling = true;
            // Faster sending and slower receiving take effect at once; the others
            // only once the peer has acknowledged them.
            self.tx_in_use = self.tx_in_use.min(tx);
            self.rx_in_use = self.rx_in_use.max(rx);
            self.transmit_now(now);
        } else {
            self.tx_in_use = tx;
            self.rx_in_use = rx;
        }
    }

    fn set_state(&mut self, to: State, diag: Diag, now: Instant) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        self.local_diag = diag;
        if to != State::Up {
            self.polling = false;
        }
        self.events.push_back(Event::StateChange { from, to, diag });
        self.apply_timers(now);
        self.transmit_now(now);
    }

    /// Sends at once instead of at the next periodic slot (state changes, Final).
    fn transmit_now(&mut self, now: Instant) {
        if !self.cfg.passive || self.remote_disc != 0 {
            self.next_tx = Some(now);
        }
    }

    /// Processes one received datagram (the UDP payload).
    pub fn handle_packet(&mut self, bytes: &[u8], now: Instant) -> Result<(), Discard> {
        let repr = Repr::decode(bytes)?;
        if repr.your_discriminator != 0 && repr.your_discriminator != self.local_disc {
            return Err(Discard::YourDiscriminator(repr.your_discriminator));
        }
        if repr.your_discriminator == 0 && !matches!(repr.state, State::Down | State::AdminDown) {
            return Err(Discard::ZeroYourDiscriminator);
        }
        self.authenticate(bytes, &repr, now)?;
        self.remote_disc = repr.my_discriminator;
        self.remote_state = repr.state;
        self.remote_min_rx = repr.required_min_rx;
        self.remote_desired_min_tx = repr.desired_min_tx;
        self.remote_detect_mult = repr.detect_mult;
        self.last_rx = Some(now);
        if repr.final_ && self.polling {
            self.polling = false;
            self.tx_in_use = self.desired_min_tx;
            self.rx_in_use = self.required_min_rx;
        }
        if self.state == State::AdminDown {
            return Err(Discard::AdminDown);
        }
        self.transition(repr.state, now);
        if repr.poll {
            self.send_final = true;
            self.transmit_now(now);
        }
        self.reschedule(now);
        self.flush(now);
        Ok(())
    }

    /// Section 6.8.6's state table.
    fn transition(&mut self, remote: State, now: Instant) {
        match (self.state, remote) {
            (State::Down | State::Init | State::Up, State::AdminDown) => {
                self.set_state(State::Down, Diag::NeighborDown, now);
            }
            (State::Down, State::Down) => self.set_state(State::Init, Diag::None, now),
            (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                self.set_state(State::Up, Diag::None, now);
            }
            (State::Up, State::Down) => self.set_state(State::Down, Diag::NeighborDown, now),
            _ => {}
        }
    }

    /// A peer that now accepts packets faster than our next slot gets one sooner; one
    /// that asks for silence (Required Min RX 0) gets no more periodic packets.
    fn reschedule(&mut self, now: Instant) {
        let may_send = !self.cfg.passive || self.remote_disc != 0;
        match self.next_tx {
            Some(at) if at <= now => {}
            _ if self.remote_min_rx == 0 || !may_send => self.next_tx = None,
            Some(at) if at <= now + self.tx_interval() => {}
            _ => self.next_tx = Some(now + self.jittered()),
        }
    }

    /// Sends what is due now (a state change, a Final) instead of waiting for the
    /// shell's next timeout.
    fn flush(&mut self, now: Instant) {
        if self.next_tx.is_some_and(|at| at <= now) {
            self.send(now);
        }
    }

    fn authenticate(&mut self, bytes: &[u8], repr: &Repr, now: Instant) -> Result<(), Discard> {
        let Some(auth) = &self.cfg.auth else {
            return match repr.auth {
                Some(_) => Err(AuthError::Unexpected.into()),
                None => Ok(()),
            };
        };
        let Some(sequence) = auth.verify(bytes, repr)? else {
            return Ok(());
        };
        // Section 6.8.1: the sequence is forgotten after two detection times of silence.
        if self
            .last_rx
            .is_some_and(|at| now.duration_since(at) > self.detection_time() * 2)
        {
            self.seq_known = false;
        }
        if self.seq_known {
            let first = if auth.kind().meticulous() { 1 } else { 0 };
            let ahead = sequence.wrapping_sub(self.rcv_seq);
            if ahead < first || ahead > 3 * u32::from(repr.detect_mult) {
                return Err(AuthError::Sequence {
                    got: sequence,
                    last: self.rcv_seq,
                }
                .into());
            }
        }
        self.rcv_seq = sequence;
        self.seq_known = true;
        Ok(())
    }

    /// Section 6.8.7: 75-100 % of the interval, 75-90 % with a multiplier of 1.
    fn jittered(&mut self) -> Duration {
        let top = if self.cfg.detect_mult == 1 { 90 } else { 100 };
        self.tx_interval() * self.rng.u32(75..=top) / 100
    }

    fn send(&mut self, now: Instant) {
        let final_ = std::mem::take(&mut self.send_final);
        let repr = Repr {
            diag: self.local_diag,
            state: self.state,
            // P and F are never set together (section 6.5).
            poll: self.polling && !final_,
            final_,
            cpi: false,
            demand: false,
            detect_mult: self.cfg.detect_mult,
            my_discriminator: self.local_disc,
            your_discriminator: self.remote_disc,
            desired_min_tx: self.desired_min_tx,
            required_min_rx: self.required_min_rx,
            required_min_echo_rx: 0,
            auth: None,
        };
        let bytes = match &self.cfg.auth {
            Some(auth) => {
                // Incremented on every packet: required for meticulous, allowed for keyed.
                self.xmit_seq = self.xmit_seq.wrapping_add(1);
                auth.sign(&repr, self.xmit_seq)
            }
            None => repr.to_bytes(),
        };
        self.transmit.push_back(bytes);
        let periodic = self.remote_min_rx != 0 && (!self.cfg.passive || self.remote_disc != 0);
        self.next_tx = periodic.then(|| now + self.jittered());
    }
}
