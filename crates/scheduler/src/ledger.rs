//! The scheduling ledger: the one owner of "who is placed where".
//!
//! Like kube-scheduler's assume cache: a decision books the request on the droplet at once
//! (assumed), so the next decision sees it; an assumed booking that is neither confirmed nor
//! reported within the TTL expires and frees its resources. Every booking the ledger makes
//! checks fit, so no sequence of calls can overcommit a droplet. [`SharedLedger`] puts the
//! ledger behind one mutex and makes decide-and-book one step, so concurrent reconciles
//! cannot both take the last free slot.
//!
//! One truth for what runs where: the droplets' reports win. Syncing a droplet (or a whole
//! [`Snapshot`]) records its reported deployments on it, moving a booking made elsewhere (a
//! deployment reported on B but booked on A counts on B only), turning a matching assumption
//! into a report (counted once), and dropping earlier reports the droplet no longer lists.
//! Placements recorded in a deployment's status but not reported yet count where recorded,
//! unless the ledger's own booking is newer; the ledger's assumptions not seen in any report
//! still count until their TTL.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::model::{FleetDroplet, PendingDeployment, ResourceKind, Resources};
use super::score::{Decision, choose_droplet};
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

/// State of one booking, from the weakest claim to the strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingState {
    /// Decided by this ledger, not yet reported running; expires at the given time.
    Assumed {
        /// When it stops counting.
        expires_at: Timestamp,
    },
    /// Accepted by the droplet's agent ([`Ledger::confirm`]); lives until forgotten or
    /// reported elsewhere.
    Confirmed,
    /// Named by the deployment's recorded placement (status) but not reported by the
    /// droplet yet; lives while the snapshots say so.
    Recorded,
    /// Reported running by the droplet's agent; lives while the droplet reports it.
    Reported,
}

impl BookingState {
    /// True for claims that come from the snapshot (reports and recorded placements), which
    /// the next sync replaces; false for the ledger's own (assumed, confirmed).
    fn comes_from_snapshot(self) -> bool {
        matches!(self, BookingState::Recorded | BookingState::Reported)
    }
}

/// One deployment's claim on one droplet.
#[derive(Debug, Clone, PartialEq)]
pub struct Booking {
    /// Droplet key (`namespace/name`).
    pub droplet: String,
    /// The resources it holds.
    pub request: Resources,
    /// Assumed, confirmed, recorded or reported.
    pub state: BookingState,
}

#[derive(Debug, Clone, Default)]
struct DropletBook {
    allocatable: Resources,
    /// Usage the droplet reports that no booking accounts for.
    unlisted: Resources,
    /// `unlisted` plus every booking on the droplet, kept up to date on every change.
    used: Resources,
    /// Deployments booked here.
    deployments: BTreeSet<String>,
}

/// Usage aligned with one snapshot's droplets, kept current on every change so a decision
/// against the same snapshot costs no pass over the fleet.
#[derive(Debug, Clone)]
struct AlignedUsage {
    generation: u64,
    index: HashMap<String, usize>,
    usage: Vec<Resources>,
}

/// The ledger as a plain struct; wrap it in [`SharedLedger`] for concurrent use.
#[derive(Debug, Clone)]
pub struct Ledger {
    ttl: SignedDuration,
    droplets: HashMap<String, DropletBook>,
    bookings: HashMap<String, Booking>,
    /// Assumed bookings by expiry, so `expire` touches only what expires.
    expiries: BTreeSet<(Timestamp, String)>,
    aligned: Option<AlignedUsage>,
}

impl Ledger {
    /// An empty ledger whose assumed bookings live `ttl` without confirmation.
    pub fn new(ttl: Duration) -> Self {
        Ledger {
            ttl: SignedDuration::try_from(ttl).unwrap_or(SignedDuration::MAX),
            droplets: HashMap::new(),
            bookings: HashMap::new(),
            expiries: BTreeSet::new(),
            aligned: None,
        }
    }

