//! State machine behaviour on a fake clock: every instant is `t0 + offset`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use vrrpd::instance::{Action, Advert, GarpBurst, GarpConfig, Instance, InstanceConfig, State};
use vrrpd::wire::{Auth, Version};

const SELF: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const LOWER_PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const HIGHER_PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 3);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn cfg(version: Version, priority: u8, interval: Duration) -> InstanceConfig {
    InstanceConfig {
        vrid: 51,
        version,
        priority,
        advert_interval: interval,
        preempt: true,
        preempt_delay: Duration::ZERO,
        primary_addr: SELF.into(),
        vips: vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100))],
        auth: Auth::None,
        garp: GarpConfig::default(),
    }
}

fn v2(priority: u8) -> InstanceConfig {
    cfg(Version::V2, priority, secs(1))
}

fn advert(priority: u8, src: Ipv4Addr, interval: Duration) -> Advert {
    Advert {
        priority,
        src: src.into(),
        interval,
    }
}

fn drain(inst: &mut Instance) -> Vec<Action> {
    std::iter::from_fn(|| inst.poll_action()).collect()
}

fn changed(old: State, new: State) -> Action {
    Action::StateChanged { old, new }
}

fn started(c: InstanceConfig, t0: Instant) -> Instance {
    let mut inst = Instance::new(c).unwrap();
    inst.startup(t0);
    drain(&mut inst);
    inst
}

/// Runs every timer due up to `until`, returning the actions with the time
/// they came out at, as the daemon's loop would.
fn run_until(inst: &mut Instance, until: Instant) -> Vec<(Instant, Action)> {
    let mut out = Vec::new();
    while let Some(at) = inst.poll_timeout().filter(|&at| at <= until) {
        inst.handle_timeout(at);
        out.extend(drain(inst).into_iter().map(|a| (at, a)));
    }
    out
}

fn takeover_actions(priority: u8) -> Vec<Action> {
    let mut v = vec![
        changed(State::Backup, State::Master),
        Action::SendAdvert { priority },
        Action::AddVips,
    ];
    v.extend((0..5).map(|index| Action::SendGratuitousArp {
        burst: GarpBurst::Takeover,
        index,
    }));
    v
}

#[test]
fn v2_failover_bound_at_priority_100_is_3_609375_s() {
    let t0 = Instant::now();
    let mut inst = started(v2(100), t0);
    assert_eq!(inst.state(), State::Backup);
    assert_eq!(
        inst.master_down_interval(),
        ms(3609) + Duration::from_micros(375)
    );

    let mut last = t0;
    for i in 1..=5 {
        last = t0 + secs(i);
        inst.handle_advert(last, &advert(150, LOWER_PEER, secs(1)));
        assert!(drain(&mut inst).is_empty());
    }
    let deadline = inst.poll_timeout().unwrap();
    assert_eq!(deadline - last, Duration::from_nanos(3_609_375_000));

    inst.handle_timeout(deadline - Duration::from_nanos(1));
    assert_eq!(inst.state(), State::Backup);
    assert!(drain(&mut inst).is_empty());

    inst.handle_timeout(deadline);
    assert_eq!(inst.state(), State::Master);
    assert_eq!(drain(&mut inst), takeover_actions(100));
}

#[test]
fn backup_without_master_takes_over_after_master_down_from_startup() {
    let t0 = Instant::now();
    let mut inst = started(v2(200), t0);
    // 3 s + (256 - 200) / 256 s
    let down = t0 + ms(3218) + Duration::from_micros(750);
    assert_eq!(inst.poll_timeout(), Some(down));
    let actions = run_until(&mut inst, down);
    assert_eq!(
        actions.first(),
        Some(&(down, changed(State::Backup, State::Master)))
    );
}

/// Caught: an instance entered BACKUP (or FAULT) from start without removing the VIPs a run
/// killed while master had left on the interface, so both routers answered ARP for them.
#[test]
fn entering_backup_or_fault_removes_vips_a_crashed_run_left() {
    let t0 = Instant::now();
    let mut inst = Instance::new(v2(100)).unwrap();
    inst.startup(t0);
    assert_eq!(
        drain(&mut inst),
        vec![
            changed(State::Initialize, State::Backup),
            Action::RemoveVips
        ]
    );
    inst.set_fault(t0 + secs(1), true);
    assert_eq!(
        drain(&mut inst),
        vec![changed(State::Backup, State::Fault), Action::RemoveVips]
    );
}

