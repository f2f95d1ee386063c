//! Property tests: no sequence of ledger operations, sequential or concurrent, overcommits
//! a droplet.

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
}
