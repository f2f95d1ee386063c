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