#[test]
fn owner_becomes_master_at_startup() {
    let t0 = Instant::now();
    let mut inst = Instance::new(v2(255)).unwrap();
    assert_eq!(inst.state(), State::Initialize);
    assert_eq!(inst.poll_timeout(), None);
    inst.startup(t0);
    let mut expected = takeover_actions(255);
    expected[0] = changed(State::Initialize, State::Master);
    assert_eq!(drain(&mut inst), expected);
    assert_eq!(inst.master_addr(), Some(SELF.into()));
}

/// A master's answer to a lower-priority master: its advert at once, then its addresses
/// announced again.
fn assert_answered_lower_priority(inst: &mut Instance, priority: u8) {
    let actions = drain(inst);
    assert_eq!(actions[0], Action::SendAdvert { priority });
    assert!(actions[1..].iter().all(|a| matches!(
        a,
        Action::SendGratuitousArp {
            burst: GarpBurst::LowerPriority,
            ..
        }
    )));
}

#[test]
fn owner_preempts_even_without_preempt() {
    let t0 = Instant::now();
    let mut c = v2(255);
    c.preempt = false;
    let mut inst = started(c, t0);
    inst.handle_advert(t0 + secs(1), &advert(200, HIGHER_PEER, secs(1)));
    assert_eq!(inst.state(), State::Master);
    assert_answered_lower_priority(&mut inst, 255);
}

#[test]
fn master_sends_advert_every_interval() {
    let t0 = Instant::now();
    let mut inst = started(v2(255), t0);
    let sent: Vec<_> = run_until(&mut inst, t0 + secs(3))
        .into_iter()
        .filter(|(_, a)| matches!(a, Action::SendAdvert { .. }))
        .map(|(at, _)| at - t0)
        .collect();
    assert_eq!(sent, vec![secs(1), secs(2), secs(3)]);
}

#[test]
fn late_daemon_does_not_burst_adverts() {
    let t0 = Instant::now();
    let mut inst = started(v2(255), t0);
    inst.handle_timeout(t0 + ms(3500));
    assert_answered_lower_priority(&mut inst, 255);
    assert_eq!(inst.poll_timeout(), Some(t0 + ms(4500)));
}

#[test]
fn preempt_backup_ignores_lower_priority_master_and_takes_over() {
    let t0 = Instant::now();
    let mut inst = started(v2(200), t0);
    for i in 1..=3 {
        inst.handle_advert(t0 + secs(i), &advert(100, LOWER_PEER, secs(1)));
    }
    // The adverts were discarded: Master_Down still counts from startup.
    assert_eq!(
        inst.poll_timeout(),
        Some(t0 + ms(3218) + Duration::from_micros(750))
    );
    run_until(&mut inst, t0 + secs(4));
    assert_eq!(inst.state(), State::Master);
}

#[test]
fn nopreempt_backup_defers_to_lower_priority_master() {
    let t0 = Instant::now();
    let mut c = v2(200);
    c.preempt = false;
    let mut inst = started(c, t0);
    for i in 1..=10 {
        let now = t0 + secs(i);
        assert!(run_until(&mut inst, now).is_empty());
        inst.handle_advert(now, &advert(100, LOWER_PEER, secs(1)));
    }
    assert_eq!(inst.state(), State::Backup);
    assert_eq!(inst.master_addr(), Some(LOWER_PEER.into()));
    // Once the lower-priority master goes silent, the backup still takes over.
    let down = inst.poll_timeout().unwrap();
    assert_eq!(down, t0 + secs(10) + inst.master_down_interval());
    run_until(&mut inst, down);
    assert_eq!(inst.state(), State::Master);
}

#[test]
fn preempt_delay_counts_from_startup() {
    let t0 = Instant::now();
    let mut c = v2(200);
    c.preempt_delay = secs(10);
    let mut inst = started(c, t0);
    let mut became_master = None;
    for i in 1..=20 {
        let now = t0 + secs(i);
        for (at, a) in run_until(&mut inst, now) {
            if a == changed(State::Backup, State::Master) {
                became_master = Some(at);
            }
        }
        if inst.state() == State::Master {
            break;
        }
        inst.handle_advert(now, &advert(100, LOWER_PEER, secs(1)));
    }
    // Adverts up to t0+9 s are accepted; from t0+10 s on they are discarded, so
    // Master_Down runs out 3.21875 s after the one at t0+9 s.
    assert_eq!(
        became_master,
        Some(t0 + secs(9) + ms(3218) + Duration::from_micros(750))
    );
}

