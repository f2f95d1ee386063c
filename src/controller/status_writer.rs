//! Writes: server-side apply with the operator's one field manager. Status is computed in full
//! each pass and applied only when it differs from what the object already has, so a converged
//! object is never rewritten (GitOps tools see no churn).

use std::fmt::Debug;

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Error, FIELD_MANAGER};

/// Server-side apply parameters of every write the operator makes.
pub fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// The field manager that owns only the operator's finalizers (a separate manager, so applying
/// the finalizer alone never drops fields the main manager applied, e.g. a Droplet's spec).
pub const FINALIZER_MANAGER: &str = "mcp-droplet-operator-finalizer";

/// Makes sure `object` carries `finalizer`, returning the object as the server now has it.
///
/// kube-runtime's `finalizer` helper adds it with a JSON patch that tests the cached list and
/// then ends the pass; when the cache lags (a burst), every trigger until the watch catches up
/// fails that test, and the object waits a watch round trip before its first real pass. A
/// server-side apply of the finalizer alone is idempotent and needs no fresh cache, and the
/// pass continues with the object the server returned.
pub async fn ensure_finalizer<K>(
    api: &Api<K>,
    object: std::sync::Arc<K>,
    finalizer: &str,
) -> Result<std::sync::Arc<K>, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let meta = object.meta();
    if meta.deletion_timestamp.is_some()
        || meta
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|x| x == finalizer))
    {
        return Ok(object);
    }
    let name = meta
        .name
        .as_deref()
        .ok_or(Error::MissingObjectKey("metadata.name"))?;
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"name": name, "finalizers": [finalizer]},
    });
    let written = api
        .patch(
            name,
            &PatchParams::apply(FINALIZER_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await?;
    Ok(std::sync::Arc::new(written))
}

/// Whether `desired` differs from `current` as JSON (what the API server would store).
pub fn status_changed<S: Serialize>(current: Option<&S>, desired: &S) -> Result<bool, Error> {
    let Some(current) = current else {
        return Ok(true);
    };
    Ok(serde_json::to_value(current)? != serde_json::to_value(desired)?)
}

/// Applies `desired` as the whole status of `object` when it differs from `current`; returns
/// whether a write was made.
pub async fn apply_status<K, S>(
    api: &Api<K>,
    object: &K,
    current: Option<&S>,
    desired: &S,
) -> Result<bool, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize,
{
    if !status_changed(current, desired)? {
        return Ok(false);
    }
    let name = object
        .meta()
        .name
        .as_deref()
        .ok_or(Error::MissingObjectKey("metadata.name"))?;
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": desired,
    });
    api.patch_status(name, &apply_params(), &Patch::Apply(body))
        .await?;
    Ok(true)
}

/// Server-side applies a whole object (children: Secrets, Droplets) under the field manager.
pub async fn apply_object<K>(api: &Api<K>, object: &K) -> Result<K, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    let name = object
        .meta()
        .name
        .as_deref()
        .ok_or(Error::MissingObjectKey("metadata.name"))?;
    Ok(api
        .patch(name, &apply_params(), &Patch::Apply(object))
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::droplet::{DropletPhase, DropletStatus};

    #[test]
    fn equal_status_is_not_a_change() {
        let a = DropletStatus {
            phase: DropletPhase::Ready,
            ..Default::default()
        };
        assert!(!status_changed(Some(&a), &a.clone()).expect("serialises"));
        let b = DropletStatus {
            phase: DropletPhase::NotReady,
            ..Default::default()
        };
        assert!(status_changed(Some(&a), &b).expect("serialises"));
        assert!(status_changed(None, &a).expect("serialises"));
    }
}
