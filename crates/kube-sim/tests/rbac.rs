//! RBAC scenarios through kube-rs with a service account's token: what a role allows works,
//! everything else is 403 with the real server's message, and the access record tells which
//! rule allowed what (and which rules nothing used). kube-sim only: a real cluster's tokens
//! and roles are not ours to hand out.

mod common;

use common::{WIDGET_CRD, widget_resource};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchParams};
use kube::core::WatchEvent;
use kube::{Client, Discovery};
use kube_sim::rbac::{RoleKind, RuleRef, ServiceAccountRef, documents_from_yaml, start_with_rbac};
use serde_json::{Value, json};
use std::time::Duration;

const OPERATOR: &str = "system:serviceaccount:ops:op";

/// The account's RBAC as a chart would render it: widgets and their status in `team-a` (through
/// a RoleBinding to a ClusterRole), config maps read-only in `team-a`, one named lock, and a
/// rule nothing uses.
const RBAC_YAML: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: op, namespace: ops}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: widget-editor}
rules:
- apiGroups: [sim.example.io]
  resources: [widgets]
  verbs: [get, list, create]
- apiGroups: [sim.example.io]
  resources: [widgets/status]
  verbs: [update]
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: op-widgets, namespace: team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: widget-editor}
subjects:
- {kind: ServiceAccount, name: op, namespace: ops}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: config-reader, namespace: team-a}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list]
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [op-lock]
  verbs: [get, update, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: op-config, namespace: team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: config-reader}
subjects:
- {kind: ServiceAccount, name: op, namespace: ops}
"#;

fn client(cc: kube_sim::ClientConfig) -> Client {
    let mut config = kube::Config::new(cc.url.parse().expect("url"));
    if let Some(token) = cc.token {
        config.auth_info.token = Some(token.expose().to_string().into());
    }
    Client::try_from(config).expect("client")
}

fn api_err(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Asserts a 403 with exactly this message.
fn assert_forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>, message: &str) {
    let status = api_err(result.expect_err("the request should be forbidden"));
    assert_eq!(status.code, 403, "{status:?}");
    assert_eq!(status.reason, "Forbidden");
    assert_eq!(status.message, message);
}

struct World {
    sim: kube_sim::Handle,
    admin: Client,
    op: Client,
}

/// kube-sim with RBAC, the widget CRD, namespaces `team-a` and `team-b`, and [`RBAC_YAML`].
async fn world() -> World {
    let mut docs = documents_from_yaml(WIDGET_CRD).expect("crd yaml");
    docs.extend(documents_from_yaml(RBAC_YAML).expect("rbac yaml"));
    docs.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-b"}}));
    let scenario = start_with_rbac(
        kube_sim::Config::default(),
        &docs,
        &ServiceAccountRef::new("ops", "op"),
    )
    .await
    .expect("kube-sim with RBAC");
    assert_eq!(scenario.user.name, OPERATOR);
    let admin = client(scenario.sim.client_config());
    let op = client(scenario.sim.client_config_with(&scenario.token));
    for ns in ["team-a", "team-b"] {
        let _ = Api::<Namespace>::all(admin.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns"),
            )
            .await;
        let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), ns);
        for name in ["op-lock", "other"] {
            cms.create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": name}})).expect("cm"),
            )
            .await
            .expect("admin creates config maps");
        }
    }
    let widgets: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), "team-a", &widget_resource());
    widgets
        .create(&PostParams::default(), &common::obj(widget("w")))
        .await
        .expect("admin creates a widget");
    scenario.sim.clear_access_record().expect("rbac on");
    World {
        sim: scenario.sim,
        admin,
        op,
    }
}

fn widget(name: &str) -> Value {
    json!({"apiVersion": "sim.example.io/v1", "kind": "Widget",
        "metadata": {"name": name}, "spec": {"size": "small"}})
}

fn rule(
    binding_ns: &str,
    binding: &str,
    kind: RoleKind,
    role_ns: &str,
    role: &str,
    index: usize,
) -> RuleRef {
    RuleRef {
        binding_namespace: binding_ns.into(),
        binding: binding.into(),
        role_kind: kind,
        role_namespace: role_ns.into(),
        role: role.into(),
        index,
    }
}

