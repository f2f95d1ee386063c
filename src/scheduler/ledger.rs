//! The scheduling ledger: the one owner of "who is placed where".
//!
//! Like kube-scheduler's assume cache: a decision books the request on the droplet at once
//! (assumed), so the next decision sees it; the booking is confirmed when the agent reports
//! the container, and an assumed booking that is not confirmed within the TTL expires and
//! frees its resources. Every booking checks fit, so no sequence of calls can overcommit a
//! droplet. [`SharedLedger`] puts the ledger behind one mutex and makes decide-and-book one
//! step, so concurrent reconciles cannot both take the last free slot.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::model::{Droplet, PendingDeployment, ResourceKind, Resources};
use super::score::{Decision, decide};
use super::snapshot::Snapshot;

/// Default time an assumed placement lives without confirmation.
pub const DEFAULT_ASSUME_TTL: Duration = Duration::from_secs(60);

/// Errors from ledger operations.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LedgerError {
    /// The droplet is not known to the ledger.
    #[error("droplet {0} is not in the ledger")]
    UnknownDroplet(String),
    /// Booking would exceed the droplet's allocatable.
    #[error("droplet {droplet} has not enough {resource} for {deployment}")]
    WouldOvercommit {
        /// Droplet key.
        droplet: String,
        /// Deployment key.
        deployment: String,
        /// The short resource.
        resource: ResourceKind,
    },
    /// The deployment already has a booking on another droplet.
    #[error("deployment {deployment} is already placed on {droplet}")]
    AlreadyPlaced {
        /// Deployment key.
        deployment: String,
        /// Where it is.
        droplet: String,
    },
    /// Confirming a booking that does not exist (never made, forgotten or expired).
    #[error("deployment {0} has no live booking")]
    NoBooking(String),
    /// The mutex was poisoned by a panic in another thread.
    #[error("the ledger lock was poisoned")]
    Poisoned,
}

/// State of one booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingState {
    /// Decided, not yet reported running; expires at the given time.
    Assumed {
        /// When it stops counting.
        expires_at: Timestamp,
    },
    /// Reported running by the droplet's agent.
    Confirmed,
}

/// One deployment's claim on one droplet.
#[derive(Debug, Clone, PartialEq)]
pub struct Booking {
    /// Droplet key (`namespace/name`).
    pub droplet: String,
    /// The resources it holds.
    pub request: Resources,
    /// Assumed or confirmed.
    pub state: BookingState,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct DropletBook {
    allocatable: Resources,
    used: Resources,
}

/// The ledger as a plain struct; wrap it in [`SharedLedger`] for concurrent use.
#[derive(Debug, Clone)]
pub struct Ledger {
    ttl: SignedDuration,
    droplets: HashMap<String, DropletBook>,
    bookings: HashMap<String, Booking>,
}

impl Ledger {
    /// An empty ledger whose assumed bookings live `ttl` without confirmation.
    pub fn new(ttl: Duration) -> Self {
        Ledger {
            ttl: SignedDuration::try_from(ttl).unwrap_or(SignedDuration::MAX),
            droplets: HashMap::new(),
            bookings: HashMap::new(),
        }
    }

    /// Registers or updates a droplet's allocatable, and records its reported deployments
    /// as confirmed (the agent is the authority on what runs). Returns the keys of reported
    /// deployments that did not fit, which the caller should surface.
    pub fn sync_droplet(&mut self, droplet: &Droplet) -> Vec<String> {
        let key = format!("{}/{}", droplet.namespace, droplet.name);
        let book = self.droplets.entry(key.clone()).or_default();
        book.allocatable = droplet.allocatable;
        let mut overcommitted = Vec::new();
        for placed in &droplet.deployments {
            match self.bookings.get_mut(&placed.key) {
                Some(b) if b.droplet == key => b.state = BookingState::Confirmed,
                Some(_) => {}
                None => {
                    let after = book.used.plus(placed.request);
                    if !after.fits_in(&book.allocatable) {
                        overcommitted.push(placed.key.clone());
                    }
                    book.used = after;
                    self.bookings.insert(
                        placed.key.clone(),
                        Booking {
                            droplet: key.clone(),
                            request: placed.request,
                            state: BookingState::Confirmed,
                        },
                    );
                }
            }
        }
        overcommitted
    }

