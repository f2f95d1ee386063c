//! The scheduler: pure decisions about where MCP servers run, which droplets to buy and
//! which to consolidate. No I/O, no clock: a [`Snapshot`] and `now` in, decisions out.
//!
//! Names are chosen so a reader never needs the path: [`FleetDroplet`] (a droplet as the
//! scheduler sees it), [`SizeOffer`] (a size that can be bought), [`choose_droplet`] (filter
//! and score), [`sizing`] and [`packing`] (what to buy). See docs/scheduler.md for the
//! scoring formulas and the algorithms.

pub mod analysis;
pub mod consolidate;
pub mod cost_step;
pub mod cron;
pub mod exact;
#[cfg(any(test, feature = "testing"))]
pub mod fixtures;
pub mod ledger;
pub mod model;
pub mod packing;
pub mod score;
pub mod sizing;
pub mod snapshot;

pub use analysis::{PackingSummary, fractional_cost_lower_bound, summarize};
pub use consolidate::{ConsolidationAction, ConsolidationPlan, plan_consolidation};
pub use ledger::{Ledger, LedgerError, SharedLedger};
pub use model::*;
pub use packing::{
    BatchPlan, Blocker, NewDroplet, PackingObjective, PlannedPlacement, Target, Unschedulable,
    plan_batch, plan_batch_for,
};
pub use score::{
    Candidate, Decision, FactorScores, NoFit, Placement, Rejections, choose_droplet,
    score_new_droplet,
};
pub use sizing::cheapest_size_that_fits;
pub use snapshot::Snapshot;

/// Everything that can go wrong in the scheduler.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchedulerError {
    /// Two pools share a name.
    #[error("pool {0} is defined twice")]
    DuplicatePool(String),
    /// Two droplets share a namespace and name.
    #[error("droplet {0} is defined twice")]
    DuplicateDroplet(String),
    /// A pool setting is out of range.
    #[error("pool {pool}: {problem}")]
    InvalidPool {
        /// Pool name.
        pool: String,
        /// What is wrong.
        problem: String,
    },
}
