//! Property tests: no sequence of ledger operations, sequential or concurrent, overcommits
//! a droplet, and reports interleaved with the ledger's own bookings never count a
//! deployment twice or lose one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use proptest::prelude::*;
use scheduler::fixtures::{self, droplet, request};
use scheduler::{Decision, Ledger, PendingDeployment, Resources, SharedLedger, Snapshot};

const SIZES: [&str; 4] = ["s-1vcpu-1gb", "s-1vcpu-2gb", "s-2vcpu-4gb", "s-4vcpu-8gb"];

fn t(secs: u64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs as i64).unwrap()
}

/// Every droplet's used equals the sum of its bookings and fits its allocatable.
fn assert_no_overcommit(l: &Ledger) {
    let mut sums: HashMap<&str, Resources> = HashMap::new();
    for (_, b) in l.bookings() {
        let e = sums.entry(b.droplet.as_str()).or_default();
        *e = e.plus(b.request);
    }
    for key in l.droplet_keys() {
        let used = l.used(key).unwrap();
        let alloc = l.allocatable(key).unwrap();
        assert!(used.fits_in(&alloc), "{key}: {used:?} > {alloc:?}");
        assert_eq!(
            used,
            sums.get(key.as_str()).copied().unwrap_or_default(),
            "{key}"
        );
    }
}

