//! A controller assembled from kube-runtime's stable parts (`watcher`, `reflector`, `applier`)
//! instead of its `Controller` builder, so every object is trimmed before the cache stores it.
//!
//! What is trimmed is what no controller reads and what weighs most per object:
//! `metadata.managedFields` (one entry per field manager, each a JSON tree of the fields it
//! owns: often larger than the spec and status together) and kubectl's client-side
//! `last-applied-configuration` annotation (a second copy of the whole object). The operator
//! never writes a cached object back (every write is a server-side apply or a merge patch of
//! its own fields), so nothing trimmed can be lost. `Controller::for_stream`, the builder's way
//! to the same end, needs kube's unstable runtime features (decision 0025).
//!
//! Behaviour matches `Controller::run`: one reflector per kind shared by every reader of the
//! store, triggers from the kind itself and from related kinds' watches, a shared backoff on
//! watch errors, each pass spawned as its own task (a panicking pass does not stop the
//! controller), and a graceful stop that ends the queue and lets passes under way finish.

use std::fmt::Debug;
use std::sync::Arc;

use futures::stream::{self, BoxStream, SelectAll};
use futures::{Stream, StreamExt, TryFuture, TryFutureExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::controller::{
    Action, ReconcileReason, ReconcileRequest, applier, trigger_self, trigger_with,
};
use kube::runtime::reflector::{ObjectRef, Store, reflector, store::Writer};
use kube::runtime::utils::{CancelableJoinHandle, StreamBackoff};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{controller_config, watch_config};

/// kubectl's client-side apply annotation: the whole object once more.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what no controller reads from an object before it is cached or mapped.
pub fn trim<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED_ANNOTATION);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

type Triggers<K> = SelectAll<BoxStream<'static, Result<ReconcileRequest<K>, watcher::Error>>>;

/// The cache of one kind and what wakes its controller.
pub struct Watched<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    triggers: Triggers<K>,
}

impl<K> Watched<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    /// Watches `api` into a trimmed cache; every change of an object wakes its controller.
    pub fn new(api: Api<K>) -> Self {
        let writer: Writer<K> = Writer::default();
        let store = writer.as_reader();
        let objects =
            reflector(writer, watcher(api, watch_config()).modify(trim::<K>)).applied_objects();
        let mut triggers = SelectAll::new();
        triggers.push(trigger_self(objects, ()).boxed());
        Self { store, triggers }
    }

    /// The shared cache (filled as soon as the controller runs).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Also wakes the objects `mapper` names whenever an object of `api` changes (no cache is
    /// kept of `api`'s objects).
    #[must_use]
    pub fn watches<Other, I>(
        mut self,
        api: Api<Other>,
        mapper: impl Fn(Other) -> I + Send + Sync + 'static,
    ) -> Self
    where
        Other: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = ObjectRef<K>> + 'static,
        I::IntoIter: Send,
    {
        let changed = watcher(api, watch_config())
            .modify(trim::<Other>)
            .touched_objects();
        let requests = trigger_with(changed, move |other: Other| {
            let related = ObjectRef::from_obj(&other).erase();
            mapper(other)
                .into_iter()
                .map(move |obj_ref| ReconcileRequest {
                    obj_ref,
                    reason: ReconcileReason::RelatedObjectUpdated {
                        obj_ref: Box::new(related.clone()),
                    },
                })
        });
        self.triggers.push(requests.boxed());
        self
    }

    /// Also wakes every cached object whenever `trigger` yields.
    #[must_use]
    pub fn reconcile_all_on(mut self, trigger: impl Stream<Item = ()> + Send + 'static) -> Self {
        let store = self.store.clone();
        self.triggers.push(
            trigger
                .flat_map(move |()| {
                    stream::iter(store.state().into_iter().map(|object| {
                        Ok(ReconcileRequest {
                            obj_ref: ObjectRef::from_obj(object.as_ref()),
                            reason: ReconcileReason::BulkReconcile,
                        })
                    }))
                })
                .boxed(),
        );
        self
    }

    /// Runs `reconcile` for every woken object (at most `MAX_CONCURRENT_PASSES` at once)
    /// until `shutdown`; then passes under way finish and the stream ends.
    pub fn run<Ctx, Fut>(
        self,
        mut reconcile: impl FnMut(Arc<K>, Arc<Ctx>) -> Fut,
        error_policy: impl Fn(Arc<K>, &Fut::Error, Arc<Ctx>) -> Action,
        ctx: Arc<Ctx>,
        shutdown: CancellationToken,
    ) -> impl Stream<
        Item = Result<
            (ObjectRef<K>, Action),
            kube::runtime::controller::Error<Fut::Error, watcher::Error>,
        >,
    >
    where
        Fut: TryFuture<Ok = Action> + Send + 'static,
        Fut::Error: std::error::Error + Send + 'static,
    {
        let queue = StreamBackoff::new(self.triggers, watcher::DefaultBackoff::default())
            .take_until(shutdown.cancelled_owned());
        applier(
            move |object, ctx| {
                // Called inside the applier's "reconciling object" span: the pass keeps it.
                CancelableJoinHandle::spawn(
                    TryFutureExt::into_future(reconcile(object, ctx)).in_current_span(),
                    &tokio::runtime::Handle::current(),
                )
            },
            error_policy,
            ctx,
            self.store,
            queue,
            controller_config(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::deployment::MCPDeployment;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    #[test]
    fn trimming_drops_managed_fields_and_the_last_applied_copy_only() {
        let mut d = MCPDeployment::test("a").namespace("team").build();
        d.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some("kubectl".into()),
            ..Default::default()
        }]);
        d.metadata.annotations = Some(
            [
                (LAST_APPLIED_ANNOTATION.to_string(), "{}".to_string()),
                ("team".to_string(), "tools".to_string()),
            ]
            .into(),
        );
        trim(&mut d);
        assert_eq!(d.metadata.managed_fields, None);
        assert_eq!(
            d.metadata.annotations,
            Some([("team".to_string(), "tools".to_string())].into())
        );
        let mut only_last_applied = MCPDeployment::test("b").namespace("team").build();
        only_last_applied.metadata.annotations =
            Some([(LAST_APPLIED_ANNOTATION.to_string(), "{}".to_string())].into());
        trim(&mut only_last_applied);
        assert_eq!(only_last_applied.metadata.annotations, None);
    }
}
