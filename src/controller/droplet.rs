//! The Droplet controller (placeholder: the reconciler lands with its own change; this wires the
//! watch, metrics and error policy every controller shares).

use std::sync::{Arc, LazyLock};

use kube::runtime::Controller;
use kube::runtime::controller::Action;
use tokio_util::sync::CancellationToken;

use super::{Context, Error, FailureCounts, backoff_action, drain, instrumented, object_key};
use crate::api::droplet::Droplet;

/// The controller's name in metrics and logs.
pub const NAME: &str = "droplet";

static FAILURES: LazyLock<FailureCounts<String>> = LazyLock::new(FailureCounts::default);

async fn reconcile(object: Arc<Droplet>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = object_key(object.as_ref());
    instrumented(NAME, &ctx, &FAILURES, key, async {
        Ok(Action::await_change())
    })
    .await
}

fn error_policy(object: Arc<Droplet>, error: &Error, ctx: Arc<Context>) -> Action {
    backoff_action(&ctx, &FAILURES, &object_key(object.as_ref()), error)
}

/// Runs the controller until `shutdown`.
pub async fn run(controller: Controller<Droplet>, ctx: Arc<Context>, shutdown: CancellationToken) {
    let stream = controller
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, ctx);
    drain(NAME, stream).await;
}