    /// Recomputes a droplet's usage from its bookings and mirrors it into the aligned view.
    fn refresh(&mut self, droplet: &str) {
        let Some(book) = self.droplets.get_mut(droplet) else {
            return;
        };
        book.used = book
            .deployments
            .iter()
            .filter_map(|k| self.bookings.get(k))
            .fold(book.unlisted, |sum, b| sum.plus(b.request));
        if let Some(aligned) = &mut self.aligned
            && let Some(&i) = aligned.index.get(droplet)
        {
            aligned.usage[i] = book.used;
        }
    }

    /// Adds `request` to a droplet's usage (and the aligned view) without a full recount.
    fn add_usage(&mut self, droplet: &str, request: Resources, add: bool) {
        let Some(book) = self.droplets.get_mut(droplet) else {
            return;
        };
        book.used = if add {
            book.used.plus(request)
        } else {
            book.used.minus(request)
        };
        if let Some(aligned) = &mut self.aligned
            && let Some(&i) = aligned.index.get(droplet)
        {
            aligned.usage[i] = book.used;
        }
    }

    /// Removes a booking wherever it is; returns it.
    fn unbook(&mut self, deployment: &str) -> Option<Booking> {
        let booking = self.bookings.remove(deployment)?;
        if let BookingState::Assumed { expires_at } = booking.state {
            self.expiries.remove(&(expires_at, deployment.to_string()));
        }
        if let Some(book) = self.droplets.get_mut(&booking.droplet) {
            book.deployments.remove(deployment);
        }
        self.add_usage(&booking.droplet, booking.request, false);
        Some(booking)
    }

    /// Books `deployment` on a known droplet (replacing any booking it had).
    fn book(&mut self, deployment: &str, droplet: &str, request: Resources, state: BookingState) {
        self.unbook(deployment);
        if let BookingState::Assumed { expires_at } = state {
            self.expiries.insert((expires_at, deployment.to_string()));
        }
        if let Some(book) = self.droplets.get_mut(droplet) {
            book.deployments.insert(deployment.to_string());
        }
        self.bookings.insert(
            deployment.to_string(),
            Booking {
                droplet: droplet.to_string(),
                request,
                state,
            },
        );
        self.add_usage(droplet, request, true);
    }

    /// Registers or updates a droplet from its report: allocatable, unlisted usage and the
    /// deployments placed on it. Reported deployments are booked here whatever the ledger
    /// held (the agent is the authority on what runs); recorded ones are booked here unless
    /// the ledger's own booking is newer; earlier reports and recorded placements the droplet
    /// no longer lists are dropped. Returns the reported deployments that did not fit,
    /// which the caller should surface.
    pub fn sync_droplet(&mut self, droplet: &FleetDroplet) -> Vec<String> {
        let key = format!("{}/{}", droplet.namespace, droplet.name);
        let book = self.droplets.entry(key.clone()).or_default();
        book.allocatable = droplet.allocatable;
        book.unlisted = droplet.unlisted_usage;
        let listed: std::collections::HashSet<&str> =
            droplet.deployments.iter().map(|p| p.key.as_str()).collect();
        let stale: Vec<String> = book
            .deployments
            .iter()
            .filter(|k| !listed.contains(k.as_str()))
            .filter(|k| {
                self.bookings
                    .get(*k)
                    .is_some_and(|b| b.state.comes_from_snapshot())
            })
            .cloned()
            .collect();
        for k in &stale {
            self.unbook(k);
        }
        let mut overcommitted = Vec::new();
        for placed in &droplet.deployments {
            let existing = self.bookings.get(&placed.key);
            let state = if placed.reported {
                BookingState::Reported
            } else {
                match existing {
                    // The ledger's own booking is newer than the recorded status.
                    Some(b) if !b.state.comes_from_snapshot() => continue,
                    _ => BookingState::Recorded,
                }
            };
            let unchanged = existing.is_some_and(|b| {
                b.droplet == key && b.request == placed.request && b.state == state
            });
            if !unchanged {
                self.book(&placed.key, &key, placed.request, state);
            }
        }
        self.refresh(&key);
        if let Some(book) = self.droplets.get(&key)
            && !book.used.fits_in(&book.allocatable)
        {
            overcommitted.extend(
                droplet
                    .deployments
                    .iter()
                    .filter(|p| p.reported)
                    .map(|p| p.key.clone()),
            );
        }
        overcommitted
    }