#[test]
fn preempt_delay_restarts_after_a_higher_priority_master() {
    let t0 = Instant::now();
    let mut c = v2(200);
    c.preempt_delay = secs(5);
    let mut inst = started(c, t0);
    // A higher-priority master stops the startup delay.
    inst.handle_advert(t0 + secs(1), &advert(250, HIGHER_PEER, secs(1)));
    // Long after startup a lower-priority master appears: a fresh 5 s delay starts.
    inst.handle_advert(t0 + secs(2), &advert(100, LOWER_PEER, secs(1)));
    inst.handle_advert(t0 + secs(6), &advert(100, LOWER_PEER, secs(1)));
    assert_eq!(
        inst.poll_timeout(),
        Some(t0 + secs(6) + inst.master_down_interval())
    );
    // At t0+7 s the delay (until t0+7 s) is over: this advert is discarded.
    inst.handle_advert(t0 + secs(7), &advert(100, LOWER_PEER, secs(1)));
    assert_eq!(
        inst.poll_timeout(),
        Some(t0 + secs(6) + inst.master_down_interval())
    );
}

#[test]
fn equal_or_higher_priority_keeps_backup_waiting() {
    let t0 = Instant::now();
    let mut inst = started(v2(100), t0);
    inst.handle_advert(t0 + secs(1), &advert(100, LOWER_PEER, secs(1)));
    assert_eq!(
        inst.poll_timeout(),
        Some(t0 + secs(1) + inst.master_down_interval())
    );
}

#[test]
fn master_yields_to_higher_priority() {
    let t0 = Instant::now();
    let mut inst = started(v2(255), t0);
    inst.set_priority(t0, 100);
    drain(&mut inst);
    let now = t0 + ms(1500);
    inst.handle_advert(now, &advert(150, LOWER_PEER, secs(1)));
    assert_eq!(inst.state(), State::Backup);
    assert_eq!(
        drain(&mut inst),
        vec![changed(State::Master, State::Backup), Action::RemoveVips]
    );
    assert_eq!(inst.poll_timeout(), Some(now + inst.master_down_interval()));
    assert_eq!(inst.master_addr(), Some(LOWER_PEER.into()));
}

fn master_at_100(t0: Instant) -> Instance {
    let mut inst = started(v2(100), t0);
    run_until(&mut inst, t0 + secs(4));
    assert_eq!(inst.state(), State::Master);
    inst
}

#[test]
fn equal_priority_tie_goes_to_higher_address() {
    let t0 = Instant::now();
    let now = t0 + ms(4100);

    let mut inst = master_at_100(t0);
    inst.handle_advert(now, &advert(100, LOWER_PEER, secs(1)));
    assert_eq!(inst.state(), State::Master);
    assert_answered_lower_priority(&mut inst, 100);

    let mut inst = master_at_100(t0);
    inst.handle_advert(now, &advert(100, HIGHER_PEER, secs(1)));
    assert_eq!(inst.state(), State::Backup);

    // Our own advert looped back: ignored.
    let mut inst = master_at_100(t0);
    inst.handle_advert(now, &advert(100, SELF, secs(1)));
    assert_eq!(inst.state(), State::Master);
    assert!(drain(&mut inst).is_empty());
}

#[test]
fn master_answers_lower_priority_at_once_and_keeps_its_tick() {
    let t0 = Instant::now();
    let mut inst = master_at_100(t0);
    let tick = inst.poll_timeout().unwrap();
    let now = t0 + ms(4100);
    inst.handle_advert(now, &advert(50, LOWER_PEER, secs(1)));
    assert_eq!(inst.state(), State::Master);
    let mut expected = vec![Action::SendAdvert { priority: 100 }];
    expected.extend((0..5).map(|index| Action::SendGratuitousArp {
        burst: GarpBurst::LowerPriority,
        index,
    }));
    assert_eq!(drain(&mut inst), expected);
    assert_eq!(inst.poll_timeout(), Some(tick));
}