    /// Drops a droplet and every booking on it; returns the deployments that lost their
    /// place.
    pub fn remove_droplet(&mut self, droplet: &str) -> Vec<String> {
        self.droplets.remove(droplet);
        let lost: Vec<String> = self
            .bookings
            .iter()
            .filter(|(_, b)| b.droplet == droplet)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &lost {
            self.bookings.remove(k);
        }
        lost
    }

    /// Books `request` for `deployment` on `droplet` as assumed until `now + ttl`.
    /// Re-assuming on the same droplet refreshes the expiry.
    pub fn assume(
        &mut self,
        deployment: &str,
        droplet: &str,
        request: Resources,
        now: Timestamp,
    ) -> Result<(), LedgerError> {
        self.expire(now);
        let expires_at = now.saturating_add(self.ttl).unwrap_or(Timestamp::MAX);
        if let Some(existing) = self.bookings.get_mut(deployment) {
            if existing.droplet != droplet || existing.request != request {
                return Err(LedgerError::AlreadyPlaced {
                    deployment: deployment.to_string(),
                    droplet: existing.droplet.clone(),
                });
            }
            if let BookingState::Assumed { .. } = existing.state {
                existing.state = BookingState::Assumed { expires_at };
            }
            return Ok(());
        }
        let book = self
            .droplets
            .get_mut(droplet)
            .ok_or_else(|| LedgerError::UnknownDroplet(droplet.to_string()))?;
        let after = book.used.plus(request);
        if let Some(resource) = after.first_shortfall(&book.allocatable) {
            return Err(LedgerError::WouldOvercommit {
                droplet: droplet.to_string(),
                deployment: deployment.to_string(),
                resource,
            });
        }
        book.used = after;
        self.bookings.insert(
            deployment.to_string(),
            Booking {
                droplet: droplet.to_string(),
                request,
                state: BookingState::Assumed { expires_at },
            },
        );
        Ok(())
    }

    /// Marks an assumed booking as running. Fails if it expired or never existed.
    pub fn confirm(&mut self, deployment: &str, now: Timestamp) -> Result<(), LedgerError> {
        self.expire(now);
        let booking = self
            .bookings
            .get_mut(deployment)
            .ok_or_else(|| LedgerError::NoBooking(deployment.to_string()))?;
        booking.state = BookingState::Confirmed;
        Ok(())
    }

    /// Removes a deployment's booking (deployment deleted, or the agent rejected it).
    pub fn forget(&mut self, deployment: &str) -> Option<Booking> {
        let booking = self.bookings.remove(deployment)?;
        if let Some(book) = self.droplets.get_mut(&booking.droplet) {
            book.used = book.used.minus(booking.request);
        }
        Some(booking)
    }