#[tokio::test]
async fn the_role_allows_what_it_names_and_the_rest_is_forbidden_with_the_servers_message() {
    let w = world().await;
    let widgets: Api<DynamicObject> =
        Api::namespaced_with(w.op.clone(), "team-a", &widget_resource());
    let got = widgets.get("w").await.expect("get is allowed");
    assert_eq!(got.metadata.name.as_deref(), Some("w"));
    widgets
        .create(&PostParams::default(), &common::obj(widget("w2")))
        .await
        .expect("create is allowed");

    // A verb the role lacks on the main resource.
    assert_forbidden(
        widgets
            .patch(
                "w",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 2}})),
            )
            .await,
        &format!(
            "widgets.sim.example.io \"w\" is forbidden: User \"{OPERATOR}\" cannot patch resource \"widgets\" in API group \"sim.example.io\" in the namespace \"team-a\""
        ),
    );
    // The status subresource: update is granted, patch (and server-side apply) is not.
    let mut current = widgets.get("w").await.expect("get");
    current.data["status"] = json!({"observedGeneration": 1});
    widgets
        .replace_status("w", &PostParams::default(), &current)
        .await
        .expect("update of widgets/status is allowed");
    assert_forbidden(
        widgets
            .patch_status(
                "w",
                &PatchParams::apply("op").force(),
                &Patch::Apply(json!({"apiVersion": "sim.example.io/v1", "kind": "Widget", "status": {"observedGeneration": 2}})),
            )
            .await,
        &format!("widgets.sim.example.io \"w\" is forbidden: User \"{OPERATOR}\" cannot patch resource \"widgets/status\" in API group \"sim.example.io\" in the namespace \"team-a\""),
    );
    // Core group, no name: list of secrets.
    let secrets: Api<Secret> = Api::namespaced(w.op.clone(), "team-a");
    assert_forbidden(
        secrets.list(&ListParams::default()).await,
        &format!(
            "secrets is forbidden: User \"{OPERATOR}\" cannot list resource \"secrets\" in API group \"\" in the namespace \"team-a\""
        ),
    );
    // Cluster scope.
    let namespaces: Api<Namespace> = Api::all(w.op.clone());
    assert_forbidden(
        namespaces.get("team-a").await,
        &format!(
            "namespaces \"team-a\" is forbidden: User \"{OPERATOR}\" cannot get resource \"namespaces\" in API group \"\" in the namespace \"team-a\""
        ),
    );
    assert_forbidden(
        namespaces.list(&ListParams::default()).await,
        &format!(
            "namespaces is forbidden: User \"{OPERATOR}\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"
        ),
    );
    let all_widgets: Api<DynamicObject> = Api::all_with(w.op.clone(), &widget_resource());
    let status = api_err(
        all_widgets
            .list(&ListParams::default())
            .await
            .expect_err("403"),
    );
    assert_eq!(
        status.message,
        format!(
            "widgets.sim.example.io is forbidden: User \"{OPERATOR}\" cannot list resource \"widgets\" in API group \"sim.example.io\" at the cluster scope"
        )
    );
    let details = status.details.expect("details");
    assert_eq!(
        (
            details.group.as_str(),
            details.kind.as_str(),
            details.name.as_str()
        ),
        ("sim.example.io", "widgets", "")
    );
    w.sim.shutdown().await;
}

#[tokio::test]
async fn a_role_binding_to_a_cluster_role_grants_only_in_its_namespace() {
    let w = world().await;
    let admin_b: Api<DynamicObject> =
        Api::namespaced_with(w.admin.clone(), "team-b", &widget_resource());
    admin_b
        .create(&PostParams::default(), &common::obj(widget("wb")))
        .await
        .expect("admin creates in team-b");
    let team_a: Api<DynamicObject> =
        Api::namespaced_with(w.op.clone(), "team-a", &widget_resource());
    let team_b: Api<DynamicObject> =
        Api::namespaced_with(w.op.clone(), "team-b", &widget_resource());
    assert_eq!(
        team_a
            .list(&ListParams::default())
            .await
            .expect("team-a")
            .items
            .len(),
        1
    );
    assert_forbidden(
        team_b.get("wb").await,
        &format!(
            "widgets.sim.example.io \"wb\" is forbidden: User \"{OPERATOR}\" cannot get resource \"widgets\" in API group \"sim.example.io\" in the namespace \"team-b\""
        ),
    );
    w.sim.shutdown().await;
}

