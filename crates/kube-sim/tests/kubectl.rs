//! The same scenarios through the real `kubectl` binary (skipped with a message when kubectl is
//! missing, failed instead when `MCP_REQUIRE_TOOLS=1`). Every invocation gets its own HOME and --cache-dir so discovery caches never leak.

mod common;

use common::{TestEnv, eventually, obj};
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

const WAIT: Duration = Duration::from_secs(30);

fn kubectl_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KUBECTL") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("kubectl"))
            .find(|p| p.is_file())
    })
}

macro_rules! require_kubectl {
    () => {
        match kubectl_path() {
            Some(p) => p,
            None => {
                // CI sets MCP_REQUIRE_TOOLS=1: a missing kubectl is a failure there, not a skip.
                assert!(
                    !common::tools_required(),
                    "kubectl not found on PATH (set KUBECTL to its path) and MCP_REQUIRE_TOOLS=1"
                );
                println!("skipped: kubectl not found on PATH (set KUBECTL to its path)");
                return;
            }
        }
    };
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn command(
    bin: &PathBuf,
    env: &TestEnv,
    args: &[&str],
) -> (tokio::process::Command, tempfile::TempDir) {
    let home = tempfile::tempdir().expect("kubectl home");
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .arg("--cache-dir")
        .arg(home.path().join("cache"))
        .args(args)
        .env("HOME", home.path())
        .env_remove("KUBECONFIG")
        .kill_on_drop(true);
    (cmd, home)
}

async fn kubectl(bin: &PathBuf, env: &TestEnv, args: &[&str]) -> Out {
    let (mut cmd, _home) = command(bin, env, args);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("kubectl timed out")
        .expect("run kubectl");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn ok(bin: &PathBuf, env: &TestEnv, args: &[&str]) -> String {
    let out = kubectl(bin, env, args).await;
    assert_eq!(out.code, 0, "kubectl {args:?} failed: {}", out.stderr);
    out.stdout
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

async fn setup(bin: &PathBuf, prefix: &str) -> (TestEnv, String) {
    let mut env = TestEnv::start().await;
    let ns = env.namespace(prefix).await;
    env.install_widget_crd().await;
    ok(
        bin,
        &env,
        &[
            "wait",
            "--for",
            "condition=established",
            "--timeout=30s",
            "crd/widgets.sim.example.io",
        ],
    )
    .await;
    (env, ns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_and_get_with_printer_columns_and_output_formats() {
    let bin = require_kubectl!();
    let (env, ns) = setup(&bin, "kget").await;
    let applied = ok(
        &bin,
        &env,
        &["apply", "-n", &ns, "-f", &fixture("widget-small.yaml")],
    )
    .await;
    assert!(
        applied.contains("widget.sim.example.io/small-one created"),
        "{applied}"
    );
    let again = ok(
        &bin,
        &env,
        &["apply", "-n", &ns, "-f", &fixture("widget-small.yaml")],
    )
    .await;
    assert!(again.contains("unchanged"), "{again}");

    let table = ok(&bin, &env, &["get", "widgets", "-n", &ns]).await;
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "SIZE", "REPLICAS", "READY", "AGE"],
        "{table}"
    );
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap_or_default()
            .starts_with("small-one"),
        "{table}"
    );
    let wide = ok(&bin, &env, &["get", "wd", "-n", &ns, "-o", "wide"]).await;
    assert!(wide.contains("REGION") && wide.contains("nyc1"), "{wide}");
    let by_category = ok(&bin, &env, &["get", "simtest", "-A"]).await;
    assert!(
        by_category.contains(&ns) && by_category.contains("small-one"),
        "{by_category}"
    );

    let as_json: Value = serde_json::from_str(
        &ok(
            &bin,
            &env,
            &["get", "widget", "small-one", "-n", &ns, "-o", "json"],
        )
        .await,
    )
    .unwrap();
    assert_eq!(as_json["spec"]["replicas"], 2);
    assert_eq!(as_json["kind"], "Widget");
    let as_yaml = ok(
        &bin,
        &env,
        &["get", "widget", "small-one", "-n", &ns, "-o", "yaml"],
    )
    .await;
    assert!(as_yaml.contains("size: small"), "{as_yaml}");
    let jp = ok(
        &bin,
        &env,
        &[
            "get",
            "widget",
            "small-one",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.placement.region}",
        ],
    )
    .await;
    assert_eq!(jp, "nyc1");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_object_is_rejected_with_the_cel_message() {
    let bin = require_kubectl!();
    let (env, ns) = setup(&bin, "kcel").await;
    let out = kubectl(
        &bin,
        &env,
        &["apply", "-n", &ns, "-f", &fixture("widget-invalid.yaml")],
    )
    .await;
    assert_ne!(out.code, 0);
    assert!(
        common::without_cel_value_type(&out.stderr).contains("The Widget \"too-many\" is invalid: spec: Invalid value: more than 10 replicas needs size large"),
        "{}",
        out.stderr
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_patch_label_and_status() {
    let bin = require_kubectl!();
    let (env, ns) = setup(&bin, "kssa").await;
    let out = ok(
        &bin,
        &env,
        &[
            "apply",
            "--server-side",
            "-n",
            &ns,
            "-f",
            &fixture("widget-small.yaml"),
        ],
    )
    .await;
    assert!(out.contains("serverside-applied"), "{out}");
    ok(
        &bin,
        &env,
        &[
            "patch",
            "widget",
            "small-one",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":4}}"#,
        ],
    )
    .await;
    let conflict = kubectl(
        &bin,
        &env,
        &[
            "apply",
            "--server-side",
            "-n",
            &ns,
            "-f",
            &fixture("widget-small.yaml"),
        ],
    )
    .await;
    assert_ne!(conflict.code, 0);
    assert!(
        conflict.stderr.contains("conflict with \"kubectl-patch\"")
            && conflict.stderr.contains(".spec.replicas"),
        "{}",
        conflict.stderr
    );
    ok(
        &bin,
        &env,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-n",
            &ns,
            "-f",
            &fixture("widget-small.yaml"),
        ],
    )
    .await;
    ok(
        &bin,
        &env,
        &["label", "widget", "small-one", "-n", &ns, "tier=gold"],
    )
    .await;
    ok(
        &bin,
        &env,
        &[
            "patch",
            "widget",
            "small-one",
            "-n",
            &ns,
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#,
        ],
    )
    .await;
    let table = ok(
        &bin,
        &env,
        &["get", "widget", "small-one", "-n", &ns, "--show-labels"],
    )
    .await;
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(row[..4], ["small-one", "small", "2", "True"], "{table}");
    assert!(row.contains(&"tier=gold"), "{table}");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_streams_changes() {
    let bin = require_kubectl!();
    let (env, ns) = setup(&bin, "kwatch").await;
    ok(
        &bin,
        &env,
        &["apply", "-n", &ns, "-f", &fixture("widget-small.yaml")],
    )
    .await;
    let (mut cmd, _home) = command(
        &bin,
        &env,
        &["get", "widgets", "-n", &ns, "-w", "--request-timeout=60s"],
    );
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kubectl get -w");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("header")
        .unwrap()
        .unwrap();
    assert!(first.starts_with("NAME"), "{first}");
    let row = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("row")
        .unwrap()
        .unwrap();
    assert!(row.starts_with("small-one"), "{row}");
    let api: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), &ns, &common::widget_resource());
    api.patch(
        "small-one",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 7}})),
    )
    .await
    .unwrap();
    let changed = tokio::time::timeout(WAIT, async {
        loop {
            let l = lines.next_line().await.unwrap().unwrap_or_default();
            if l.split_whitespace().nth(2) == Some("7") {
                return l;
            }
        }
    })
    .await
    .expect("watch shows the change");
    assert!(changed.starts_with("small-one"));
    child.start_kill().expect("stop kubectl get -w");
    let _ = child.wait().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_shows_object_and_events() {
    let bin = require_kubectl!();
    let (env, ns) = setup(&bin, "kdesc").await;
    ok(
        &bin,
        &env,
        &["apply", "-n", &ns, "-f", &fixture("widget-small.yaml")],
    )
    .await;
    let api: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), &ns, &common::widget_resource());
    let w = api.get("small-one").await.unwrap();
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(env.client.clone(), &ns);
    let ev: k8s_openapi::api::core::v1::Event = serde_json::from_value(json!({
        "metadata": {"name": "small-one.1", "namespace": ns},
        "involvedObject": {"apiVersion": "sim.example.io/v1", "kind": "Widget", "name": "small-one", "namespace": ns, "uid": w.metadata.uid},
        "reason": "Provisioned", "message": "droplet is ready", "type": "Normal",
        "source": {"component": "kube-sim-test"}, "count": 1,
        "firstTimestamp": "2026-11-25T00:00:00Z", "lastTimestamp": "2026-11-25T00:00:00Z"
    }))
    .unwrap();
    events.create(&PostParams::default(), &ev).await.unwrap();
    let out = ok(&bin, &env, &["describe", "widget", "small-one", "-n", &ns]).await;
    assert!(out.contains("Name:         small-one"), "{out}");
    assert!(
        out.contains("Provisioned") && out.contains("droplet is ready"),
        "{out}"
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_waits_for_finalizers() {
    let bin = require_kubectl!();
    let (env, ns) = setup(&bin, "kdel").await;
    ok(
        &bin,
        &env,
        &["apply", "-n", &ns, "-f", &fixture("widget-small.yaml")],
    )
    .await;
    ok(
        &bin,
        &env,
        &[
            "patch",
            "widget",
            "small-one",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":["sim.example.io/hold"]}}"#,
        ],
    )
    .await;
    let (mut cmd, _home) = command(
        &bin,
        &env,
        &["delete", "widget", "small-one", "-n", &ns, "--timeout=60s"],
    );
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubectl delete");
    let api: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), &ns, &common::widget_resource());
    eventually("deletionTimestamp set", WAIT, || {
        let api = api.clone();
        async move {
            api.get("small-one")
                .await
                .ok()
                .and_then(|o| o.metadata.deletion_timestamp)
        }
    })
    .await;
    assert!(
        child.try_wait().expect("poll kubectl").is_none(),
        "kubectl delete returned while a finalizer was present"
    );
    api.patch(
        "small-one",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("kubectl delete finished")
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("deleted"));
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_uses_the_crd_schema() {
    let bin = require_kubectl!();
    let (env, _ns) = setup(&bin, "kexp").await;
    let out = ok(&bin, &env, &["explain", "widget.spec"]).await;
    assert!(out.contains("Desired state of the widget."), "{out}");
    assert!(out.contains("replicas") && out.contains("size"), "{out}");
    let field = ok(&bin, &env, &["explain", "widgets.spec.size"]).await;
    assert!(field.contains("How big the widget is."), "{field}");
    // kube-sim publishes the enum in its OpenAPI; a 1.28 server's explain does not show it.
    if env.is_sim() {
        assert!(field.contains("large"), "{field}");
    }
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_kinds_apply_with_strategic_merge() {
    let bin = require_kubectl!();
    let mut env = TestEnv::start().await;
    let ns = env.namespace("kbuilt").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deploy.yaml");
    let manifest = |image: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: web\n        image: {image}\n        env:\n        - name: A\n          value: \"1\"\n      - name: sidecar\n        image: busybox\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {{app: web}}\n  ports:\n  - port: 80\n"
        )
    };
    std::fs::write(&path, manifest("nginx:1")).unwrap();
    let p = path.to_string_lossy().to_string();
    ok(&bin, &env, &["apply", "-n", &ns, "-f", &p]).await;
    std::fs::write(&path, manifest("nginx:2")).unwrap();
    ok(&bin, &env, &["apply", "-n", &ns, "-f", &p]).await;
    let d: Value = serde_json::from_str(
        &ok(
            &bin,
            &env,
            &["get", "deploy", "web", "-n", &ns, "-o", "json"],
        )
        .await,
    )
    .unwrap();
    let containers = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0]["image"], "nginx:2");
    assert_eq!(containers[0]["env"][0]["value"], "1");
    assert_eq!(d["metadata"]["generation"], 2);
    let cms: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        &ns,
        &kube::core::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("", "v1", "ConfigMap"),
            "configmaps",
        ),
    );
    cms.create(
        &PostParams::default(),
        &obj(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})),
    )
    .await
    .unwrap();
    let got = ok(&bin, &env, &["get", "svc,cm", "-n", &ns, "-o", "name"]).await;
    assert!(
        got.contains("service/web") && got.contains("configmap/c"),
        "{got}"
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_commands_that_send_protobuf() {
    let bin = require_kubectl!();
    let mut env = TestEnv::start().await;
    let ns = env.namespace("kgen").await;
    ok(
        &bin,
        &env,
        &[
            "create",
            "configmap",
            "settings",
            "-n",
            &ns,
            "--from-literal=mode=fast",
        ],
    )
    .await;
    ok(
        &bin,
        &env,
        &[
            "create",
            "secret",
            "generic",
            "token",
            "-n",
            &ns,
            "--from-literal=token=s3cret",
        ],
    )
    .await;
    ok(
        &bin,
        &env,
        &["create", "serviceaccount", "robot", "-n", &ns],
    )
    .await;
    let extra = common::unique("kgen-ns");
    ok(&bin, &env, &["create", "namespace", &extra]).await;
    let secret: Value = serde_json::from_str(
        &ok(
            &bin,
            &env,
            &["get", "secret", "token", "-n", &ns, "-o", "json"],
        )
        .await,
    )
    .unwrap();
    assert_eq!(secret["data"]["token"], "czNjcmV0");
    assert_eq!(secret["type"], "Opaque");
    let mode = ok(
        &bin,
        &env,
        &[
            "get",
            "cm",
            "settings",
            "-n",
            &ns,
            "-o",
            "jsonpath={.data.mode}",
        ],
    )
    .await;
    assert_eq!(mode, "fast");
    ok(&bin, &env, &["get", "sa", "robot", "-n", &ns]).await;
    ok(&bin, &env, &["delete", "namespace", &extra]).await;
    if env.is_sim() {
        // Without -n kubectl sends an empty namespace in the body; the URL's namespace wins.
        ok(
            &bin,
            &env,
            &["create", "configmap", "in-default", "--from-literal=a=b"],
        )
        .await;
        let table = ok(&bin, &env, &["get", "configmap", "in-default"]).await;
        let header: Vec<&str> = table
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        assert_eq!(header, ["NAME", "DATA", "AGE"], "{table}");
        ok(&bin, &env, &["delete", "configmap", "in-default"]).await;
    }
    // `auth can-i` posts a SelfSubjectAccessReview in protobuf.
    let can = ok(
        &bin,
        &env,
        &["auth", "can-i", "create", "configmaps", "-n", &ns],
    )
    .await;
    assert_eq!(can.trim(), "yes");
    env.cleanup().await;
}
