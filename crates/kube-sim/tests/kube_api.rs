//! Scenarios through kube-rs `kube::Api` against kube-sim (or a real cluster when
//! `MCP_E2E_KUBECONFIG` is set).

mod common;

use common::{TestEnv, eventually, obj, unique};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, PropagationPolicy,
    WatchEvent, WatchParams,
};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .expect("cm")
}

fn api_err(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn crud_list_selectors_and_conflicts() {
    let mut env = TestEnv::start().await;
    let ns = env.namespace("crud").await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &ns);
    let pp = PostParams::default();
    api.create(&pp, &cm("a", json!({"app": "web", "tier": "front"})))
        .await
        .unwrap();
    api.create(&pp, &cm("b", json!({"app": "api"})))
        .await
        .unwrap();
    api.create(&pp, &cm("c", json!({"app": "web", "tier": "back"})))
        .await
        .unwrap();
    let dup = api_err(api.create(&pp, &cm("a", json!({}))).await.unwrap_err());
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));

    let names = |l: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        let mut v: Vec<String> = l
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        v.sort();
        v
    };
    enum Selector {
        Labels,
        Fields,
    }
    let cases: [(Selector, &str, &[&str]); 5] = [
        (Selector::Labels, "app=web", &["a", "c"][..]),
        (
            Selector::Labels,
            "app in (web,api),tier!=back",
            &["a", "b"][..],
        ),
        // Every namespace holds the published `kube-root-ca.crt`, which has no labels.
        (Selector::Labels, "!tier", &["b", "kube-root-ca.crt"][..]),
        (Selector::Labels, "tier,app notin (api)", &["a", "c"][..]),
        (Selector::Fields, "metadata.name=b", &["b"][..]),
    ];
    for (kind, selector, expected) in cases {
        let params = match kind {
            Selector::Labels => ListParams::default().labels(selector),
            Selector::Fields => ListParams::default().fields(selector),
        };
        assert_eq!(
            names(api.list(&params).await.unwrap()),
            expected,
            "{selector}"
        );
    }

    // Pagination with limit/continue returns every object exactly once (a, b, c and the
    // root CA ConfigMap).
    let first = api.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(first.items.len(), 3);
    let token = first.metadata.continue_.clone().expect("continue token");
    let second = api
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(second.items.len(), 1);
    assert!(
        second
            .metadata
            .continue_
            .as_deref()
            .unwrap_or("")
            .is_empty()
    );

    // Update with a stale resourceVersion is a 409 Conflict.
    let a = api.get("a").await.unwrap();
    let mut newer = a.clone();
    newer.data = Some([("k".to_string(), "v2".to_string())].into());
    let updated = api.replace("a", &pp, &newer).await.unwrap();
    assert_ne!(
        updated.metadata.resource_version,
        a.metadata.resource_version
    );
    let stale = api_err(api.replace("a", &pp, &a).await.unwrap_err());
    assert_eq!((stale.code, stale.reason.as_str()), (409, "Conflict"));

    // Merge, JSON and strategic patches.
    api.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "1"}})),
    )
    .await
    .unwrap();
    api.patch(
        "b",
        &PatchParams::default(),
        &Patch::<()>::Json(
            serde_json::from_value(json!([{"op": "add", "path": "/data/y", "value": "2"}]))
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    let b = api
        .patch(
            "b",
            &PatchParams::default(),
            &Patch::Strategic(json!({"data": {"k": null}})),
        )
        .await
        .unwrap();
    let data = b.data.unwrap();
    assert_eq!(data.get("x").map(String::as_str), Some("1"));
    assert_eq!(data.get("y").map(String::as_str), Some("2"));
    assert!(!data.contains_key("k"));

    // Delete with a failing precondition is refused; a plain delete removes the object.
    let wrong = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("not-the-uid".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    assert_eq!(
        api_err(api.delete("b", &wrong).await.unwrap_err()).code,
        409
    );
    api.delete("b", &DeleteParams::default()).await.unwrap();
    let gone = api_err(api.get("b").await.unwrap_err());
    assert_eq!((gone.code, gone.reason.as_str()), (404, "NotFound"));

    // deletecollection with a selector.
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("app=web"),
    )
    .await
    .unwrap();
    eventually("collection deleted", WAIT, || {
        let api = api.clone();
        async move {
            api.list(&ListParams::default().labels("app=web"))
                .await
                .ok()
                .filter(|l| l.items.is_empty())
                .map(|_| ())
        }
    })
    .await;
    env.cleanup().await;
}

#[tokio::test]
async fn generate_name_generation_and_status_subresource() {
    let mut env = TestEnv::start().await;
    let ns = env.namespace("gen").await;
    let ar = env.install_widget_crd().await;
    let api: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &ns, &ar);
    let created = api
        .create(
            &PostParams::default(),
            &obj(json!({"apiVersion": "sim.example.io/v1", "kind": "Widget",
                "metadata": {"generateName": "w-"}, "spec": {"size": "small"},
                "status": {"observedGeneration": 99}})),
        )
        .await
        .unwrap();
    let name = created.metadata.name.clone().unwrap();
    assert!(
        name.starts_with("w-") && name.len() == 7,
        "generated name {name}"
    );
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    // Defaults applied; status dropped on create when the status subresource is on.
    assert_eq!(created.data["spec"]["replicas"], 1);
    assert!(created.data.get("status").is_none());

    // selectableFields from the CRD work in field selectors (Kubernetes 1.30+).
    if common::requires_version(&env.client, (1, 30), "selectableFields field selectors").await {
        let small = api
            .list(&ListParams::default().fields("spec.size=small"))
            .await
            .unwrap();
        assert_eq!(small.items.len(), 1);
        assert!(
            api.list(&ListParams::default().fields("spec.size=large"))
                .await
                .unwrap()
                .items
                .is_empty()
        );
    }
    let err = api_err(
        api.list(&ListParams::default().fields("spec.replicas=1"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400);

    let pp = PatchParams::default();
    let labelled = api
        .patch(
            &name,
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        labelled.metadata.generation,
        Some(1),
        "metadata changes keep generation"
    );
    let respec = api
        .patch(&name, &pp, &Patch::Merge(json!({"spec": {"replicas": 3}})))
        .await
        .unwrap();
    assert_eq!(
        respec.metadata.generation,
        Some(2),
        "spec changes bump generation"
    );

    // Status changes through the main resource are ignored; through /status they land.
    let ignored = api
        .patch(
            &name,
            &pp,
            &Patch::Merge(json!({"status": {"observedGeneration": 2}})),
        )
        .await
        .unwrap();
    assert!(ignored.data.get("status").is_none());
    let st = api
        .patch_status(
            &name,
            &pp,
            &Patch::Merge(json!({"status": {"observedGeneration": 2}, "spec": {"replicas": 9}})),
        )
        .await
        .unwrap();
    assert_eq!(st.data["status"]["observedGeneration"], 2);
    assert_eq!(
        st.data["spec"]["replicas"], 3,
        "spec changes are ignored on /status"
    );
    assert_eq!(st.metadata.generation, Some(2));
    env.cleanup().await;
}

#[tokio::test]
async fn watch_resumes_from_a_version_and_reports_410() {
    let config = kube_sim::Config {
        history_limit: 8,
        ..Default::default()
    };
    let mut env = TestEnv::start_with(config).await;
    let ns = env.namespace("watch").await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &ns);
    api.create(&PostParams::default(), &cm("one", json!({})))
        .await
        .unwrap();
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    api.create(&PostParams::default(), &cm("two", json!({})))
        .await
        .unwrap();
    api.patch(
        "one",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "changed"}})),
    )
    .await
    .unwrap();

    let mut stream = api
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match stream
            .try_next()
            .await
            .unwrap()
            .expect("stream ended early")
        {
            WatchEvent::Added(o) => seen.push(format!("ADDED {}", o.metadata.name.unwrap())),
            WatchEvent::Modified(o) => seen.push(format!("MODIFIED {}", o.metadata.name.unwrap())),
            WatchEvent::Bookmark(_) => {}
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(seen, ["ADDED two", "MODIFIED one"]);

    // Push the first version out of the kept history, then resuming from it is 410 Gone.
    if env.is_sim() {
        for i in 0..10 {
            api.create(
                &PostParams::default(),
                &cm(&format!("filler-{i}"), json!({})),
            )
            .await
            .unwrap();
        }
    }
    let old = if env.is_sim() { rv } else { "1".to_string() };
    // Servers report this in the stream (an ERROR event); accept a plain 410 answer too.
    match api.watch(&WatchParams::default().timeout(10), &old).await {
        Ok(stream) => match stream.boxed().try_next().await.unwrap() {
            Some(WatchEvent::Error(e)) => {
                assert_eq!(e.code, 410);
                assert_eq!(e.reason, "Expired");
            }
            other => panic!("expected 410 Gone, got {other:?}"),
        },
        Err(e) => assert_eq!(api_err(e).code, 410),
    }
    env.cleanup().await;
}

