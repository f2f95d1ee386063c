//! The DropletPool controller (placeholder: the reconciler lands with its own change; this wires
//! the watch, the demand signal, metrics and the error policy).

use std::sync::{Arc, LazyLock};

use futures::StreamExt;
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use super::{Context, Error, FailureCounts, backoff_action, drain, instrumented, object_key};
use crate::api::pool::DropletPool;

/// The controller's name in metrics and logs.
pub const NAME: &str = "dropletpool";

static FAILURES: LazyLock<FailureCounts<String>> = LazyLock::new(FailureCounts::default);

async fn reconcile(object: Arc<DropletPool>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = object_key(object.as_ref());
    instrumented(NAME, &ctx, &FAILURES, key, async {
        Ok(Action::await_change())
    })
    .await
}

fn error_policy(object: Arc<DropletPool>, error: &Error, ctx: Arc<Context>) -> Action {
    backoff_action(&ctx, &FAILURES, &object_key(object.as_ref()), error)
}

/// Runs the controller until `shutdown`; every demand signal reconciles all pools.
pub async fn run(
    controller: Controller<DropletPool>,
    demand: UnboundedReceiver<()>,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
) {
    let demand = tokio_stream::wrappers::UnboundedReceiverStream::new(demand);
    let stream = controller
        .reconcile_all_on(demand.map(|()| ()))
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, ctx);
    drain(NAME, stream).await;
}
