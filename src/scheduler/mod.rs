//! The scheduler: pure decisions about where MCP servers run, which droplets to buy and
//! which to consolidate. No I/O, no clock: a [`Snapshot`] and `now` in, decisions out.
//!
//! See docs/scheduler.md for the scoring formulas and the algorithms.

pub mod consolidate;
pub mod cron;
pub mod exact;
pub mod fixtures;
pub mod ledger;
pub mod model;
pub mod provision;
pub mod score;
pub mod snapshot;

pub use consolidate::{ConsolidationAction, ConsolidationPlan, plan_consolidation};
pub use ledger::{Ledger, LedgerError, SharedLedger};
pub use model::*;
pub use provision::{
    BatchPlan, Blocker, NewDroplet, PackingSummary, PlannedPlacement, Target, Unschedulable,
    cheapest_size_that_fits, plan_batch, summarize,
};
pub use score::{
    Candidate, Decision, FactorScores, NoFit, Placement, Rejections, decide, score_new_droplet,
};
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