#[tokio::test]
async fn watcher_and_reflector_follow_changes() {
    reflector_scenario(watcher::Config::default()).await;
}

#[tokio::test]
async fn watcher_with_streaming_lists() {
    if let Some(path) = common::real_cluster() {
        let env = TestEnv::start().await;
        let supported =
            common::requires_version(&env.client, (1, 32), "streaming lists (WatchList)").await
                && serves_streaming_lists(&env.client).await;
        env.cleanup().await;
        if !supported {
            return;
        }
        println!("streaming lists against {}", path.display());
    }
    reflector_scenario(watcher::Config::default().streaming_lists()).await;
}

/// Whether the server answers a `sendInitialEvents` watch with the end-of-initial-events
/// bookmark; a server with the WatchList feature off (as some 1.33+ builds are) ignores it.
async fn serves_streaming_lists(client: &kube::Client) -> bool {
    let request = http::Request::get(
        "/api/v1/namespaces/default/configmaps?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=3",
    )
    .body(Vec::new())
    .expect("request");
    let served = client
        .request_text(request)
        .await
        .is_ok_and(|body| body.contains("k8s.io/initial-events-end"));
    if !served {
        let (major, minor) = common::server_version(client).await;
        println!(
            "skipped for Kubernetes {major}.{minor}: the server does not serve streaming lists (WatchList off)"
        );
    }
    served
}