/// While both were master (a partition that healed), the other one's gratuitous ARPs drew the
/// neighbours to it; as it backs off, the master must draw them back, as keepalived does
/// (garp_lower_prio_repeat now, again garp_lower_prio_delay later). Caught by the fault soak:
/// the backup's link went down and up, and the client stayed on the backup (941 of 1,000 flows
/// lost, 39 % of new connections answered).
#[test]
fn master_hearing_a_lower_priority_master_announces_its_addresses_again() {
    let t0 = Instant::now();
    let mut c = v2(100);
    c.garp.lower_prio_repeat = 2;
    c.garp.lower_prio_delay = Some(secs(3));
    let mut inst = Instance::new(c).unwrap();
    inst.startup(t0);
    let _ = run_until(&mut inst, t0 + secs(10));
    assert_eq!(inst.state(), State::Master);
    let now = t0 + ms(10_500);
    inst.handle_advert(now, &advert(50, LOWER_PEER, secs(1)));
    let garps: Vec<(Duration, GarpBurst, u32)> = drain(&mut inst)
        .into_iter()
        .map(|a| (now, a))
        .chain(run_until(&mut inst, now + secs(4)))
        .filter_map(|(at, a)| match a {
            Action::SendGratuitousArp { burst, index } => Some((at - now, burst, index)),
            _ => None,
        })
        .collect();
    use GarpBurst::LowerPriority;
    assert_eq!(
        garps,
        vec![
            (ms(0), LowerPriority, 0),
            (ms(0), LowerPriority, 1),
            (secs(3), LowerPriority, 0),
            (secs(3), LowerPriority, 1),
        ]
    );
}

#[test]
fn backup_on_priority_zero_waits_only_skew_time() {
    let t0 = Instant::now();
    let mut inst = started(v2(100), t0);
    inst.handle_advert(t0 + secs(1), &advert(150, LOWER_PEER, secs(1)));
    let now = t0 + ms(1300);
    inst.handle_advert(now, &advert(0, LOWER_PEER, secs(1)));
    assert_eq!(
        inst.poll_timeout(),
        Some(now + Duration::from_nanos(609_375_000))
    );
    // A higher-priority backup has a shorter skew, so it wins the race.
    let mut high = started(v2(200), t0);
    high.handle_advert(now, &advert(0, LOWER_PEER, secs(1)));
    assert_eq!(
        high.poll_timeout(),
        Some(now + ms(218) + Duration::from_micros(750))
    );
}

#[test]
fn master_on_priority_zero_reasserts_and_resets_its_tick() {
    let t0 = Instant::now();
    let mut inst = master_at_100(t0);
    let now = t0 + ms(4100);
    inst.handle_advert(now, &advert(0, LOWER_PEER, secs(1)));
    assert_eq!(inst.state(), State::Master);
    assert_answered_lower_priority(&mut inst, 100);
    assert_eq!(inst.poll_timeout(), Some(now + secs(1)));
}

#[test]
fn master_shutdown_sends_priority_zero() {
    let t0 = Instant::now();
    let mut inst = master_at_100(t0);
    inst.shutdown();
    assert_eq!(
        drain(&mut inst),
        vec![
            changed(State::Master, State::Initialize),
            Action::SendAdvert { priority: 0 },
            Action::RemoveVips,
        ]
    );
    assert_eq!(inst.poll_timeout(), None);
    // A backup just stops.
    let mut b = started(v2(100), t0);
    b.shutdown();
    assert_eq!(
        drain(&mut b),
        vec![changed(State::Backup, State::Initialize)]
    );
    assert_eq!(b.poll_timeout(), None);
}

#[test]
fn v3_centisecond_interval_master_down() {
    let t0 = Instant::now();
    let inst = started(cfg(Version::V3, 100, ms(500)), t0);
    // 3 * 500 ms + (156 * 500 ms) / 256
    assert_eq!(
        inst.master_down_interval(),
        ms(1500) + Duration::from_nanos(304_687_500)
    );
    assert_eq!(inst.poll_timeout(), Some(t0 + inst.master_down_interval()));
}

