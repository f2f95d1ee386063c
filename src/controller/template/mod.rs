//! The MCPTemplate controller: observe (the image in its registry, through a cache so a
//! converged template is not re-checked every pass) → plan (pure: [`plan::plan`]) → apply the
//! status only when it changed → report events, and requeue for the next registry check.
//!
//! A template is `Accepted` unless a check fails or the registry says the image does not exist;
//! an unreachable registry only makes `ImageAvailable` Unknown (decision 0010).

pub mod plan;

use std::sync::Arc;

use super::Watched;
use kube::Api;
use kube::Resource;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use tokio_util::sync::CancellationToken;

use super::status_writer::apply_status;
use super::{Context, Error, PassTarget, backoff_action, drain, instrumented, object_key};
use crate::api::image_reference::ImageReference;
use crate::api::template::MCPTemplate;
use crate::image_check::{ImageCheckCache, ImageCheckSettings, ImageChecker, RecheckPolicy};
use plan::{ImageObservation, plan};

/// The controller's name in metrics and logs.
pub const NAME: &str = "mcptemplate";

/// The shared context plus what only this controller keeps: the registry client and the last
/// answer per image.
#[derive(Debug)]
pub struct TemplateContext {
    /// The operator's shared context.
    pub ctx: Arc<Context>,
    /// The registry client; `None` when checks are off.
    pub checker: Option<ImageChecker>,
    /// The last registry answer per image.
    pub cache: ImageCheckCache,
}

impl TemplateContext {
    /// Builds the client from the context's settings; a client that cannot be built is logged
    /// and leaves checks off (the templates then say so in `ImageAvailable`).
    pub fn new(ctx: Arc<Context>) -> Self {
        let checker = match &ctx.config.image_check {
            ImageCheckSettings::Off => None,
            ImageCheckSettings::Registry(config) => match ImageChecker::new(config.clone()) {
                Ok(checker) => Some(checker),
                Err(error) => {
                    tracing::error!(%error, "registry checks are off: the client cannot be built");
                    None
                }
            },
        };
        let recheck = ctx.config.timings.template_recheck_interval;
        let policy = RecheckPolicy {
            found: recheck,
            missing: recheck.min(RecheckPolicy::default().missing),
            unknown: recheck.min(RecheckPolicy::default().unknown),
        };
        Self {
            ctx,
            checker,
            cache: ImageCheckCache::new(policy),
        }
    }

    /// What the registry says about `image` (from the cache while its answer stands).
    async fn observe_image(
        &self,
        image: Option<ImageReference>,
        now: jiff::Timestamp,
    ) -> ImageObservation {
        let Some(image) = image else {
            return ImageObservation::NotChecked;
        };
        let Some(checker) = &self.checker else {
            return ImageObservation::Disabled;
        };
        if let Some(fresh) = self.cache.fresh(&image, now) {
            return ImageObservation::Checked(fresh);
        }
        let check = checker.check(&image).await;
        tracing::info!(image = %image, result = check.metric_label(), "checked the image in its registry");
        ImageObservation::Checked(self.cache.record(&image, check, self.ctx.now()))
    }
}

async fn reconcile(object: Arc<MCPTemplate>, tc: Arc<TemplateContext>) -> Result<Action, Error> {
    let ctx = &tc.ctx;
    let key = object_key(object.as_ref());
    instrumented(NAME, ctx, PassTarget::of(object.as_ref()), async {
        let now = ctx.now();
        let image = ImageReference::parse(&object.spec.image).ok();
        let observed = tc.observe_image(image, now).await;
        let planned = plan(&object, &observed, ctx.config.timings.resync_interval, now);
        let api: Api<MCPTemplate> = Api::all(ctx.client.clone());
        if apply_status(
            &api,
            object.as_ref(),
            object.status.as_ref(),
            &planned.status,
        )
        .await?
        {
            ctx.metrics.status_written(NAME);
        }
        let reference = object.object_ref(&());
        for event in planned.events {
            let published = ctx
                .recorder
                .publish(
                    &Event {
                        type_: if event.warning {
                            EventType::Warning
                        } else {
                            EventType::Normal
                        },
                        reason: event.reason,
                        note: Some(event.note),
                        action: "Validate".to_string(),
                        secondary: None,
                    },
                    &reference,
                )
                .await;
            // The status already says it; a lost event is not worth a failed pass.
            if let Err(error) = published {
                tracing::warn!(object = %key, %error, "event not recorded");
            }
        }
        Ok(ctx.requeue(planned.requeue_after))
    })
    .await
}

fn error_policy(object: Arc<MCPTemplate>, error: &Error, tc: Arc<TemplateContext>) -> Action {
    backoff_action(&tc.ctx, NAME, object_key(object.as_ref()), error)
}

/// Runs the controller until `shutdown`.
pub async fn run(controller: Watched<MCPTemplate>, ctx: Arc<Context>, shutdown: CancellationToken) {
    let tc = Arc::new(TemplateContext::new(ctx));
    let stream = controller.run(reconcile, error_policy, tc, shutdown);
    drain(NAME, stream).await;
}