async fn reflector_scenario(config: watcher::Config) {
    let mut env = TestEnv::start().await;
    let ns = env.namespace("refl").await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &ns);
    api.create(&PostParams::default(), &cm("before", json!({"app": "r"})))
        .await
        .unwrap();
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = watcher(api.clone(), config.labels("app=r"))
        .default_backoff()
        .reflect(writer)
        .applied_objects();
    let task = tokio::spawn(async move {
        let mut s = std::pin::pin!(stream);
        while s.next().await.is_some() {}
    });
    tokio::time::timeout(WAIT, reader.wait_until_ready())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reader.len(), 1);
    api.create(&PostParams::default(), &cm("after", json!({"app": "r"})))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("other", json!({"app": "x"})))
        .await
        .unwrap();
    eventually("reflector sees the new object", WAIT, || {
        let n = reader.len();
        async move { (n == 2).then_some(()) }
    })
    .await;
    // Relabelling out of the selector looks like a deletion to the watcher.
    api.patch(
        "before",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "gone"}}})),
    )
    .await
    .unwrap();
    api.delete("after", &DeleteParams::default()).await.unwrap();
    eventually("reflector drops objects", WAIT, || {
        let n = reader.len();
        async move { (n == 0).then_some(()) }
    })
    .await;
    task.abort();
    env.cleanup().await;
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let mut env = TestEnv::start().await;
    let ns = env.namespace("fin").await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &ns);
    let mut c = cm("held", json!({}));
    c.metadata.finalizers = Some(vec!["sim.example.io/hold".into()]);
    api.create(&PostParams::default(), &c).await.unwrap();
    api.delete("held", &DeleteParams::default()).await.unwrap();
    let still = api.get("held").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually("object removed after its finalizer", WAIT, || {
        let api = api.clone();
        async move {
            api.get_opt("held")
                .await
                .ok()
                .flatten()
                .is_none()
                .then_some(())
        }
    })
    .await;
    env.cleanup().await;
}

async fn owned_pair(api: &Api<ConfigMap>, owner: &str, deps: &[&str], block: bool) -> String {
    let o = api
        .create(&PostParams::default(), &cm(owner, json!({})))
        .await
        .unwrap();
    let uid = o.metadata.uid.clone().unwrap();
    for d in deps {
        let mut c = cm(d, json!({}));
        c.metadata.owner_references = Some(vec![serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap", "name": owner, "uid": uid, "blockOwnerDeletion": block
        }))
        .unwrap()]);
        api.create(&PostParams::default(), &c).await.unwrap();
    }
    uid
}

#[tokio::test]
async fn garbage_collection_background_foreground_orphan() {
    let mut env = TestEnv::start().await;
    let ns = env.namespace("gc").await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &ns);
    let absent = |api: &Api<ConfigMap>, name: &'static str| {
        let api = api.clone();
        async move {
            api.get_opt(name)
                .await
                .ok()
                .flatten()
                .is_none()
                .then_some(())
        }
    };

    owned_pair(&api, "bg-owner", &["bg-dep1", "bg-dep2"], false).await;
    api.delete("bg-owner", &DeleteParams::background())
        .await
        .unwrap();
    eventually("background dependents collected", WAIT, || {
        absent(&api, "bg-dep1")
    })
    .await;
    eventually("background dependents collected", WAIT, || {
        absent(&api, "bg-dep2")
    })
    .await;

    owned_pair(&api, "fg-owner", &["fg-dep"], true).await;
    let mut held = cm("fg-dep-held", json!({}));
    let owner = api.get("fg-owner").await.unwrap();
    held.metadata.owner_references = Some(vec![serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "name": "fg-owner", "uid": owner.metadata.uid, "blockOwnerDeletion": true
    }))
    .unwrap()]);
    held.metadata.finalizers = Some(vec!["sim.example.io/hold".into()]);
    api.create(&PostParams::default(), &held).await.unwrap();
    api.delete("fg-owner", &DeleteParams::foreground())
        .await
        .unwrap();
    eventually(
        "foreground dependent without finalizer collected",
        WAIT,
        || absent(&api, "fg-dep"),
    )
    .await;
    let owner_now = api.get("fg-owner").await.unwrap();
    assert!(
        owner_now.metadata.deletion_timestamp.is_some(),
        "owner waits for the blocking dependent"
    );
    assert!(
        owner_now
            .finalizers()
            .iter()
            .any(|f| f == "foregroundDeletion")
    );
    api.patch(
        "fg-dep-held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually("foreground owner removed", WAIT, || {
        absent(&api, "fg-owner")
    })
    .await;

    owned_pair(&api, "or-owner", &["or-dep"], false).await;
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..Default::default()
    };
    api.delete("or-owner", &dp).await.unwrap();
    eventually("orphan owner removed", WAIT, || absent(&api, "or-owner")).await;
    let orphan = eventually("orphan loses its owner reference", WAIT, || {
        let api = api.clone();
        async move {
            api.get("or-dep").await.ok().filter(|o| {
                o.metadata
                    .owner_references
                    .as_ref()
                    .is_none_or(Vec::is_empty)
            })
        }
    })
    .await;
    assert_eq!(orphan.metadata.name.as_deref(), Some("or-dep"));
    env.cleanup().await;
}