#[test]
fn v3_backup_learns_master_interval() {
    let t0 = Instant::now();
    let mut inst = started(cfg(Version::V3, 100, secs(1)), t0);
    let now = t0 + ms(200);
    inst.handle_advert(now, &advert(150, LOWER_PEER, ms(200)));
    assert_eq!(inst.master_advert_interval(), ms(200));
    // 3 * 200 ms + (156 * 200 ms) / 256 = 721.875 ms
    assert_eq!(
        inst.poll_timeout(),
        Some(now + Duration::from_nanos(721_875_000))
    );
    // Priority 0: skew is scaled by the learned interval too.
    inst.handle_advert(now, &advert(0, LOWER_PEER, ms(200)));
    assert_eq!(
        inst.poll_timeout(),
        Some(now + Duration::from_nanos(121_875_000))
    );
    // As master it advertises its own interval again.
    run_until(&mut inst, now + secs(1));
    assert_eq!(inst.state(), State::Master);
    assert_eq!(inst.master_advert_interval(), secs(1));
    assert_eq!(inst.advert(100).advert_interval(), secs(1));
}

#[test]
fn v3_master_yielding_learns_interval() {
    let t0 = Instant::now();
    let mut c = cfg(Version::V3, 255, secs(1));
    c.priority = 255;
    let mut inst = started(c, t0);
    inst.set_priority(t0, 100);
    drain(&mut inst);
    let now = t0 + ms(100);
    inst.handle_advert(now, &advert(200, HIGHER_PEER, ms(50)));
    assert_eq!(inst.state(), State::Backup);
    assert_eq!(inst.master_advert_interval(), ms(50));
}

#[test]
fn v2_backup_does_not_learn_interval() {
    let t0 = Instant::now();
    let mut inst = started(v2(100), t0);
    inst.handle_advert(t0, &advert(150, LOWER_PEER, secs(2)));
    assert_eq!(inst.master_advert_interval(), secs(1));
}

#[test]
fn garp_schedule_bursts_delay_and_refresh() {
    let t0 = Instant::now();
    let mut c = v2(255);
    c.garp = GarpConfig {
        repeat: 3,
        spacing: ms(100),
        delay: Some(secs(5)),
        refresh: Some(secs(60)),
        refresh_repeat: 2,
        ..GarpConfig::default()
    };
    let mut inst = Instance::new(c).unwrap();
    inst.startup(t0);
    let mut all: Vec<(Instant, Action)> = drain(&mut inst).into_iter().map(|a| (t0, a)).collect();
    all.extend(run_until(&mut inst, t0 + secs(121)));
    let garps: Vec<(Duration, GarpBurst, u32)> = all
        .iter()
        .filter_map(|(at, a)| match a {
            Action::SendGratuitousArp { burst, index } => Some((*at - t0, *burst, *index)),
            _ => None,
        })
        .collect();
    use GarpBurst::*;
    assert_eq!(
        garps,
        vec![
            (ms(0), Takeover, 0),
            (ms(100), Takeover, 1),
            (ms(200), Takeover, 2),
            (ms(5000), Delayed, 0),
            (ms(5100), Delayed, 1),
            (ms(5200), Delayed, 2),
            (secs(60), Refresh, 0),
            (ms(60_100), Refresh, 1),
            (secs(120), Refresh, 0),
            (ms(120_100), Refresh, 1),
        ]
    );
    // Adverts keep their own one-second rhythm in between.
    let adverts = all
        .iter()
        .filter(|(_, a)| matches!(a, Action::SendAdvert { .. }))
        .count();
    assert_eq!(adverts, 1 + 121);
}

#[test]
fn garp_keepalived_defaults_and_cancel_on_leaving_master() {
    let t0 = Instant::now();
    let mut inst = started(v2(255), t0);
    inst.set_priority(t0, 100);
    // Default: five at once on takeover (already drained), five more after 5 s.
    let later: Vec<_> = run_until(&mut inst, t0 + ms(5000))
        .into_iter()
        .filter(|(_, a)| matches!(a, Action::SendGratuitousArp { .. }))
        .map(|(at, _)| at - t0)
        .collect();
    assert_eq!(later, vec![secs(5); 5]);

    let mut inst = started(v2(255), t0);
    inst.set_priority(t0, 100);
    let mut garps = 0;
    for i in 1..=6 {
        let now = t0 + secs(i);
        garps += run_until(&mut inst, now)
            .into_iter()
            .filter(|(_, a)| matches!(a, Action::SendGratuitousArp { .. }))
            .count();
        inst.handle_advert(now, &advert(200, HIGHER_PEER, secs(1)));
        assert_eq!(inst.state(), State::Backup);
    }
    assert_eq!(
        garps, 0,
        "the delayed burst must not fire after losing mastership"
    );
}