#[tokio::test]
async fn resource_names_limit_the_rule_to_named_objects_and_never_allow_lists() {
    let w = world().await;
    let team_a: Api<ConfigMap> = Api::namespaced(w.op.clone(), "team-a");
    let lock = team_a.get("op-lock").await.expect("get op-lock");
    team_a
        .replace("op-lock", &PostParams::default(), &lock)
        .await
        .expect("update of the named lock is allowed");
    let other = team_a
        .get("other")
        .await
        .expect("get is allowed for any config map");
    assert_forbidden(
        team_a
            .replace("other", &PostParams::default(), &other)
            .await,
        &format!(
            "configmaps \"other\" is forbidden: User \"{OPERATOR}\" cannot update resource \"configmaps\" in API group \"\" in the namespace \"team-a\""
        ),
    );
    // watch is granted only on the named object: a watch of the collection is refused, a
    // watch narrowed to the name by a field selector is allowed (the server takes the name).
    let all = team_a.watch(&WatchParams::default(), "0").await;
    assert_forbidden(
        all.map(|_| ()),
        &format!(
            "configmaps is forbidden: User \"{OPERATOR}\" cannot watch resource \"configmaps\" in API group \"\" in the namespace \"team-a\""
        ),
    );
    let one = team_a
        .watch(
            &WatchParams::default()
                .fields("metadata.name=op-lock")
                .timeout(5),
            "0",
        )
        .await
        .expect("a watch of the named object is allowed");
    let first = tokio::time::timeout(Duration::from_secs(10), one.boxed().try_next())
        .await
        .expect("an event in time")
        .expect("a watch event")
        .expect("not the end");
    match first {
        WatchEvent::Added(cm) => assert_eq!(cm.metadata.name.as_deref(), Some("op-lock")),
        other => panic!("expected ADDED op-lock, got {other:?}"),
    }
    let named_other = team_a
        .watch(&WatchParams::default().fields("metadata.name=other"), "0")
        .await;
    assert_forbidden(
        named_other.map(|_| ()),
        &format!(
            "configmaps \"other\" is forbidden: User \"{OPERATOR}\" cannot watch resource \"configmaps\" in API group \"\" in the namespace \"team-a\""
        ),
    );
    w.sim.shutdown().await;
}

#[tokio::test]
async fn watch_is_its_own_verb() {
    let w = world().await;
    let widgets: Api<DynamicObject> =
        Api::namespaced_with(w.op.clone(), "team-a", &widget_resource());
    widgets
        .list(&ListParams::default())
        .await
        .expect("list is granted");
    assert_forbidden(
        widgets
            .watch(&WatchParams::default(), "0")
            .await
            .map(|_| ()),
        &format!(
            "widgets.sim.example.io is forbidden: User \"{OPERATOR}\" cannot watch resource \"widgets\" in API group \"sim.example.io\" in the namespace \"team-a\""
        ),
    );
    // Granting watch takes effect at once (the policy follows the stored roles).
    w.sim
        .apply(
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "widget-editor"},
                "rules": [
                    {"apiGroups": ["sim.example.io"], "resources": ["widgets"], "verbs": ["get", "list", "create", "watch"]},
                ]}),
            "test",
        )
        .expect("apply");
    let stream = widgets
        .watch(&WatchParams::default().timeout(5), "0")
        .await
        .expect("watch is granted now");
    let first = tokio::time::timeout(Duration::from_secs(10), stream.boxed().try_next())
        .await
        .expect("an event in time")
        .expect("a watch event");
    assert!(matches!(first, Some(WatchEvent::Added(_))), "{first:?}");
    w.sim.shutdown().await;
}