#[tokio::test]
async fn server_side_apply_conflicts_and_force() {
    let mut env = TestEnv::start().await;
    let ns = env.namespace("ssa").await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &ns);
    let body = |v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": {"owner": v}});
    api.patch(
        "shared",
        &PatchParams::apply("alice"),
        &Patch::Apply(body("alice")),
    )
    .await
    .unwrap();
    // Same value: co-ownership, no conflict.
    api.patch(
        "shared",
        &PatchParams::apply("bob"),
        &Patch::Apply(body("alice")),
    )
    .await
    .unwrap();
    api.patch(
        "shared",
        &PatchParams::apply("alice"),
        &Patch::Apply(body("alice2")),
    )
    .await
    .unwrap_err();
    let err = api_err(
        api.patch(
            "shared",
            &PatchParams::apply("carol"),
            &Patch::Apply(body("carol")),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    let causes = err.details.expect("details").causes;
    assert!(causes.iter().all(|c| c.reason == "FieldManagerConflict"));
    assert!(
        causes
            .iter()
            .any(|c| c.field == ".data.owner" && c.message.contains("\"alice\"")),
        "{causes:?}"
    );
    let forced = api
        .patch(
            "shared",
            &PatchParams::apply("carol").force(),
            &Patch::Apply(body("carol")),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["owner"], "carol");
    let managers: Vec<String> = forced
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"carol".to_string()));
    // A manager dropping a field it alone owns removes it.
    api.patch("shared", &PatchParams::apply("dave"), &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": {"extra": "1"}}))).await.unwrap();
    let dropped = api
        .patch(
            "shared",
            &PatchParams::apply("dave"),
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}}),
            ),
        )
        .await
        .unwrap();
    assert!(!dropped.data.unwrap_or_default().contains_key("extra"));
    env.cleanup().await;
}

#[tokio::test]
async fn schema_and_cel_validation_reject_like_the_real_server() {
    let mut env = TestEnv::start().await;
    let ns = env.namespace("cel").await;
    let ar = env.install_widget_crd().await;
    let api: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &ns, &ar);
    let widget = |name: &str, spec: serde_json::Value| {
        obj(
            json!({"apiVersion": "sim.example.io/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}),
        )
    };
    let pp = PostParams::default();

    let err = api_err(
        api.create(
            &pp,
            &widget("many", json!({"size": "small", "replicas": 20})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    common::assert_cel_message(
        &err.message,
        "Widget.sim.example.io \"many\" is invalid: spec: Invalid value: more than 10 replicas needs size large",
    );
    let causes = err.details.expect("details").causes;
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].field, "spec");
    assert_eq!(causes[0].reason, "FieldValueInvalid");

    let err = api_err(
        api.create(
            &pp,
            &widget("bad", json!({"size": "huge", "placement": {"region": "X"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    let fields: Vec<String> = err
        .details
        .unwrap()
        .causes
        .into_iter()
        .map(|c| c.field)
        .collect();
    assert!(
        fields.contains(&"spec.size".to_string())
            && fields.contains(&"spec.placement.region".to_string()),
        "{fields:?}"
    );
    let err = api_err(
        api.create(&pp, &widget("nosize", json!({})))
            .await
            .unwrap_err(),
    );
    assert!(
        err.message.contains("spec.size: Required value"),
        "{}",
        err.message
    );

    // Transition rule with oldSelf: a large widget cannot shrink.
    api.create(
        &pp,
        &widget("big", json!({"size": "large", "replicas": 20})),
    )
    .await
    .unwrap();
    let err = api_err(
        api.patch(
            "big",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": "small", "replicas": 1}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert!(
        common::without_cel_value_type(&err.message)
            .contains("spec.size: Invalid value: a large widget cannot shrink"),
        "{}",
        err.message
    );

    // Unknown fields: pruned by default, rejected with fieldValidation=Strict.
    let pruned = api
        .create(
            &pp,
            &widget(
                "pruned",
                json!({"size": "small", "bogus": 1, "extra": {"kept": true}}),
            ),
        )
        .await
        .unwrap();
    assert!(pruned.data["spec"].get("bogus").is_none());
    assert_eq!(pruned.data["spec"]["extra"]["kept"], true);
    let strict = PatchParams {
        field_validation: Some(kube::api::ValidationDirective::Strict),
        ..Default::default()
    };
    let err = api_err(
        api.patch(
            "pruned",
            &strict,
            &Patch::Merge(json!({"spec": {"bogus": 2}})),
        )
        .await
        .unwrap_err(),
    );
    // A strict merge patch with an unknown field: 400 BadRequest on kube-sim; 1.28 answers
    // 422 Invalid on the field `patch` with the same strict decoding error.
    if env.is_sim() {
        assert_eq!(err.code, 400, "{err:?}");
    } else {
        assert!(matches!(err.code, 400 | 422), "{err:?}");
    }
    assert!(
        err.message.contains("unknown field \"spec.bogus\""),
        "{}",
        err.message
    );
    env.cleanup().await;
}

#[tokio::test]
async fn namespace_deletion_removes_contents() {
    let env = TestEnv::start().await;
    let ns_name = unique("nsdel");
    let nsapi: Api<DynamicObject> = Api::all_with(env.client.clone(), &common::ns_resource());
    nsapi
        .create(
            &PostParams::default(),
            &obj(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns_name}})),
        )
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &ns_name);
    api.create(&PostParams::default(), &cm("inside", json!({})))
        .await
        .unwrap();
    nsapi
        .delete(&ns_name, &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "namespace and contents gone",
        Duration::from_secs(120),
        || {
            let nsapi = nsapi.clone();
            let n = ns_name.clone();
            async move {
                nsapi
                    .get_opt(&n)
                    .await
                    .ok()
                    .flatten()
                    .is_none()
                    .then_some(())
            }
        },
    )
    .await;
    assert!(api.get_opt("inside").await.ok().flatten().is_none());
    let err = api_err(
        api.create(&PostParams::default(), &cm("late", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 404);
    env.cleanup().await;
}

#[tokio::test]
async fn deleting_a_crd_removes_its_objects_and_kind() {
    if common::real_cluster().is_some() {
        println!("skipped on a real cluster: deleting a shared CRD would disturb other tests");
        return;
    }
    let mut env = TestEnv::start().await;
    let ns = env.namespace("crddel").await;
    let ar = env.install_widget_crd().await;
    let api: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &ns, &ar);
    api.create(&PostParams::default(), &obj(json!({"apiVersion": "sim.example.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": "small"}}))).await.unwrap();
    let crd_ar = kube::core::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
        ),
        "customresourcedefinitions",
    );
    let crds: Api<DynamicObject> = Api::all_with(env.client.clone(), &crd_ar);
    crds.delete("widgets.sim.example.io", &DeleteParams::default())
        .await
        .unwrap();
    eventually("CRD gone", WAIT, || {
        let crds = crds.clone();
        async move {
            crds.get_opt("widgets.sim.example.io")
                .await
                .ok()
                .flatten()
                .is_none()
                .then_some(())
        }
    })
    .await;
    let err = api_err(api.get("w").await.unwrap_err());
    assert_eq!(err.code, 404);
    assert!(
        kube::discovery::group(&env.client, "sim.example.io")
            .await
            .is_err()
    );
    env.cleanup().await;
}

#[tokio::test]
async fn bearer_token_is_required_when_configured() {
    if common::real_cluster().is_some() {
        println!("skipped on a real cluster: token handling is kube-sim configuration");
        return;
    }
    let sim = kube_sim::KubeSim::start(kube_sim::Config {
        token: Some(kube_sim::BearerToken::new("t0ken")),
        ..Default::default()
    })
    .await
    .unwrap();
    let url = sim.url();
    let status = |auth: Option<&str>| {
        let url = url.clone();
        let auth = auth.map(str::to_string);
        async move {
            let mut cfg = kube::Config::new(url.parse().unwrap());
            if let Some(a) = auth {
                cfg.auth_info.token = Some(a.into());
            }
            let client = kube::Client::try_from(cfg).unwrap();
            let api: Api<DynamicObject> = Api::all_with(client, &common::ns_resource());
            api.list(&ListParams::default())
                .await
                .map(|_| 200)
                .unwrap_or_else(|e| api_err(e).code)
        }
    };
    assert_eq!(status(None).await, 401);
    assert_eq!(status(Some("wrong")).await, 401);
    assert_eq!(status(Some("t0ken")).await, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn metadata_only_requests_and_bookmarks() {
    let config = kube_sim::Config {
        bookmark_interval: Duration::from_millis(200),
        ..Default::default()
    };
    let mut env = TestEnv::start_with(config).await;
    let ns = env.namespace("meta").await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &ns);
    api.create(&PostParams::default(), &cm("m", json!({"app": "m"})))
        .await
        .unwrap();
    let meta = api.get_metadata("m").await.unwrap();
    assert_eq!(meta.metadata.labels.unwrap()["app"], "m");
    let list = api.list_metadata(&ListParams::default()).await.unwrap();
    let mut names: Vec<String> = list.items.iter().map(|o| o.name_any()).collect();
    names.sort();
    assert_eq!(names, ["kube-root-ca.crt", "m"]);
    if !env.is_sim() {
        println!(
            "bookmark timing is only checked on kube-sim (real servers send them about once a minute)"
        );
        env.cleanup().await;
        return;
    }
    let rv = list.metadata.resource_version.unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    let bookmark = tokio::time::timeout(WAIT, async {
        loop {
            if let WatchEvent::Bookmark(b) = stream.try_next().await.unwrap().expect("stream ended")
            {
                return b;
            }
        }
    })
    .await
    .expect("a bookmark arrives");
    assert!(!bookmark.metadata.resource_version.is_empty());
    env.cleanup().await;
}

#[tokio::test]
async fn apply_with_a_stale_resource_version_conflicts() {
    let mut env = TestEnv::start().await;
    let ns = env.namespace("ssarv").await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &ns);
    let first = api
        .patch("x", &PatchParams::apply("m"), &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "1"}})))
        .await
        .unwrap();
    api.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"b": "2"}})),
    )
    .await
    .unwrap();
    let stale = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "x", "resourceVersion": first.metadata.resource_version}, "data": {"a": "3"}});
    let err = api_err(
        api.patch("x", &PatchParams::apply("m"), &Patch::Apply(stale))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    env.cleanup().await;
}

