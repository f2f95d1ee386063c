//! Shared test environment: a fresh kube-sim per test, or a real cluster when
//! `MCP_E2E_KUBECONFIG` names a kubeconfig (then every test uses its own namespace and cleans up).

#![allow(dead_code)]

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Config};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

/// The widget CRD used throughout the scenarios (with printer columns and CEL rules).
pub const WIDGET_CRD: &str = include_str!("../fixtures/widget-crd.yaml");

/// One test's world.
pub struct TestEnv {
    /// Client for the API server.
    pub client: Client,
    /// kube-sim handle, when not running against a real cluster.
    pub sim: Option<kube_sim::Handle>,
    /// Kubeconfig path for kubectl.
    pub kubeconfig: PathBuf,
    /// Namespaces created by this test (deleted on cleanup).
    namespaces: Vec<String>,
    /// Whether this test installed the widget CRD (counted in [`WIDGET_CRD_USERS`]).
    uses_widget_crd: bool,
    /// Temporary folder (kubeconfig, kubectl HOME).
    pub dir: tempfile::TempDir,
}

/// Whether the suite targets a real cluster.
pub fn real_cluster() -> Option<PathBuf> {
    std::env::var_os("MCP_E2E_KUBECONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Whether CI asked for every tool a test needs (`MCP_REQUIRE_TOOLS=1`): missing ones fail.
pub fn tools_required() -> bool {
    std::env::var("MCP_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// A CEL failure message with the printed value removed: 1.28 prints the type
/// (`Invalid value: "object": msg`), newer servers and kube-sim a scalar's value or nothing.
pub fn without_cel_value_type(message: &str) -> String {
    // 1.28 prints the type (`"object": `, `"string": `); newer servers print a scalar's value
    // (`"small": `) and nothing for objects. What follows `Invalid value: ` up to `": ` goes.
    let mut out = String::new();
    let mut rest = message;
    while let Some(at) = rest.find("Invalid value: \"") {
        let (head, tail) = rest.split_at(at + "Invalid value: ".len());
        out.push_str(head);
        rest = match tail.find("\": ") {
            Some(end) => &tail[end + 3..],
            None => tail,
        };
        if !tail.contains("\": ") {
            break;
        }
    }
    out.push_str(rest);
    out
}

/// Asserts a CEL failure message, accepting the old and the new form.
pub fn assert_cel_message(actual: &str, expected: &str) {
    assert_eq!(
        without_cel_value_type(actual),
        without_cel_value_type(expected),
        "CEL message differs (either form accepted)"
    );
}

/// The server's `major.minor`, from `/version`.
pub async fn server_version(client: &Client) -> (u32, u32) {
    let info = client.apiserver_version().await.expect("/version");
    let number = |s: &str| {
        s.trim_end_matches('+')
            .parse::<u32>()
            .expect("numeric version")
    };
    (number(&info.major), number(&info.minor))
}

/// Whether the server is at least `major.minor`; prints that the scenario (or its part) is
/// skipped for this server version when it is not.
pub async fn requires_version(client: &Client, min: (u32, u32), what: &str) -> bool {
    let version = server_version(client).await;
    if version < min {
        println!(
            "skipped for Kubernetes {}.{}: {what} needs {}.{} or newer",
            version.0, version.1, min.0, min.1
        );
        return false;
    }
    true
}

/// Polls `f` until it returns Some or the timeout passes.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A unique suffix for names on shared clusters.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..8])
}

impl TestEnv {
    /// Starts kube-sim (or connects to the real cluster).
    pub async fn start() -> TestEnv {
        Self::start_with(kube_sim::Config::default()).await
    }

    /// Starts kube-sim with a given config (ignored for real clusters).
    pub async fn start_with(config: kube_sim::Config) -> TestEnv {
        let dir = tempfile::tempdir().expect("tempdir");
        let (sim, kubeconfig) = match real_cluster() {
            Some(path) => {
                println!(
                    "running against the real cluster in MCP_E2E_KUBECONFIG={}",
                    path.display()
                );
                (None, path)
            }
            None => {
                println!(
                    "MCP_E2E_KUBECONFIG not set: running against kube-sim (the real-cluster run is skipped)"
                );
                let sim = kube_sim::KubeSim::start(config)
                    .await
                    .expect("start kube-sim");
                let path = dir.path().join("kubeconfig");
                sim.write_kubeconfig(&path).expect("write kubeconfig");
                (Some(sim), path)
            }
        };
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig).expect("read kubeconfig");
        let cfg = Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("kubeconfig");
        let client = Client::try_from(cfg).expect("client");
        TestEnv {
            client,
            sim,
            kubeconfig,
            namespaces: Vec::new(),
            uses_widget_crd: false,
            dir,
        }
    }

    /// True when running against kube-sim.
    pub fn is_sim(&self) -> bool {
        self.sim.is_some()
    }

    /// Creates a fresh namespace for the test.
    pub async fn namespace(&mut self, prefix: &str) -> String {
        let name = unique(prefix);
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ns_resource());
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
        }))
        .expect("namespace object");
        api.create(&PostParams::default(), &obj)
            .await
            .expect("create namespace");
        self.namespaces.push(name.clone());
        // Real clusters publish kube-root-ca.crt shortly after; kube-sim at once. Tests that
        // count ConfigMaps start once it is there, on both.
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
            Api::namespaced(self.client.clone(), &name);
        eventually(
            "kube-root-ca.crt published",
            Duration::from_secs(30),
            || {
                let cms = cms.clone();
                async move {
                    cms.get_opt("kube-root-ca.crt")
                        .await
                        .ok()
                        .flatten()
                        .map(|_| ())
                }
            },
        )
        .await;
        name
    }

    /// Applies the widget CRD and waits until it is served. Servers before 1.30 do not know
    /// `selectableFields`, so it is left out there (scenarios using it check the version).
    /// On a real cluster the last test to finish deletes the CRD again.
    pub async fn install_widget_crd(&mut self) -> ApiResource {
        let mut crd: Value = serde_yaml_ng::from_str(WIDGET_CRD).expect("widget crd yaml");
        if server_version(&self.client).await < (1, 30)
            && let Some(v) = crd
                .pointer_mut("/spec/versions/0")
                .and_then(Value::as_object_mut)
        {
            v.remove("selectableFields");
        }
        let mut users = WIDGET_CRD_USERS.lock().await;
        apply_crd_value(&self.client, crd).await;
        if !self.uses_widget_crd {
            *users += 1;
            self.uses_widget_crd = true;
        }
        widget_resource()
    }

    /// Deletes the namespaces this test created and stops kube-sim.
    pub async fn cleanup(mut self) {
        let namespaces = std::mem::take(&mut self.namespaces);
        let uses_widget_crd = std::mem::replace(&mut self.uses_widget_crd, false);
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ns_resource());
        for ns in &namespaces {
            // Best effort: a namespace the test already deleted is fine.
            let _ = api.delete(ns, &DeleteParams::default()).await;
        }
        if uses_widget_crd && self.sim.is_none() {
            // Holding the lock while the CRD goes keeps a concurrent test from installing it
            // into a terminating CRD.
            let mut users = WIDGET_CRD_USERS.lock().await;
            *users -= 1;
            if *users == 0 {
                let crds: Api<DynamicObject> = Api::all_with(self.client.clone(), &crd_resource());
                let name = "widgets.sim.example.io";
                let _ = crds.delete(name, &DeleteParams::default()).await;
                eventually("widget CRD removed", Duration::from_secs(120), || {
                    let crds = crds.clone();
                    async move {
                        crds.get_opt(name)
                            .await
                            .ok()
                            .flatten()
                            .is_none()
                            .then_some(())
                    }
                })
                .await;
            }
        }
        if let Some(sim) = self.sim.take() {
            sim.shutdown().await;
        }
    }
}