    /// Drops assumed bookings whose TTL has passed; returns their deployments.
    pub fn expire(&mut self, now: Timestamp) -> Vec<String> {
        let expired: Vec<String> = self
            .bookings
            .iter()
            .filter(|(_, b)| matches!(b.state, BookingState::Assumed { expires_at } if expires_at <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &expired {
            self.forget(k);
        }
        expired
    }

    /// What is booked on a droplet (confirmed plus live assumed as of the last call that
    /// took `now`).
    pub fn used(&self, droplet: &str) -> Option<Resources> {
        self.droplets.get(droplet).map(|b| b.used)
    }

    /// Allocatable of a droplet as the ledger knows it.
    pub fn allocatable(&self, droplet: &str) -> Option<Resources> {
        self.droplets.get(droplet).map(|b| b.allocatable)
    }

    /// A deployment's booking.
    pub fn booking(&self, deployment: &str) -> Option<&Booking> {
        self.bookings.get(deployment)
    }

    /// All bookings, keyed by deployment.
    pub fn bookings(&self) -> impl Iterator<Item = (&String, &Booking)> {
        self.bookings.iter()
    }

    /// The droplet keys the ledger tracks.
    pub fn droplet_keys(&self) -> impl Iterator<Item = &String> {
        self.droplets.keys()
    }

    /// Usage aligned with `snapshot`'s droplets, syncing droplets the ledger has not seen.
    pub fn usage_for(&mut self, snapshot: &Snapshot) -> Vec<Resources> {
        snapshot
            .droplets()
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let key = snapshot.droplet_key(i);
                if !self.droplets.contains_key(key) {
                    self.sync_droplet(d);
                }
                self.droplets
                    .get(key)
                    .map(|b| b.used)
                    .unwrap_or(d.allocated)
            })
            .collect()
    }

    /// Decides where `deployment` goes and books it in one step.
    pub fn place(
        &mut self,
        snapshot: &Snapshot,
        deployment: &PendingDeployment,
        now: Timestamp,
    ) -> Result<Decision, LedgerError> {
        self.expire(now);
        if let Some(b) = self.bookings.get(&deployment.key) {
            return Err(LedgerError::AlreadyPlaced {
                deployment: deployment.key.clone(),
                droplet: b.droplet.clone(),
            });
        }
        let usage = self.usage_for(snapshot);
        let decision = decide(snapshot, &usage, deployment);
        if let Decision::Place(p) = &decision {
            let key = snapshot.droplet_key(p.droplet_index).to_string();
            self.assume(&deployment.key, &key, deployment.request, now)?;
        }
        Ok(decision)
    }
}

/// The ledger behind one mutex: the single writer of placements for the whole operator.
#[derive(Debug)]
pub struct SharedLedger {
    inner: Mutex<Ledger>,
}

impl SharedLedger {
    /// Wraps a ledger.
    pub fn new(ledger: Ledger) -> Self {
        SharedLedger {
            inner: Mutex::new(ledger),
        }
    }

    /// Runs `f` with the ledger locked.
    pub fn with<T>(&self, f: impl FnOnce(&mut Ledger) -> T) -> Result<T, LedgerError> {
        let mut guard = self.inner.lock().map_err(|_| LedgerError::Poisoned)?;
        Ok(f(&mut guard))
    }

    /// Decide and book atomically (see [`Ledger::place`]).
    pub fn place(
        &self,
        snapshot: &Snapshot,
        deployment: &PendingDeployment,
        now: Timestamp,
    ) -> Result<Decision, LedgerError> {
        self.with(|l| l.place(snapshot, deployment, now))?
    }

    /// Confirm a booking (see [`Ledger::confirm`]).
    pub fn confirm(&self, deployment: &str, now: Timestamp) -> Result<(), LedgerError> {
        self.with(|l| l.confirm(deployment, now))?
    }

    /// Forget a booking (see [`Ledger::forget`]).
    pub fn forget(&self, deployment: &str) -> Result<Option<Booking>, LedgerError> {
        self.with(|l| l.forget(deployment))
    }