#[tokio::test]
async fn event_recorder_and_status_apply_like_a_controller() {
    use kube::runtime::events::{Event, EventType, Recorder};
    let mut env = TestEnv::start().await;
    let ns = env.namespace("ctrl").await;
    let ar = env.install_widget_crd().await;
    let widgets: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &ns, &ar);
    let w = widgets
        .create(&PostParams::default(), &obj(json!({"apiVersion": "sim.example.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": "small"}})))
        .await
        .unwrap();

    // Status written the way controllers do: server-side apply on /status with force.
    let status = json!({"apiVersion": "sim.example.io/v1", "kind": "Widget", "metadata": {"name": "w"},
        "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}});
    let applied = widgets
        .patch_status(
            "w",
            &PatchParams::apply("widget-controller").force(),
            &Patch::Apply(&status),
        )
        .await
        .unwrap();
    assert_eq!(applied.data["status"]["conditions"][0]["status"], "True");
    let entry = applied
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .find(|m| m.manager.as_deref() == Some("widget-controller"))
        .expect("status manager entry");
    assert_eq!(entry.subresource.as_deref(), Some("status"));
    assert_eq!(entry.operation.as_deref(), Some("Apply"));
    // Applying the same status again is a no-op: no new resourceVersion.
    let again = widgets
        .patch_status(
            "w",
            &PatchParams::apply("widget-controller").force(),
            &Patch::Apply(&status),
        )
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        applied.metadata.resource_version
    );

    let recorder = Recorder::new(env.client.clone(), "widget-controller".into());
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("sim.example.io/v1".into()),
        kind: Some("Widget".into()),
        name: Some("w".into()),
        namespace: Some(ns.clone()),
        uid: w.metadata.uid.clone(),
        ..Default::default()
    };
    let ev = Event {
        type_: EventType::Normal,
        reason: "Ready".into(),
        note: Some("widget is ready".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    recorder.publish(&ev, &reference).await.unwrap();
    recorder.publish(&ev, &reference).await.unwrap();
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(env.client.clone(), &ns);
    let list = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        list.items.len(),
        1,
        "repeated events are aggregated into one series"
    );
    assert_eq!(list.items[0].series.as_ref().map(|s| s.count), Some(2));
    assert_eq!(
        list.items[0]
            .regarding
            .as_ref()
            .and_then(|r| r.name.as_deref()),
        Some("w")
    );
    env.cleanup().await;
}