impl Drop for TestEnv {
    /// A test that panicked before `cleanup` still leaves a real cluster as it found it: its
    /// namespaces (and the widget CRD, if it was the last user) are deleted from a helper
    /// thread with its own runtime and client, since the test's runtime is going away.
    fn drop(&mut self) {
        if self.sim.is_some() || (self.namespaces.is_empty() && !self.uses_widget_crd) {
            return;
        }
        let namespaces = std::mem::take(&mut self.namespaces);
        let uses_widget_crd = self.uses_widget_crd;
        let kubeconfig = self.kubeconfig.clone();
        let cleaner = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(kc) = kube::config::Kubeconfig::read_from(&kubeconfig) else {
                    return;
                };
                let Ok(cfg) = Config::from_custom_kubeconfig(kc, &Default::default()).await else {
                    return;
                };
                let Ok(client) = Client::try_from(cfg) else {
                    return;
                };
                let api: Api<DynamicObject> = Api::all_with(client.clone(), &ns_resource());
                for ns in &namespaces {
                    let _ = api.delete(ns, &DeleteParams::default()).await;
                }
                if uses_widget_crd {
                    let mut users = WIDGET_CRD_USERS.lock().await;
                    *users -= 1;
                    if *users == 0 {
                        let crds: Api<DynamicObject> = Api::all_with(client, &crd_resource());
                        let _ = crds
                            .delete("widgets.sim.example.io", &DeleteParams::default())
                            .await;
                    }
                }
            });
        });
        let _ = cleaner.join();
    }
}