#[derive(Debug, Clone)]
enum Op {
    Assume {
        dep: u8,
        droplet: u8,
        mem_mib: u64,
        cpu: u64,
    },
    Confirm {
        dep: u8,
    },
    Forget {
        dep: u8,
    },
    Advance {
        secs: u64,
    },
    /// Droplet `droplet` reports exactly these deployments running.
    Report {
        droplet: u8,
        deps: Vec<u8>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..16, 0u8..4, 64u64..3000, 10u64..3000)
            .prop_map(|(dep, droplet, mem_mib, cpu)| Op::Assume { dep, droplet, mem_mib, cpu }),
        2 => (0u8..16).prop_map(|dep| Op::Confirm { dep }),
        1 => (0u8..16).prop_map(|dep| Op::Forget { dep }),
        1 => (1u64..90).prop_map(|secs| Op::Advance { secs }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sequential_operations_never_overcommit(ops in prop::collection::vec(op(), 1..80)) {
        let mut l = Ledger::new(Duration::from_secs(60));
        for (i, s) in SIZES.iter().enumerate() {
            l.sync_droplet(&droplet(&format!("d{i}"), s));
        }
        let mut now = 0;
        for op in ops {
            match op {
                Op::Assume { dep, droplet, mem_mib, cpu } => {
                    let _ = l.assume(&format!("team-a/x{dep}"), &format!("team-a/d{droplet}"), request(mem_mib, cpu), t(now));
                }
                Op::Confirm { dep } => { let _ = l.confirm(&format!("team-a/x{dep}"), t(now)); }
                Op::Forget { dep } => { l.forget(&format!("team-a/x{dep}")); }
                Op::Advance { secs } => { now += secs; l.expire(t(now)); }
                Op::Report { .. } => {}
            }
            assert_no_overcommit(&l);
        }
    }

    #[test]
    fn concurrent_placements_never_overcommit(
        requests in prop::collection::vec((64u64..2500, 10u64..2500, 0u8..4), 8..48),
        seed in any::<u64>(),
    ) {
        let droplets: Vec<_> = SIZES.iter().enumerate().map(|(i, s)| droplet(&format!("d{i}"), s)).collect();
        let snap = Arc::new(Snapshot::new(droplets, vec![fixtures::pool()], fixtures::test_sizes(), fixtures::test_regions()).unwrap());
        let shared = Arc::new(SharedLedger::new(Ledger::new(Duration::from_secs(60))));
        let threads = 4;
        let handles: Vec<_> = (0..threads).map(|th| {
            let snap = Arc::clone(&snap);
            let shared = Arc::clone(&shared);
            let mine: Vec<_> = requests.iter().enumerate().filter(|(i, _)| i % threads == th).map(|(i, r)| (i, *r)).collect();
            std::thread::spawn(move || {
                let mut now = (seed % 7) * th as u64;
                for (i, (mem, cpu, action)) in mine {
                    let dep = PendingDeployment::new(format!("team-a/x{i}"), request(mem, cpu), fixtures::POOL);
                    let decision = shared.place(&snap, &dep, t(now)).unwrap();
                    if let Decision::Place(_) = decision {
                        match action {
                            0 => { shared.confirm(&dep.key, t(now + 1)).ok(); }
                            1 => { shared.forget(&dep.key).unwrap(); }
                            _ => {}
                        }
                    }
                    now += 25;
                    shared.with(|l| assert_no_overcommit(l)).unwrap();
                }
            })
        }).collect();
        for h in handles {
            h.join().unwrap();
        }
        shared.with(|l| assert_no_overcommit(l)).unwrap();
    }

    #[test]
    fn reports_and_bookings_count_every_deployment_once(
        ops in prop::collection::vec(prop_oneof![
            3 => op().prop_map(Some),
            2 => (0u8..4, prop::collection::vec(0u8..16, 0..5))
                .prop_map(|(droplet, deps)| Some(Op::Report { droplet, deps })),
        ], 1..80),
    ) {
        let droplets: Vec<_> = SIZES.iter().enumerate().map(|(i, s)| droplet(&format!("d{i}"), s)).collect();
        let mut l = Ledger::new(Duration::from_secs(60));
        let mut latest: Vec<scheduler::FleetDroplet> = droplets.clone();
        for d in &droplets {
            l.sync_droplet(d);
        }
        let size_of = |dep: u8| request(64 * (u64::from(dep) + 1), 10);
        let mut now = 0;
        for op in ops.into_iter().flatten() {
            match op {
                Op::Report { droplet: d, deps: mut listed } => {
                    let index = usize::from(d);
                    listed.sort_unstable();
                    listed.dedup();
                    let mut report = droplets[index].clone();
                    report.deployments = listed.iter().map(|dep| scheduler::PlacedDeployment {
                        key: format!("team-a/x{dep}"),
                        request: size_of(*dep),
                        reported: true,
                        do_not_disrupt: false,
                        pinned: false,
                    }).collect();
                    l.sync_droplet(&report);
                    latest[index] = report;
                    // Reported deployments are booked where reported, once.
                    for dep in &listed {
                        let b = l.booking(&format!("team-a/x{dep}")).unwrap();
                        prop_assert_eq!(b.droplet.as_str(), format!("team-a/d{index}"));
                    }
                }
                Op::Assume { dep, droplet, .. } => {
                    let _ = l.assume(&format!("team-a/x{dep}"), &format!("team-a/d{droplet}"), size_of(dep), t(now));
                }
                Op::Confirm { dep } => { let _ = l.confirm(&format!("team-a/x{dep}"), t(now)); }
                Op::Forget { dep } => { l.forget(&format!("team-a/x{dep}")); }
                Op::Advance { secs } => { now += secs; l.expire(t(now)); }
            }
            // Every droplet's usage is exactly the sum of its bookings: nothing twice.
            let mut sums: HashMap<String, Resources> = HashMap::new();
            for (_, b) in l.bookings() {
                let e = sums.entry(b.droplet.clone()).or_default();
                *e = e.plus(b.request);
            }
            for key in l.droplet_keys() {
                prop_assert_eq!(l.used(key).unwrap(), sums.get(key).copied().unwrap_or_default());
            }
        }
        // The usage aligned with a snapshot of the latest reports matches the ledger's.
        let snap = Snapshot::new(latest, vec![fixtures::pool()], fixtures::test_sizes(), fixtures::test_regions()).unwrap();
        let usage = l.usage_for(&snap).to_vec();
        for (i, u) in usage.iter().enumerate() {
            prop_assert_eq!(Some(*u), l.used(snap.droplet_key(i)));
        }
    }
}