#[test]
fn fault_drops_mastership_and_ignores_adverts() {
    let t0 = Instant::now();
    let mut inst = master_at_100(t0);
    let now = t0 + ms(4100);
    inst.set_fault(now, true);
    assert_eq!(
        drain(&mut inst),
        vec![
            changed(State::Master, State::Fault),
            Action::SendAdvert { priority: 0 },
            Action::RemoveVips,
        ]
    );
    assert_eq!(inst.poll_timeout(), None);
    inst.handle_advert(now + secs(1), &advert(50, LOWER_PEER, secs(1)));
    assert!(drain(&mut inst).is_empty());

    let clear = now + secs(2);
    inst.set_fault(clear, false);
    assert_eq!(
        drain(&mut inst),
        vec![changed(State::Fault, State::Backup), Action::RemoveVips]
    );
    assert_eq!(
        inst.poll_timeout(),
        Some(clear + inst.master_down_interval())
    );
}

#[test]
fn startup_in_fault_and_owner_leaving_fault() {
    let t0 = Instant::now();
    let mut inst = Instance::new(v2(255)).unwrap();
    inst.set_fault(t0, true);
    inst.startup(t0);
    assert_eq!(
        drain(&mut inst),
        vec![changed(State::Initialize, State::Fault), Action::RemoveVips]
    );
    inst.set_fault(t0 + secs(1), false);
    let mut expected = takeover_actions(255);
    expected[0] = changed(State::Fault, State::Master);
    assert_eq!(drain(&mut inst), expected);
}

#[test]
fn tracking_priority_change_is_clamped_and_advertised() {
    let t0 = Instant::now();
    let mut inst = master_at_100(t0);
    let now = t0 + ms(4100);
    inst.set_priority(now, 255);
    assert_eq!(inst.priority(), 254, "only the owner may advertise 255");
    assert_eq!(drain(&mut inst), vec![Action::SendAdvert { priority: 254 }]);
    assert_eq!(inst.poll_timeout(), Some(now + secs(1)));
    inst.set_priority(now, 0);
    assert_eq!(inst.priority(), 1, "0 would mean the master is leaving");
    inst.set_priority(now, 1);
    assert_eq!(drain(&mut inst), vec![Action::SendAdvert { priority: 1 }]);
}

#[test]
fn lowered_backup_priority_lengthens_skew() {
    let t0 = Instant::now();
    let mut inst = started(v2(200), t0);
    inst.set_priority(t0, 100);
    assert!(drain(&mut inst).is_empty());
    inst.handle_advert(t0 + secs(1), &advert(150, LOWER_PEER, secs(1)));
    assert_eq!(
        inst.poll_timeout(),
        Some(t0 + secs(1) + Duration::from_nanos(3_609_375_000))
    );
}

#[test]
fn config_is_checked() {
    use vrrpd::instance::ConfigError;
    let mut c = v2(100);
    c.vrid = 0;
    assert_eq!(Instance::new(c).unwrap_err(), ConfigError::VridZero);
    let mut c = v2(100);
    c.priority = 0;
    assert_eq!(Instance::new(c).unwrap_err(), ConfigError::PriorityZero);
    let c = cfg(Version::V2, 100, ms(500));
    assert_eq!(
        Instance::new(c).unwrap_err(),
        ConfigError::AdvertIntervalV2(ms(500))
    );
    let c = cfg(Version::V3, 100, ms(5));
    assert_eq!(
        Instance::new(c).unwrap_err(),
        ConfigError::AdvertIntervalV3(ms(5))
    );
    let c = cfg(Version::V3, 100, ms(40_960));
    assert!(matches!(
        Instance::new(c),
        Err(ConfigError::AdvertIntervalV3(_))
    ));
    let mut c = v2(100);
    c.vips.push("2001:db8::1".parse().unwrap());
    assert_eq!(Instance::new(c).unwrap_err(), ConfigError::V2NeedsIpv4);
    let mut c = cfg(Version::V3, 100, secs(1));
    c.vips.push("2001:db8::1".parse().unwrap());
    assert_eq!(Instance::new(c).unwrap_err(), ConfigError::MixedFamilies);
    let mut c = cfg(Version::V3, 100, secs(1));
    c.auth = Auth::simple("x").unwrap();
    assert_eq!(Instance::new(c).unwrap_err(), ConfigError::AuthOnV3);
    assert!(Instance::new(cfg(Version::V3, 100, ms(40_950))).is_ok());
}