/// How many tests of this process use the shared widget CRD on a real cluster.
static WIDGET_CRD_USERS: tokio::sync::Mutex<usize> = tokio::sync::Mutex::const_new(0);

/// ApiResource for CustomResourceDefinitions.
pub fn crd_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        "customresourcedefinitions",
    )
}

/// Server-side applies a CRD given as YAML and waits for it to be Established and served.
pub async fn apply_crd(client: &Client, yaml: &str) {
    let crd: Value = serde_yaml_ng::from_str(yaml).expect("crd yaml");
    apply_crd_value(client, crd).await;
}

/// Server-side applies a CRD and waits for it to be Established and served.
pub async fn apply_crd_value(client: &Client, crd: Value) {
    let name = crd["metadata"]["name"]
        .as_str()
        .expect("crd name")
        .to_string();
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        "customresourcedefinitions",
    );
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let obj: DynamicObject = serde_json::from_value(crd.clone()).expect("crd object");
    api.patch(
        &name,
        &PatchParams::apply("kube-sim-tests").force(),
        &Patch::Apply(&obj),
    )
    .await
    .expect("apply crd");
    eventually("CRD established", Duration::from_secs(30), || {
        let api = api.clone();
        let name = name.clone();
        async move {
            let o = api.get(&name).await.ok()?;
            let conds = o.data.pointer("/status/conditions")?.as_array()?.clone();
            conds
                .iter()
                .any(|c| c["type"] == "Established" && c["status"] == "True")
                .then_some(())
        }
    })
    .await;
    // The group-version must be discoverable before clients use it.
    let group = crd["spec"]["group"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    eventually("CRD discoverable", Duration::from_secs(30), || {
        let client = client.clone();
        let group = group.clone();
        async move {
            kube::discovery::group(&client, &group)
                .await
                .ok()
                .map(|_| ())
        }
    })
    .await;
}

/// ApiResource for core/v1 Namespace.
pub fn ns_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Namespace"), "namespaces")
}

/// ApiResource for the test Widget kind.
pub fn widget_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("sim.example.io", "v1", "Widget"),
        "widgets",
    )
}

/// A DynamicObject from JSON.
pub fn obj(v: Value) -> DynamicObject {
    serde_json::from_value(v).expect("object json")
}