#[tokio::test]
async fn metadata_is_validated_for_every_kind() {
    let mut env = TestEnv::start().await;
    let ns = env.namespace("metaval").await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &ns);
    let err = api_err(
        api.create(&PostParams::default(), &cm("Bad_Name", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(err.details.unwrap().causes[0].field, "metadata.name");
    let err = api_err(
        api.create(
            &PostParams::default(),
            &cm("labels", json!({"app": "has space"})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .contains("metadata.labels: Invalid value: \"has space\""),
        "{}",
        err.message
    );
    let mut two = cm("owners", json!({}));
    two.metadata.owner_references = Some(
        ["a", "b"]
            .iter()
            .map(|n| {
                serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap", "name": n, "uid": format!("uid-{n}"), "controller": true}))
                    .unwrap()
            })
            .collect(),
    );
    let err = api_err(api.create(&PostParams::default(), &two).await.unwrap_err());
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .contains("Only one reference can have Controller set to true"),
        "{}",
        err.message
    );
    let mut frozen = cm("frozen", json!({}));
    frozen.immutable = Some(true);
    api.create(&PostParams::default(), &frozen).await.unwrap();
    let err = api_err(
        api.patch(
            "frozen",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "changed"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .contains("field is immutable when `immutable` is set"),
        "{}",
        err.message
    );
    env.cleanup().await;
}

#[tokio::test]
async fn kube_runtime_finalizer_helper_adds_and_removes_its_finalizer() {
    use kube::runtime::controller::Action;
    use kube::runtime::finalizer::{Event as Fin, finalizer};
    use std::sync::Arc;
    let mut env = TestEnv::start().await;
    let ns = env.namespace("finhelp").await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &ns);
    api.create(&PostParams::default(), &cm("guarded", json!({})))
        .await
        .unwrap();
    let run = |api: Api<ConfigMap>| async move {
        let obj = Arc::new(api.get("guarded").await.unwrap());
        finalizer(&api, "sim.example.io/cleanup", obj, |ev| async move {
            Ok::<_, std::convert::Infallible>(match ev {
                Fin::Apply(_) => Action::requeue(Duration::from_secs(1)),
                Fin::Cleanup(_) => Action::requeue(Duration::from_secs(2)),
            })
        })
        .await
    };
    // First pass adds the finalizer (JSON patch with a `test` of the missing list against null).
    run(api.clone()).await.unwrap();
    assert_eq!(
        api.get("guarded").await.unwrap().finalizers(),
        ["sim.example.io/cleanup"]
    );
    assert_eq!(
        run(api.clone()).await.unwrap(),
        Action::requeue(Duration::from_secs(1))
    );
    api.delete("guarded", &DeleteParams::default())
        .await
        .unwrap();
    // Cleanup runs, then the helper removes its finalizer and the object goes away.
    assert_eq!(
        run(api.clone()).await.unwrap(),
        Action::requeue(Duration::from_secs(2))
    );
    eventually("object gone after cleanup", WAIT, || {
        let api = api.clone();
        async move {
            api.get_opt("guarded")
                .await
                .ok()
                .flatten()
                .is_none()
                .then_some(())
        }
    })
    .await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_controller_reconciles_owns_children_and_writes_status() {
    use kube::runtime::Controller;
    use kube::runtime::controller::Action;
    use std::sync::Arc;
    let mut env = TestEnv::start().await;
    let ns = env.namespace("ctl").await;
    let ar = env.install_widget_crd().await;
    let widgets: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &ns, &ar);
    let children: Api<ConfigMap> = Api::namespaced(env.client.clone(), &ns);

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct ReconcileError(#[from] kube::Error);

    struct Ctx {
        widgets: Api<DynamicObject>,
        children: Api<ConfigMap>,
    }
    async fn reconcile(w: Arc<DynamicObject>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
        let name = w.metadata.name.clone().unwrap_or_default();
        if w.metadata.deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        let child = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("{name}-child"), "ownerReferences": [{
                "apiVersion": "sim.example.io/v1", "kind": "Widget", "name": name,
                "uid": w.metadata.uid, "controller": true, "blockOwnerDeletion": true}]},
            "data": {"size": w.data["spec"]["size"]}});
        ctx.children
            .patch(
                &format!("{name}-child"),
                &PatchParams::apply("widget-controller").force(),
                &Patch::Apply(&child),
            )
            .await?;
        let status = json!({"apiVersion": "sim.example.io/v1", "kind": "Widget", "metadata": {"name": name},
            "status": {"observedGeneration": w.metadata.generation, "conditions": [{"type": "Ready", "status": "True"}]}});
        ctx.widgets
            .patch_status(
                &name,
                &PatchParams::apply("widget-controller").force(),
                &Patch::Apply(&status),
            )
            .await?;
        Ok(Action::await_change())
    }
    fn error_policy(_: Arc<DynamicObject>, _: &ReconcileError, _: Arc<Ctx>) -> Action {
        Action::requeue(Duration::from_millis(200))
    }
    let ctx = Arc::new(Ctx {
        widgets: widgets.clone(),
        children: children.clone(),
    });
    let controller = Controller::new_with(widgets.clone(), watcher::Config::default(), ar.clone())
        .owns(children.clone(), watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {});
    let task = tokio::spawn(controller);

    widgets
        .create(&PostParams::default(), &obj(json!({"apiVersion": "sim.example.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": "small"}})))
        .await
        .unwrap();
    eventually("child created and status written", WAIT, || {
        let (widgets, children) = (widgets.clone(), children.clone());
        async move {
            let c = children.get_opt("w-child").await.ok().flatten()?;
            let w = widgets.get("w").await.ok()?;
            (c.data?.get("size")? == "small" && w.data["status"]["observedGeneration"] == 1)
                .then_some(())
        }
    })
    .await;
    // A spec change is reconciled into the child; a child edit is reverted via `owns`.
    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": "medium"}})),
        )
        .await
        .unwrap();
    eventually("spec change reconciled", WAIT, || {
        let children = children.clone();
        async move { (children.get("w-child").await.ok()?.data?.get("size")? == "medium").then_some(()) }
    })
    .await;
    children
        .patch(
            "w-child",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"size": "tampered"}})),
        )
        .await
        .unwrap();
    eventually("child edit reverted", WAIT, || {
        let children = children.clone();
        async move { (children.get("w-child").await.ok()?.data?.get("size")? == "medium").then_some(()) }
    })
    .await;
    widgets.delete("w", &DeleteParams::default()).await.unwrap();
    eventually("child collected with its owner", WAIT, || {
        let children = children.clone();
        async move {
            children
                .get_opt("w-child")
                .await
                .ok()
                .flatten()
                .is_none()
                .then_some(())
        }
    })
    .await;
    task.abort();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_watchers_see_every_change_in_order() {
    const WRITERS: usize = 4;
    const WRITES: usize = 50;
    const WATCHERS: usize = 10;
    let mut env = TestEnv::start().await;
    let ns = env.namespace("conc").await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &ns);
    for w in 0..WRITERS {
        api.create(&PostParams::default(), &cm(&format!("w{w}"), json!({})))
            .await
            .unwrap();
    }
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let stream = api
            .watch(&WatchParams::default().timeout(60), &rv)
            .await
            .unwrap();
        watchers.push(tokio::spawn(async move {
            let mut s = stream.boxed();
            let mut seen: Vec<u64> = Vec::new();
            while seen.len() < WRITERS * WRITES {
                match s.try_next().await {
                    Ok(Some(WatchEvent::Modified(o))) => {
                        seen.push(o.metadata.resource_version.unwrap().parse().unwrap());
                    }
                    Ok(Some(WatchEvent::Bookmark(_))) => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
            seen
        }));
    }
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let api = api.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..WRITES {
                api.patch(
                    &format!("w{w}"),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"data": {"i": i.to_string()}})),
                )
                .await
                .unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    for w in watchers {
        let seen = tokio::time::timeout(WAIT, w)
            .await
            .expect("watcher finished")
            .unwrap();
        assert_eq!(seen.len(), WRITERS * WRITES);
        assert!(
            seen.windows(2).all(|p| p[0] < p[1]),
            "events arrive in resourceVersion order without duplicates"
        );
    }
    env.cleanup().await;
}

