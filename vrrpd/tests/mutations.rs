//! Bounded, deterministic fuzzing of the receive path: seed adverts of every kind are mutated
//! (bit flips, byte overwrites, truncation, extension, address-count edits), half of them with
//! the checksum repaired so the mutation reaches the checks behind it. Nothing may panic, and
//! whatever `Repr::parse` accepts must survive an emit/parse round trip unchanged.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use vrrpd::instance::{GarpConfig, InstanceConfig};
use vrrpd::rx;
use vrrpd::wire::{Addresses, Auth, Body, IpPair, Packet, Repr, VRRP_GROUP_V4, VRRP_GROUP_V6};

/// xorshift64*: a fixed seed gives the same mutation sequence on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn ip4() -> IpPair {
    IpPair::V4 {
        src: Ipv4Addr::new(192, 0, 2, 1),
        dst: VRRP_GROUP_V4,
    }
}

fn ip6() -> IpPair {
    IpPair::V6 {
        src: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
        dst: VRRP_GROUP_V6,
    }
}

fn seeds() -> Vec<(Repr, IpPair)> {
    let v4 = vec![Ipv4Addr::new(192, 0, 2, 100), Ipv4Addr::new(192, 0, 2, 101)];
    let v6 = vec![Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100)];
    vec![
        (
            Repr {
                vrid: 51,
                priority: 150,
                body: Body::V2 {
                    advert_int: 1,
                    auth: Auth::simple("s3cret").unwrap(),
                    addrs: v4.clone(),
                },
            },
            ip4(),
        ),
        (
            Repr {
                vrid: 51,
                priority: 100,
                body: Body::V2 {
                    advert_int: 1,
                    auth: Auth::None,
                    addrs: v4.clone(),
                },
            },
            ip4(),
        ),
        (
            Repr {
                vrid: 51,
                priority: 150,
                body: Body::V3 {
                    max_advert_int: 10,
                    addrs: Addresses::V4(v4),
                },
            },
            ip4(),
        ),
        (
            Repr {
                vrid: 51,
                priority: 150,
                body: Body::V3 {
                    max_advert_int: 100,
                    addrs: Addresses::V6(v6),
                },
            },
            ip6(),
        ),
    ]
}

fn instance_for(repr: &Repr, ip: &IpPair) -> InstanceConfig {
    let v2 = matches!(repr.body, Body::V2 { .. });
    InstanceConfig {
        vrid: 51,
        version: repr.version(),
        priority: 100,
        advert_interval: if v2 {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(100)
        },
        preempt: true,
        preempt_delay: Duration::ZERO,
        primary_addr: ip.src(),
        vips: repr.addresses(),
        auth: repr.auth(),
        garp: GarpConfig::default(),
    }
}

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    for _ in 0..=rng.below(3) {
        match rng.below(6) {
            0 if !bytes.is_empty() => {
                let at = rng.below(bytes.len());
                bytes[at] ^= 1 << rng.below(8);
            }
            1 if !bytes.is_empty() => {
                let at = rng.below(bytes.len());
                bytes[at] = rng.next() as u8;
            }
            2 => bytes.truncate(rng.below(bytes.len() + 1)),
            3 => {
                for _ in 0..rng.below(40) {
                    bytes.push(rng.next() as u8);
                }
            }
            4 if bytes.len() > 3 => bytes[3] = rng.next() as u8,
            _ if !bytes.is_empty() => bytes[0] = rng.next() as u8,
            _ => {}
        }
    }
}

#[test]
fn mutated_adverts_never_panic_and_accepted_ones_round_trip() {
    let seeds = seeds();
    let mut rng = Rng(0x5eed_0f72_7270_6400);
    let started = Instant::now();
    let (mut accepted, mut rejected, mut iterations) = (0u64, 0u64, 0u64);
    // Bounded both ways: a fixed sequence, cut short on a slow machine.
    while iterations < 400_000 && started.elapsed() < Duration::from_secs(4) {
        iterations += 1;
        let (seed, seed_ip) = &seeds[rng.below(seeds.len())];
        // Now and then the packet arrives over the other family, which changes every length rule.
        let ip = if rng.below(8) == 0 {
            if seed_ip.is_ipv4() { ip6() } else { ip4() }
        } else {
            *seed_ip
        };
        let mut bytes = seed.to_bytes(seed_ip);
        mutate(&mut rng, &mut bytes);
        if rng.below(2) == 0 && bytes.len() >= 8 {
            Packet::new_unchecked(&mut bytes[..]).fill_checksum(&ip);
        }
        let ttl = if rng.below(16) == 0 {
            rng.next() as u8
        } else {
            255
        };
        let cfg = instance_for(seed, seed_ip);
        match rx::validate(&bytes, &ip, ttl, &cfg) {
            Ok(valid) => {
                accepted += 1;
                assert_eq!(valid.src, ip.src());
            }
            Err(reject) => {
                rejected += 1;
                assert!(
                    rx::Reject::LABELS.contains(&reject.as_str()),
                    "{reject:?} has an unregistered label"
                );
            }
        }
        let Ok(packet) = Packet::new_checked(&bytes[..]) else {
            continue;
        };
        if let Ok(repr) = Repr::parse(&packet, &ip) {
            let again = repr.to_bytes(&ip);
            let reparsed = Repr::parse(&Packet::new_checked(&again[..]).unwrap(), &ip);
            assert_eq!(reparsed.as_ref(), Ok(&repr), "bytes {bytes:02x?}");
        }
    }
    println!("{iterations} mutations: {accepted} accepted, {rejected} rejected");
    assert!(
        accepted > 0 && rejected > 0,
        "the mutations must reach both outcomes"
    );
}