#[tokio::test]
async fn discovery_and_version_work_for_every_authenticated_user() {
    let w = world().await;
    let version = w.op.apiserver_version().await.expect("/version");
    assert!(version.git_version.contains("kube-sim"));
    let discovery = Discovery::new(w.op.clone()).run().await.expect("discovery");
    assert!(discovery.has_group("sim.example.io"));
    // Non-resource URLs outside discovery are refused with the server's message.
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    let status = api_err(w.op.request_text(request).await.expect_err("403"));
    assert_eq!(status.code, 403);
    assert_eq!(
        status.message,
        format!("forbidden: User \"{OPERATOR}\" cannot get path \"/metrics\"")
    );
    w.sim.shutdown().await;
}

#[tokio::test]
async fn requests_without_a_known_token_get_401() {
    let w = world().await;
    let url = w.sim.url();
    for token in [None, Some("not-a-token")] {
        let mut config = kube::Config::new(url.parse().expect("url"));
        if let Some(t) = token {
            config.auth_info.token = Some(t.to_string().into());
        }
        let anonymous = Client::try_from(config).expect("client");
        let status = api_err(anonymous.apiserver_version().await.expect_err("401"));
        assert_eq!(
            (status.code, status.reason.as_str(), status.message.as_str()),
            (401, "Unauthorized", "Unauthorized")
        );
    }
    w.sim.shutdown().await;
}

#[tokio::test]
async fn self_subject_access_reviews_answer_from_the_same_rules() {
    let w = world().await;
    let reviews: Api<SelfSubjectAccessReview> = Api::all(w.op.clone());
    let ask =
        |verb: &str, resource: &str, subresource: Option<&str>, ns: &str| SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.into()),
                    group: Some("sim.example.io".into()),
                    resource: Some(resource.into()),
                    subresource: subresource.map(str::to_string),
                    namespace: Some(ns.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
    let allowed = reviews
        .create(
            &PostParams::default(),
            &ask("update", "widgets", Some("status"), "team-a"),
        )
        .await
        .expect("review")
        .status
        .expect("status");
    assert!(allowed.allowed);
    assert_eq!(
        allowed.reason.as_deref(),
        Some(
            "RBAC: allowed by RoleBinding \"op-widgets/team-a\" of ClusterRole \"widget-editor\" to ServiceAccount \"op/ops\""
        )
    );
    let denied = reviews
        .create(
            &PostParams::default(),
            &ask("update", "widgets", Some("status"), "team-b"),
        )
        .await
        .expect("review")
        .status
        .expect("status");
    assert!(!denied.allowed);
    w.sim.shutdown().await;
}