#[tokio::test]
async fn shutdown_ends_open_watches() {
    if common::real_cluster().is_some() {
        println!("skipped on a real cluster: shutting down is kube-sim behaviour");
        return;
    }
    let mut env = TestEnv::start().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let mut stream = api
        .watch(&WatchParams::default().timeout(290), "0")
        .await
        .unwrap()
        .boxed();
    let sim = env.sim.take().expect("kube-sim");
    tokio::time::timeout(WAIT, sim.shutdown())
        .await
        .expect("shutdown finishes with a watch open");
    let rest = tokio::time::timeout(WAIT, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
    assert!(rest.is_ok(), "the watch stream ended");
}

/// Creates `n` ConfigMaps named `cm-00000`.. with label `app=page`, 32 at a time.
async fn many_configmaps(api: &Api<ConfigMap>, n: usize) {
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(
                    &PostParams::default(),
                    &cm(&format!("cm-{i:05}"), json!({"app": "page"})),
                )
                .await
                .map(|_| ())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await
        .expect("create configmaps");
}

#[tokio::test]
async fn paged_lists_are_one_consistent_snapshot() {
    let mut env = TestEnv::start().await;
    let ns = env.namespace("pages").await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &ns);
    many_configmaps(&api, 1100).await;
    let lp = ListParams::default().labels("app=page").limit(500);
    let first = api.list(&lp).await.unwrap();
    let rv = first
        .metadata
        .resource_version
        .clone()
        .expect("list resourceVersion");
    // Writes between pages: one object not yet served is deleted, one is added, one changed.
    api.delete("cm-00900", &DeleteParams::default())
        .await
        .unwrap();
    api.create(
        &PostParams::default(),
        &cm("cm-00899a", json!({"app": "page"})),
    )
    .await
    .unwrap();
    api.patch(
        "cm-01000",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "changed"}})),
    )
    .await
    .unwrap();
    let mut names: Vec<String> = first.items.iter().map(|o| o.name_any()).collect();
    let mut token = first.metadata.continue_.clone();
    let mut changed_seen = None;
    while let Some(t) = token.filter(|t| !t.is_empty()) {
        let page = api.list(&lp.clone().continue_token(&t)).await.unwrap();
        assert_eq!(
            page.metadata.resource_version.as_deref(),
            Some(rv.as_str()),
            "every page reports the first page's resourceVersion"
        );
        for item in &page.items {
            if item.name_any() == "cm-01000" {
                changed_seen = item.data.as_ref().and_then(|d| d.get("k").cloned());
            }
        }
        names.extend(page.items.iter().map(|o| o.name_any()));
        token = page.metadata.continue_.clone();
    }
    assert_eq!(
        names.len(),
        1100,
        "the snapshot has exactly the objects of the first page's time"
    );
    assert!(
        names.contains(&"cm-00900".to_string()),
        "deleted later, still in the snapshot"
    );
    assert!(
        !names.contains(&"cm-00899a".to_string()),
        "created later, not in the snapshot"
    );
    assert_eq!(
        changed_seen.as_deref(),
        Some("v"),
        "changed later, shown as it was"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_paging_reflector_ends_equal_to_the_server_while_writes_continue() {
    let mut env = TestEnv::start().await;
    let ns = env.namespace("pagerefl").await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &ns);
    many_configmaps(&api, 1200).await;
    let (reader, writer) = reflector::store::<ConfigMap>();
    // Writers run until the reflector has paged through its initial list, so writes land
    // between its pages (objects of pages already served change, are deleted and created).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writes: Vec<_> = (0..4)
        .map(|w| {
            let api = api.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut i = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let name = format!("cm-{:05}", (i * 4 + w) % 1200);
                    api.patch(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"data": {"k": format!("w{w}-{i}")}})),
                    )
                    .await
                    .ok();
                    if i.is_multiple_of(10) {
                        api.delete(
                            &format!("cm-{:05}", (i * 4 + w) % 1200),
                            &DeleteParams::default(),
                        )
                        .await
                        .ok();
                        api.create(
                            &PostParams::default(),
                            &cm(&format!("new-{w}-{i:05}"), json!({"app": "page"})),
                        )
                        .await
                        .expect("create during paging");
                    }
                    i += 1;
                }
                i
            })
        })
        .collect();
    let stream = watcher(
        api.clone(),
        watcher::Config::default().labels("app=page").page_size(500),
    )
    .default_backoff()
    .reflect(writer)
    .applied_objects();
    let task = tokio::spawn(async move {
        let mut s = std::pin::pin!(stream);
        while s.next().await.is_some() {}
    });
    tokio::time::timeout(WAIT, reader.wait_until_ready())
        .await
        .expect("reflector ready in time")
        .expect("reflector ready");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut rounds = 0;
    for w in writes {
        rounds += w.await.expect("writer");
    }
    assert!(rounds > 0, "no write ran during the paging");
    let server: std::collections::BTreeMap<String, String> = api
        .list(&ListParams::default().labels("app=page"))
        .await
        .unwrap()
        .items
        .iter()
        .map(|o| (o.name_any(), o.resource_version().unwrap_or_default()))
        .collect();
    eventually("the reflector equals the server", WAIT, || {
        let local: std::collections::BTreeMap<String, String> = reader
            .state()
            .iter()
            .map(|o| (o.name_any(), o.resource_version().unwrap_or_default()))
            .collect();
        let same = local == server;
        async move { same.then_some(()) }
    })
    .await;
    task.abort();
    env.cleanup().await;
}