    /// Expire stale assumptions (see [`Ledger::expire`]).
    pub fn expire(&self, now: Timestamp) -> Result<Vec<String>, LedgerError> {
        self.with(|l| l.expire(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::fixtures::{self, droplet, request};
    use crate::scheduler::model::PlacedDeployment;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn ledger_with(d: &Droplet) -> Ledger {
        let mut l = Ledger::new(Duration::from_secs(60));
        l.sync_droplet(d);
        l
    }

    #[test]
    fn assumed_bookings_count_until_they_expire() {
        let d = droplet("d1", "s-1vcpu-2gb"); // 1536 MiB allocatable
        let mut l = ledger_with(&d);
        l.assume("team-a/x", "team-a/d1", request(1024, 100), t(0))
            .unwrap();
        let err = l.assume("team-a/y", "team-a/d1", request(1024, 100), t(30));
        assert!(matches!(
            err,
            Err(LedgerError::WouldOvercommit {
                resource: ResourceKind::Memory,
                ..
            })
        ));
        // At 60 s the first assumption expired, so the second fits.
        l.assume("team-a/y", "team-a/d1", request(1024, 100), t(60))
            .unwrap();
        assert!(l.booking("team-a/x").is_none());
        assert_eq!(l.used("team-a/d1"), Some(request(1024, 100)));
    }

    #[test]
    fn confirmed_bookings_never_expire_and_late_confirmations_fail() {
        let d = droplet("d1", "s-2vcpu-4gb");
        let mut l = ledger_with(&d);
        l.assume("team-a/x", "team-a/d1", request(512, 100), t(0))
            .unwrap();
        l.confirm("team-a/x", t(10)).unwrap();
        l.assume("team-a/y", "team-a/d1", request(512, 100), t(0))
            .unwrap();
        assert_eq!(l.expire(t(1000)), vec!["team-a/y".to_string()]);
        assert_eq!(
            l.confirm("team-a/y", t(1000)),
            Err(LedgerError::NoBooking("team-a/y".into()))
        );
        assert_eq!(l.used("team-a/d1"), Some(request(512, 100)));
    }

    #[test]
    fn forget_frees_and_double_placement_is_refused() {
        let d = droplet("d1", "s-2vcpu-4gb");
        let mut l = ledger_with(&d);
        l.sync_droplet(&droplet("d2", "s-2vcpu-4gb"));
        l.assume("team-a/x", "team-a/d1", request(512, 100), t(0))
            .unwrap();
        assert!(matches!(
            l.assume("team-a/x", "team-a/d2", request(512, 100), t(0)),
            Err(LedgerError::AlreadyPlaced { .. })
        ));
        assert!(l.forget("team-a/x").is_some());
        assert_eq!(l.used("team-a/d1"), Some(Resources::ZERO));
        assert!(matches!(
            l.assume("team-a/x", "team-a/ghost", request(1, 1), t(0)),
            Err(LedgerError::UnknownDroplet(_))
        ));
    }

    #[test]
    fn sync_records_reported_deployments_as_confirmed() {
        let mut d = droplet("d1", "s-1vcpu-2gb");
        d.deployments.push(PlacedDeployment {
            key: "team-a/old".into(),
            request: request(1024, 100),
            do_not_disrupt: false,
            pinned: false,
        });
        let l = ledger_with(&d);
        assert_eq!(
            l.booking("team-a/old").map(|b| b.state),
            Some(BookingState::Confirmed)
        );
        assert_eq!(l.used("team-a/d1"), Some(request(1024, 100)));
    }

    #[test]
    fn place_decides_and_books_so_the_last_slot_goes_once() {
        let snap = Snapshot::new(
            vec![droplet("d1", "s-1vcpu-2gb")],
            vec![fixtures::pool()],
            fixtures::test_sizes(),
            fixtures::test_regions(),
        )
        .unwrap();
        let shared = SharedLedger::new(Ledger::new(Duration::from_secs(60)));
        let a = PendingDeployment::new("team-a/a", request(1024, 100), fixtures::POOL);
        let b = PendingDeployment::new("team-a/b", request(1024, 100), fixtures::POOL);
        assert!(matches!(
            shared.place(&snap, &a, t(0)),
            Ok(Decision::Place(_))
        ));
        assert!(matches!(
            shared.place(&snap, &b, t(1)),
            Ok(Decision::NoFit(_))
        ));
        assert!(matches!(
            shared.place(&snap, &a, t(2)),
            Err(LedgerError::AlreadyPlaced { .. })
        ));
        // Once a's assumption expires, b gets the slot.
        assert!(matches!(
            shared.place(&snap, &b, t(61)),
            Ok(Decision::Place(_))
        ));
    }
}