#[tokio::test]
async fn the_access_record_names_the_rule_behind_each_request_and_the_unused_ones() {
    let w = world().await;
    let widgets: Api<DynamicObject> =
        Api::namespaced_with(w.op.clone(), "team-a", &widget_resource());
    widgets.get("w").await.expect("get");
    widgets.get("w").await.expect("get again");
    let cms: Api<ConfigMap> = Api::namespaced(w.op.clone(), "team-a");
    cms.list(&ListParams::default()).await.expect("list");
    let _ = Api::<Secret>::namespaced(w.op.clone(), "team-a")
        .get("nope")
        .await
        .expect_err("denied");

    let record = w.sim.access_record().expect("rbac on");
    let widget_read = rule(
        "team-a",
        "op-widgets",
        RoleKind::ClusterRole,
        "",
        "widget-editor",
        0,
    );
    let config_read = rule(
        "team-a",
        "op-config",
        RoleKind::Role,
        "team-a",
        "config-reader",
        0,
    );
    assert_eq!(record.rule_counts().get(&widget_read), Some(&2));
    assert_eq!(record.rule_counts().get(&config_read), Some(&1));
    let gets: Vec<_> = record
        .allowed()
        .into_iter()
        .filter(|a| a.rule == widget_read)
        .collect();
    assert_eq!(gets.len(), 1, "{gets:?}");
    assert_eq!(gets[0].user, OPERATOR);
    assert_eq!(gets[0].count, 2);
    match &gets[0].attributes {
        kube_sim::rbac::Attributes::Resource(r) => assert_eq!(
            (
                r.verb.as_str(),
                r.group.as_str(),
                r.resource.as_str(),
                r.namespace.as_str(),
                r.name.as_str()
            ),
            ("get", "sim.example.io", "widgets", "team-a", "w")
        ),
        other => panic!("{other:?}"),
    }
    let denied = record.denied();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert!(
        matches!(&denied[0].attributes, kube_sim::rbac::Attributes::Resource(r) if r.resource == "secrets" && r.name == "nope")
    );
    // Discovery is allowed by the built-in role and counted, but built-in roles never show up
    // as unused.
    let unused: Vec<String> = w
        .sim
        .unused_rules()
        .expect("rbac on")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        unused,
        [
            "Role \"team-a/config-reader\" rule 1: verbs [\"get\", \"update\", \"watch\"] apiGroups [\"\"] resources [\"configmaps\"] resourceNames [\"op-lock\"]",
            "ClusterRole \"widget-editor\" rule 1: verbs [\"update\"] apiGroups [\"sim.example.io\"] resources [\"widgets/status\"]",
            "ClusterRole \"widget-editor\" rule 2: verbs [\"delete\"] apiGroups [\"\"] resources [\"persistentvolumeclaims\"]",
        ]
    );
    // One verb on one resource at a time: the used rules' other verbs show up too.
    let unused: Vec<String> = w
        .sim
        .unused_permissions()
        .expect("rbac on")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        unused,
        [
            "Role \"team-a/config-reader\" rule 0: get \"configmaps\" in API group \"\"",
            "Role \"team-a/config-reader\" rule 1: get \"configmaps\" in API group \"\"",
            "Role \"team-a/config-reader\" rule 1: update \"configmaps\" in API group \"\"",
            "Role \"team-a/config-reader\" rule 1: watch \"configmaps\" in API group \"\"",
            "ClusterRole \"widget-editor\" rule 0: list \"widgets\" in API group \"sim.example.io\"",
            "ClusterRole \"widget-editor\" rule 0: create \"widgets\" in API group \"sim.example.io\"",
            "ClusterRole \"widget-editor\" rule 1: update \"widgets/status\" in API group \"sim.example.io\"",
            "ClusterRole \"widget-editor\" rule 2: delete \"persistentvolumeclaims\" in API group \"\"",
        ]
    );
    assert_eq!(record.permissions_dropped(), 0);
    w.sim.shutdown().await;
}

#[tokio::test]
async fn the_superuser_bypasses_rbac_and_users_and_groups_are_subjects() {
    let w = world().await;
    // The admin client (group system:masters) does what no rule grants.
    Api::<Secret>::namespaced(w.admin.clone(), "team-b")
        .list(&ListParams::default())
        .await
        .expect("the superuser lists secrets");
    let record = w.sim.access_record().expect("rbac on");
    assert!(record.privileged_requests() >= 1);
    assert!(record.denied().is_empty());

    // A plain user in a group bound to the built-in cluster-admin role.
    w.sim
        .apply(
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "ops-admins"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "ops"}]}),
            "test",
        )
        .expect("apply");
    let jane_token = w
        .sim
        .user_token(kube_sim::rbac::UserInfo::user("jane", &["ops"]))
        .expect("token");
    let bob_token = w
        .sim
        .user_token(kube_sim::rbac::UserInfo::user("bob", &[]))
        .expect("token");
    let jane = client(w.sim.client_config_with(&jane_token));
    let bob = client(w.sim.client_config_with(&bob_token));
    Api::<Secret>::namespaced(jane, "team-b")
        .list(&ListParams::default())
        .await
        .expect("jane is an admin through her group");
    assert_forbidden(
        Api::<Secret>::namespaced(bob, "team-b")
            .list(&ListParams::default())
            .await,
        "secrets is forbidden: User \"bob\" cannot list resource \"secrets\" in API group \"\" in the namespace \"team-b\"",
    );
    w.sim.shutdown().await;
}