#[tokio::test]
async fn timestamps_come_from_the_injected_clock() {
    if common::real_cluster().is_some() {
        println!("skipped on a real cluster: its clock is its own");
        return;
    }
    let start: jiff::Timestamp = "2030-01-02T03:04:05Z".parse().unwrap();
    let manual = clock::ManualClock::new(start);
    let config = kube_sim::Config::default().with_clock(std::sync::Arc::new(manual.clone()));
    let mut env = TestEnv::start_with(config).await;
    let ns = env.namespace("clock").await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &ns);
    let created = api
        .create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap();
    let stamp = |t: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        t.map(|t| t.0.to_string()).unwrap_or_default()
    };
    assert_eq!(
        stamp(created.metadata.creation_timestamp.clone()),
        "2030-01-02T03:04:05Z"
    );
    manual.advance(Duration::from_secs(90));
    let updated = api
        .patch(
            "c",
            &PatchParams::apply("clock-test"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"finalizers": ["example.com/hold"]}})),
        )
        .await
        .unwrap();
    let times: Vec<String> = updated
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.manager.as_deref() == Some("clock-test"))
        .map(|m| stamp(m.time))
        .collect();
    assert_eq!(times, ["2030-01-02T03:05:35Z"]);
    manual.advance(Duration::from_secs(30));
    api.delete("c", &DeleteParams::default()).await.unwrap();
    let deleting = api.get("c").await.unwrap();
    assert_eq!(
        stamp(deleting.metadata.deletion_timestamp),
        "2030-01-02T03:06:05Z"
    );
    env.cleanup().await;
}