    /// Syncs every droplet of `snapshot` (see [`Ledger::sync_droplet`]) and aligns the
    /// ledger's usage with it; nothing happens when the snapshot was synced already.
    pub fn sync_snapshot(&mut self, snapshot: &Snapshot) {
        if self
            .aligned
            .as_ref()
            .is_some_and(|a| a.generation == snapshot.generation())
        {
            return;
        }
        self.aligned = None;
        for d in snapshot.droplets() {
            self.sync_droplet(d);
        }
        let mut index = HashMap::with_capacity(snapshot.droplets().len());
        let mut usage = Vec::with_capacity(snapshot.droplets().len());
        for i in 0..snapshot.droplets().len() {
            let key = snapshot.droplet_key(i);
            index.insert(key.to_string(), i);
            usage.push(self.droplets.get(key).map(|b| b.used).unwrap_or_default());
        }
        self.aligned = Some(AlignedUsage {
            generation: snapshot.generation(),
            index,
            usage,
        });
    }

    /// Drops a droplet and every booking on it; returns the deployments that lost their
    /// place.
    pub fn remove_droplet(&mut self, droplet: &str) -> Vec<String> {
        let lost: Vec<String> = self
            .droplets
            .get(droplet)
            .map(|b| b.deployments.iter().cloned().collect())
            .unwrap_or_default();
        for k in &lost {
            self.unbook(k);
        }
        self.droplets.remove(droplet);
        if let Some(aligned) = &mut self.aligned
            && let Some(&i) = aligned.index.get(droplet)
        {
            aligned.usage[i] = Resources::ZERO;
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
        if let Some(existing) = self.bookings.get(deployment) {
            if existing.droplet != droplet || existing.request != request {
                return Err(LedgerError::AlreadyPlaced {
                    deployment: deployment.to_string(),
                    droplet: existing.droplet.clone(),
                });
            }
            if let BookingState::Assumed { expires_at: old } = existing.state {
                self.expiries.remove(&(old, deployment.to_string()));
                self.expiries.insert((expires_at, deployment.to_string()));
                if let Some(b) = self.bookings.get_mut(deployment) {
                    b.state = BookingState::Assumed { expires_at };
                }
            }
            return Ok(());
        }
        let book = self
            .droplets
            .get(droplet)
            .ok_or_else(|| LedgerError::UnknownDroplet(droplet.to_string()))?;
        if let Some(resource) = book.used.plus(request).first_shortfall(&book.allocatable) {
            return Err(LedgerError::WouldOvercommit {
                droplet: droplet.to_string(),
                deployment: deployment.to_string(),
                resource,
            });
        }
        self.book(
            deployment,
            droplet,
            request,
            BookingState::Assumed { expires_at },
        );
        Ok(())
    }

    /// Marks a live booking as accepted by the agent, so it no longer expires. Fails if it
    /// expired or never existed. A reported booking stays reported.
    pub fn confirm(&mut self, deployment: &str, now: Timestamp) -> Result<(), LedgerError> {
        self.expire(now);
        let booking = self
            .bookings
            .get_mut(deployment)
            .ok_or_else(|| LedgerError::NoBooking(deployment.to_string()))?;
        if let BookingState::Assumed { expires_at } = booking.state {
            self.expiries.remove(&(expires_at, deployment.to_string()));
        }
        if booking.state != BookingState::Reported {
            booking.state = BookingState::Confirmed;
        }
        Ok(())
    }

    /// Removes a deployment's booking (deployment deleted, or the agent rejected it).
    pub fn forget(&mut self, deployment: &str) -> Option<Booking> {
        self.unbook(deployment)
    }

    /// Drops assumed bookings whose TTL has passed; returns their deployments.
    pub fn expire(&mut self, now: Timestamp) -> Vec<String> {
        let mut expired = Vec::new();
        while let Some((at, _)) = self.expiries.first()
            && *at <= now
        {
            if let Some((_, key)) = self.expiries.pop_first() {
                self.unbook(&key);
                expired.push(key);
            }
        }
        expired
    }

    /// What is booked on a droplet (unlisted usage, reports, recorded placements and live
    /// assumptions as of the last call that took `now`).
    pub fn used(&self, droplet: &str) -> Option<Resources> {
        self.droplets.get(droplet).map(|b| b.used)
    }

    /// Allocatable of a droplet as the ledger knows it.
    pub fn allocatable(&self, droplet: &str) -> Option<Resources> {
        self.droplets.get(droplet).map(|b| b.allocatable)
    }

    /// Usage the droplet reported that no booking accounts for.
    pub fn unlisted_usage(&self, droplet: &str) -> Option<Resources> {
        self.droplets.get(droplet).map(|b| b.unlisted)
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

    /// Usage aligned with `snapshot`'s droplets, syncing the snapshot first when it is new
    /// (see [`Ledger::sync_snapshot`]). Against the snapshot synced last this costs nothing:
    /// the aligned usage is kept current by every booking change.
    pub fn usage_for(&mut self, snapshot: &Snapshot) -> &[Resources] {
        self.sync_snapshot(snapshot);
        match &self.aligned {
            Some(a) => &a.usage,
            None => &[],
        }
    }

    /// Decides where `deployment` goes and books it in one step: expires stale assumptions,
    /// reconciles with the snapshot's reports, decides against the result and assumes the
    /// chosen droplet.
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
        let decision = choose_droplet(snapshot, usage, deployment);
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
    use crate::fixtures::{self, droplet, request};
    use crate::model::PlacedDeployment;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn ledger_with(d: &FleetDroplet) -> Ledger {
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
            reported: true,
            do_not_disrupt: false,
            pinned: false,
        });
        let l = ledger_with(&d);
        assert_eq!(
            l.booking("team-a/old").map(|b| b.state),
            Some(BookingState::Reported)
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

    fn placed(key: &str, mem_mib: u64, reported: bool) -> PlacedDeployment {
        PlacedDeployment {
            key: key.into(),
            request: request(mem_mib, 100),
            reported,
            do_not_disrupt: false,
            pinned: false,
        }
    }

    fn snapshot_of(droplets: Vec<FleetDroplet>) -> Snapshot {
        Snapshot::new(
            droplets,
            vec![fixtures::pool()],
            fixtures::test_sizes(),
            fixtures::test_regions(),
        )
        .unwrap()
    }

    fn usage_of(l: &mut Ledger, snap: &Snapshot, name: &str) -> Resources {
        let i = snap.droplet_position("team-a", name).unwrap();
        l.usage_for(snap)[i]
    }

    #[test]
    fn a_deployment_reported_on_b_but_booked_on_a_counts_on_b_only() {
        let mut l = Ledger::new(Duration::from_secs(60));
        let first = snapshot_of(vec![
            droplet("a", "s-2vcpu-4gb"),
            droplet("b", "s-2vcpu-4gb"),
        ]);
        l.usage_for(&first);
        l.assume("team-a/x", "team-a/a", request(1024, 100), t(0))
            .unwrap();
        // The agent of b reports x running there (it was started on b after all).
        let mut b = droplet("b", "s-2vcpu-4gb");
        b.deployments.push(placed("team-a/x", 1024, true));
        let second = snapshot_of(vec![droplet("a", "s-2vcpu-4gb"), b]);
        assert_eq!(usage_of(&mut l, &second, "b"), request(1024, 100));
        assert_eq!(usage_of(&mut l, &second, "a"), Resources::ZERO);
        assert_eq!(
            l.booking("team-a/x").map(|b| (b.droplet.as_str(), b.state)),
            Some(("team-a/b", BookingState::Reported))
        );
    }

    #[test]
    fn a_new_report_is_read_and_a_confirmed_assumption_counts_once() {
        let mut l = Ledger::new(Duration::from_secs(60));
        let first = snapshot_of(vec![droplet("a", "s-2vcpu-4gb")]);
        let x = PendingDeployment::new("team-a/x", request(1024, 100), fixtures::POOL);
        assert!(matches!(l.place(&first, &x, t(0)), Ok(Decision::Place(_))));
        // Later a reports x (the assumption, confirmed) and y (started before the ledger).
        let mut a = droplet("a", "s-2vcpu-4gb");
        a.deployments.push(placed("team-a/x", 1024, true));
        a.deployments.push(placed("team-a/y", 512, true));
        let second = snapshot_of(vec![a]);
        assert_eq!(usage_of(&mut l, &second, "a"), request(1536, 200));
        // Reported placements do not expire with the assumption's TTL.
        l.expire(t(120));
        assert_eq!(usage_of(&mut l, &second, "a"), request(1536, 200));
        // Once a stops reporting y, it no longer counts.
        let mut a = droplet("a", "s-2vcpu-4gb");
        a.deployments.push(placed("team-a/x", 1024, true));
        let third = snapshot_of(vec![a]);
        assert_eq!(usage_of(&mut l, &third, "a"), request(1024, 100));
    }

    #[test]
    fn assumed_placements_missing_from_reports_count_until_their_ttl() {
        let mut l = Ledger::new(Duration::from_secs(60));
        let snap = snapshot_of(vec![droplet("a", "s-2vcpu-4gb")]);
        let x = PendingDeployment::new("team-a/x", request(1024, 100), fixtures::POOL);
        assert!(matches!(l.place(&snap, &x, t(0)), Ok(Decision::Place(_))));
        // A fresh report that does not list x yet: x still counts.
        let fresh = snapshot_of(vec![droplet("a", "s-2vcpu-4gb")]);
        assert_eq!(usage_of(&mut l, &fresh, "a"), request(1024, 100));
        l.expire(t(60));
        assert_eq!(usage_of(&mut l, &fresh, "a"), Resources::ZERO);
    }

    #[test]
    fn recorded_placements_count_where_recorded_unless_the_ledger_booked_later() {
        let mut l = Ledger::new(Duration::from_secs(60));
        let mut a = droplet("a", "s-2vcpu-4gb");
        a.deployments.push(placed("team-a/old", 512, false));
        let snap = snapshot_of(vec![a, droplet("b", "s-2vcpu-4gb")]);
        assert_eq!(usage_of(&mut l, &snap, "a"), request(512, 100));
        assert_eq!(
            l.booking("team-a/old").map(|b| b.state),
            Some(BookingState::Recorded)
        );
        // The ledger's own (newer) booking of another deployment on b wins over a stale
        // recorded placement of it on a.
        l.assume("team-a/new", "team-a/b", request(256, 100), t(0))
            .unwrap();
        let mut a = droplet("a", "s-2vcpu-4gb");
        a.deployments.push(placed("team-a/old", 512, false));
        a.deployments.push(placed("team-a/new", 256, false));
        let next = snapshot_of(vec![a, droplet("b", "s-2vcpu-4gb")]);
        assert_eq!(usage_of(&mut l, &next, "a"), request(512, 100));
        assert_eq!(usage_of(&mut l, &next, "b"), request(256, 100));
    }
}