#[tokio::test]
async fn without_rbac_nothing_changes() {
    let sim = kube_sim::KubeSim::start(kube_sim::Config::default())
        .await
        .expect("start");
    assert!(matches!(
        sim.access_record(),
        Err(kube_sim::SimError::RbacDisabled)
    ));
    let c = client(sim.client_config());
    Api::<Secret>::namespaced(c, "default")
        .list(&ListParams::default())
        .await
        .expect("anyone may list");
    sim.shutdown().await;
}

fn kubectl_path() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("KUBECTL") {
        return Some(p.into());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("kubectl"))
            .find(|p| p.is_file())
    })
}

#[tokio::test]
async fn kubectl_with_the_service_accounts_token() {
    let Some(bin) = kubectl_path() else {
        assert!(
            !common::tools_required(),
            "kubectl not found on PATH (set KUBECTL to its path) and MCP_REQUIRE_TOOLS=1"
        );
        println!("skipped: kubectl not found on PATH (set KUBECTL to its path)");
        return;
    };
    let w = world().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    // kubectl sends no token to a plain-HTTP server, so it gets a listener of its own that
    // serves the service account.
    let url = w
        .sim
        .serve_as(kube_sim::rbac::UserInfo::service_account("ops", "op"))
        .await
        .expect("listener");
    kube_sim::kubeconfig::write(&kubeconfig, &url, None).expect("kubeconfig");
    let run = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(&bin);
        cmd.arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(args)
            .env("HOME", dir.path())
            .env_remove("KUBECONFIG")
            .kill_on_drop(true);
        async move {
            let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
                .await
                .expect("kubectl timed out")
                .expect("run kubectl");
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    // `auth can-i` posts a SelfSubjectAccessReview in protobuf.
    let can = [
        "auth",
        "can-i",
        "update",
        "widgets.sim.example.io",
        "--subresource=status",
    ];
    let (code, out, _e) = run(&[&can[..], &["-n", "team-a"]].concat()).await;
    assert_eq!((code, out.trim()), (0, "yes"), "{_e}");
    let (code, out, _) = run(&[&can[..], &["-n", "team-b"]].concat()).await;
    assert_eq!((code, out.trim()), (1, "no"));
    let (code, out, err) = run(&["get", "widgets", "-n", "team-a", "-o", "name"]).await;
    assert_eq!((code, out.trim()), (0, "widget.sim.example.io/w"), "{err}");
    let (code, _, err) = run(&["get", "secrets", "-n", "team-a"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("Error from server (Forbidden): secrets is forbidden: User \"{OPERATOR}\" cannot list resource \"secrets\" in API group \"\" in the namespace \"team-a\"")),
        "{err}"
    );
    w.sim.shutdown().await;
}

#[tokio::test]
async fn impersonation_needs_the_impersonate_verb_and_then_acts_as_the_account() {
    let w = world().await;
    let as_operator = |base: kube_sim::ClientConfig| {
        let mut config = kube::Config::new(base.url.parse().expect("url"));
        if let Some(token) = base.token {
            config.auth_info.token = Some(token.expose().to_string().into());
        }
        config.auth_info.impersonate = Some(OPERATOR.to_string());
        Client::try_from(config).expect("client")
    };
    // The superuser may impersonate anyone; the account's rules then decide.
    let admin_as_op = as_operator(w.sim.client_config());
    Api::<DynamicObject>::namespaced_with(admin_as_op.clone(), "team-a", &widget_resource())
        .get("w")
        .await
        .expect("the account may get widgets");
    assert_forbidden(
        Api::<Secret>::namespaced(admin_as_op, "team-a")
            .list(&ListParams::default())
            .await,
        &format!(
            "secrets is forbidden: User \"{OPERATOR}\" cannot list resource \"secrets\" in API group \"\" in the namespace \"team-a\""
        ),
    );
    // A user without the impersonate verb is refused before anything else.
    let bob = w
        .sim
        .user_token(kube_sim::rbac::UserInfo::user("bob", &[]))
        .expect("token");
    let bob_as_op = as_operator(w.sim.client_config_with(&bob));
    assert_forbidden(
        Api::<DynamicObject>::namespaced_with(bob_as_op, "team-a", &widget_resource())
            .get("w")
            .await,
        "serviceaccounts \"op\" is forbidden: User \"bob\" cannot impersonate resource \"serviceaccounts\" in API group \"\" in the namespace \"ops\"",
    );
    w.sim.shutdown().await;
}

#[tokio::test]
async fn rendered_documents_without_a_namespace_land_in_the_accounts_namespace() {
    let rendered = r#"
---
# Source: chart/templates/serviceaccount.yaml
apiVersion: v1
kind: ServiceAccount
metadata: {name: leader}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: leader-election}
rules:
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: leader-election}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: leader-election}
subjects:
- {kind: ServiceAccount, name: leader}
"#;
    let docs = documents_from_yaml(rendered).expect("yaml");
    let scenario = start_with_rbac(
        kube_sim::Config::default(),
        &docs,
        &ServiceAccountRef::new("fresh-ns", "leader"),
    )
    .await
    .expect("start");
    let op = client(scenario.sim.client_config_with(&scenario.token));
    let leases: Api<DynamicObject> = Api::namespaced_with(
        op,
        "fresh-ns",
        &kube::core::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("coordination.k8s.io", "v1", "Lease"),
            "leases",
        ),
    );
    leases
        .create(
            &PostParams::default(),
            &common::obj(
                json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "leader"}, "spec": {"holderIdentity": "a"}}),
            ),
        )
        .await
        .expect("the role was created in the account's namespace, which was created too");
    let record = scenario.sim.access_record().expect("rbac on");
    assert_eq!(record.privileged_requests(), 0, "set-up is not recorded");
    assert_eq!(
        record
            .rule_counts()
            .keys()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["Role \"fresh-ns/leader-election\" rule 0 via RoleBinding \"fresh-ns/leader-election\""]
    );
    scenario.sim.shutdown().await;
}