#[test]
fn a_held_backup_waits_ready_until_its_sync_group_releases_it() {
    let t0 = Instant::now();
    let mut inst = Instance::new(v2(100)).unwrap();
    inst.set_master_hold(t0, true);
    inst.startup(t0);
    drain(&mut inst);
    let down = t0 + inst.master_down_interval();
    assert!(run_until(&mut inst, down).is_empty(), "held: no takeover");
    assert_eq!(inst.state(), State::Backup);
    assert!(inst.wants_master());
    assert_eq!(
        inst.poll_timeout(),
        None,
        "nothing to wait for but the group"
    );

    // A live master turns up meanwhile: no longer ready.
    inst.handle_advert(down + ms(10), &advert(150, HIGHER_PEER, secs(1)));
    assert!(!inst.wants_master());
    let down = down + ms(10) + inst.master_down_interval();
    assert!(run_until(&mut inst, down).is_empty());
    assert!(inst.wants_master());

    inst.set_master_hold(down + ms(5), false);
    assert_eq!(inst.state(), State::Master);
    assert_eq!(drain(&mut inst), takeover_actions(100));
}

#[test]
fn yielding_mastership_announces_priority_0_and_waits_as_backup() {
    let t0 = Instant::now();
    let mut inst = started(v2(150), t0);
    run_until(&mut inst, t0 + secs(4));
    assert_eq!(inst.state(), State::Master);
    let now = t0 + secs(4);
    inst.yield_mastership(now);
    assert_eq!(
        drain(&mut inst),
        vec![
            changed(State::Master, State::Backup),
            Action::SendAdvert { priority: 0 },
            Action::RemoveVips,
        ]
    );
    assert_eq!(inst.poll_timeout(), Some(now + inst.master_down_interval()));
    // A backup has nothing to yield.
    inst.yield_mastership(now);
    assert!(drain(&mut inst).is_empty());
}

/// A reload that changes only the gratuitous ARP settings of a master: no transition, no
/// advert, and the new refresh period in force from the change.
#[test]
fn garp_settings_change_in_place_without_a_transition() {
    let t0 = Instant::now();
    let mut inst = master_at_100(t0);
    drain(&mut inst);
    let now = t0 + ms(4100);
    let garp = GarpConfig {
        refresh: Some(secs(2)),
        ..GarpConfig::default()
    };
    inst.set_garp(now, garp);
    assert!(drain(&mut inst).is_empty());
    assert_eq!(inst.state(), State::Master);
    let refreshes = run_until(&mut inst, now + secs(2))
        .into_iter()
        .filter(|(_, a)| {
            matches!(
                a,
                Action::SendGratuitousArp {
                    burst: GarpBurst::Refresh,
                    ..
                }
            )
        })
        .count();
    assert_eq!(refreshes, 1);
}

/// `has_actions` says whether `poll_action` would give something, so the daemon can skip the
/// instances with nothing to do (and the cost of gathering the other masters' VIPs for them).
#[test]
fn has_actions_tells_whether_poll_action_has_something() {
    let t0 = Instant::now();
    let mut inst = Instance::new(v2(100)).unwrap();
    assert!(!inst.has_actions());
    inst.startup(t0);
    assert!(inst.has_actions());
    drain(&mut inst);
    assert!(!inst.has_actions());
    // Master_Down passes unheard: the takeover's actions are queued until polled.
    let at = inst.poll_timeout().unwrap();
    inst.handle_timeout(at);
    assert!(inst.has_actions());
    while inst.has_actions() {
        assert!(inst.poll_action().is_some());
    }
    assert_eq!(inst.poll_action(), None);
}