#[tokio::test]
async fn an_apply_that_creates_its_object_needs_create_as_on_the_server() {
    let w = world().await;
    let patch_only = |verbs: &[&str]| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "cm-apply", "namespace": "team-b"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": verbs}]})
    };
    w.sim.apply(&patch_only(&["patch"]), "test").expect("role");
    w.sim
        .apply(
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "cm-apply", "namespace": "team-b"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-apply"},
                "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": "ops"}]}),
            "test",
        )
        .expect("binding");
    let team_b: Api<ConfigMap> = Api::namespaced(w.op.clone(), "team-b");
    let apply = |name: &str| {
        let cm: ConfigMap = serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name}, "data": {"k": "v"}}))
        .expect("cm");
        (name.to_string(), cm)
    };
    let params = PatchParams::apply("op").force();
    // An existing object: patch is enough.
    let (name, cm) = apply("other");
    team_b
        .patch(&name, &params, &Patch::Apply(&cm))
        .await
        .expect("apply to an existing config map with patch only");
    // A new one: the server asks for create as well.
    let (name, cm) = apply("new");
    assert_forbidden(
        team_b.patch(&name, &params, &Patch::Apply(&cm)).await,
        "configmaps \"new\" is forbidden: ",
    );
    let denied = w.sim.access_record().expect("rbac on").denied();
    assert!(
        denied.iter().any(|d| matches!(&d.attributes,
            kube_sim::rbac::Attributes::Resource(r) if r.verb == "create" && r.name == "new")),
        "{denied:?}"
    );
    w.sim
        .apply(&patch_only(&["patch", "create"]), "test")
        .expect("role with create");
    team_b
        .patch(&name, &params, &Patch::Apply(&cm))
        .await
        .expect("apply creates it with create and patch");
    let unused: Vec<String> = w
        .sim
        .unused_permissions()
        .expect("rbac on")
        .iter()
        .map(ToString::to_string)
        .filter(|p| p.contains("cm-apply"))
        .collect();
    assert!(unused.is_empty(), "{unused:?}");
    w.sim.shutdown().await;
}