/// `lvsadm vrrp force-backup`: a master leaves as on shutdown (priority 0, addresses removed)
/// and stays backup whatever happens, even when no master is left; `release` counts
/// Master_Down afresh and takes over when it runs out.
#[test]
fn forced_backup_leaves_mastership_and_keeps_out_until_released() {
    let t0 = Instant::now();
    let mut inst = started(v2(200), t0);
    let down = inst.poll_timeout().unwrap();
    run_until(&mut inst, down);
    assert_eq!(inst.state(), State::Master);

    let forced_at = down + secs(1);
    inst.set_forced_backup(forced_at, true);
    assert_eq!(
        drain(&mut inst),
        vec![
            changed(State::Master, State::Backup),
            Action::SendAdvert { priority: 0 },
            Action::RemoveVips,
        ]
    );
    // A lower-priority master advertises, then leaves: a forced backup takes over from neither.
    inst.handle_advert(forced_at + secs(1), &advert(50, LOWER_PEER, secs(1)));
    inst.handle_advert(forced_at + secs(2), &advert(0, LOWER_PEER, secs(1)));
    assert!(run_until(&mut inst, forced_at + secs(60)).is_empty());
    assert_eq!(inst.state(), State::Backup);
    assert!(!inst.wants_master());
    assert_eq!(inst.master_addr(), None);

    let released = forced_at + secs(60);
    inst.set_forced_backup(released, false);
    assert!(
        drain(&mut inst).is_empty(),
        "release alone changes no state"
    );
    assert_eq!(
        inst.poll_timeout(),
        Some(released + inst.master_down_interval())
    );
    let actions = run_until(&mut inst, released + secs(10));
    assert_eq!(
        actions.first().map(|(_, a)| a),
        Some(&changed(State::Backup, State::Master))
    );
}

/// The address owner, forced at startup (a restart during maintenance) or across a fault,
/// stays backup; released, it takes over at once as an owner does.
#[test]
fn a_forced_owner_stays_backup_through_startup_and_faults() {
    let t0 = Instant::now();
    let mut inst = Instance::new(v2(255)).unwrap();
    inst.set_forced_backup(t0, true);
    inst.startup(t0);
    assert_eq!(
        drain(&mut inst),
        vec![
            changed(State::Initialize, State::Backup),
            Action::RemoveVips
        ]
    );
    inst.set_fault(t0 + secs(1), true);
    inst.set_fault(t0 + secs(2), false);
    assert_eq!(
        drain(&mut inst),
        vec![
            changed(State::Backup, State::Fault),
            Action::RemoveVips,
            changed(State::Fault, State::Backup),
            Action::RemoveVips
        ]
    );
    assert!(run_until(&mut inst, t0 + secs(30)).is_empty());

    inst.set_forced_backup(t0 + secs(30), false);
    let mut expected = takeover_actions(255);
    let actions = drain(&mut inst);
    expected.truncate(3);
    assert_eq!(actions[..3], expected[..]);
    assert_eq!(inst.state(), State::Master);
}

/// `bfd_takeover`: the session to the master going down cuts Master_Down to one advert
/// interval after the master's last advert; an advert heard after that (only BFD was lost)
/// restores the full interval, so the backup stays backup.
#[test]
fn a_down_bfd_session_to_the_master_cuts_master_down_to_one_missed_advert() {
    let t0 = Instant::now();
    let v3 = |p| cfg(Version::V3, p, ms(100));
    let mut inst = started(v3(100), t0);
    let heard = t0 + ms(1000);
    inst.handle_advert(heard, &advert(150, HIGHER_PEER, ms(100)));
    assert_eq!(
        inst.poll_timeout(),
        Some(heard + inst.master_down_interval())
    );
    // Another peer's session says nothing about this master.
    inst.peer_down(heard + ms(30), LOWER_PEER.into());
    assert_eq!(
        inst.poll_timeout(),
        Some(heard + inst.master_down_interval())
    );
    inst.peer_down(heard + ms(30), HIGHER_PEER.into());
    assert_eq!(inst.poll_timeout(), Some(heard + ms(100)));
    // BFD alone lost: the master's next advert puts the full Master_Down back.
    let next = heard + ms(99);
    inst.handle_advert(next, &advert(150, HIGHER_PEER, ms(100)));
    assert_eq!(
        inst.poll_timeout(),
        Some(next + inst.master_down_interval())
    );
    assert!(run_until(&mut inst, next + ms(300)).is_empty());
    // The master dies: BFD sees it 30 ms after its last advert, the takeover comes at 100 ms.
    inst.peer_down(next + ms(30), HIGHER_PEER.into());
    let actions = run_until(&mut inst, next + ms(100));
    assert_eq!(
        actions.first(),
        Some(&(next + ms(100), changed(State::Backup, State::Master)))
    );
}
