//! kube-sim: an in-process Kubernetes API server for the simulated world and the tests.
//!
//! Plain HTTP on loopback, generic over kinds: built-in kinds come from a static table and
//! custom kinds appear when their CustomResourceDefinition is applied. See docs/kube-sim.md.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kube_sim::SimError> {
//! let sim = kube_sim::KubeSim::start(kube_sim::Config::default()).await?;
//! sim.write_kubeconfig(std::path::Path::new("/tmp/kubeconfig"))?;
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod apply;
pub mod cel;
pub mod cel_cost;
pub mod discovery;
pub mod gc;
pub mod kubeconfig;
mod object_metadata;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod rbac;
pub mod resources;
pub mod selector;
pub mod server;
pub mod status;
pub mod store;
pub mod table;
pub mod validation;
pub mod watch;

use secrecy::ExposeSecret;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch as tokio_watch;

/// A bearer token: a [`secrecy::SecretString`] (redacted `Debug`, zeroized on drop) with the
/// constant-time comparison the server needs. Kept as a named type so callers need not change.
#[derive(Clone)]
pub struct BearerToken(SecretString);

pub use secrecy::SecretString;

impl BearerToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        BearerToken(SecretString::from(token.into()))
    }

    /// The token text, for writing a kubeconfig or an Authorization header.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether a presented token equals this one.
    pub fn matches(&self, presented: &str) -> bool {
        // The time depends only on the presented token's length, never on the real token's
        // length or on how much of it was guessed right.
        let expected = self.expose().as_bytes();
        let mut diff = u8::from(expected.len() != presented.len());
        for (i, byte) in presented.bytes().enumerate() {
            diff |= expected.get(i).copied().unwrap_or(0) ^ byte;
        }
        diff == 0
    }
}

impl From<SecretString> for BearerToken {
    fn from(secret: SecretString) -> Self {
        BearerToken(secret)
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl std::fmt::Display for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// How to start the server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Require this bearer token on every request.
    pub token: Option<BearerToken>,
    /// Number of changes kept for watch resumption (older versions get 410 Gone).
    pub history_limit: usize,
    /// Period of BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// Source of every timestamp (creation, deletion, conditions, events, leases, managed
    /// fields): the system clock by default, the simulated world's clock when it runs faster.
    pub clock: clock::SharedClock,
    /// RBAC authorization (off by default: any holder of `token` may do anything). With it,
    /// `token` is the superuser's (group `system:masters`; a random one when unset).
    pub rbac: Option<rbac::Rbac>,
}

impl Config {
    /// This configuration with timestamps taken from `clock`.
    pub fn with_clock(mut self, clock: clock::SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// This configuration with RBAC authorization and the tokens of `rbac`.
    pub fn with_rbac(mut self, rbac: rbac::Rbac) -> Self {
        self.rbac = Some(rbac);
        self
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: None,
            history_limit: 10_000,
            bookmark_interval: Duration::from_secs(5),
            clock: Arc::new(clock::SystemClock),
            rbac: None,
        }
    }
}

/// Errors starting or driving the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Binding the listen address failed.
    #[error("binding {addr}: {source}")]
    Bind {
        /// Address we tried.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// Writing the kubeconfig failed.
    #[error("writing kubeconfig {path}: {source}")]
    Kubeconfig {
        /// Target path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// An in-process apply was rejected.
    #[error("apply rejected: {0}")]
    Api(Box<status::ApiError>),
    /// A call that needs RBAC on a server started without it.
    #[error("kube-sim was started without RBAC (Config::with_rbac)")]
    RbacDisabled,
    /// YAML documents could not be read.
    #[error("reading YAML documents: {0}")]
    Yaml(String),
}

impl From<status::ApiError> for SimError {
    fn from(e: status::ApiError) -> Self {
        SimError::Api(Box::new(e))
    }
}

/// Where and how clients reach a running simulator.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL, e.g. `http://127.0.0.1:34567`.
    pub url: String,
    /// Bearer token, if required.
    pub token: Option<BearerToken>,
}

/// Entry point.
pub struct KubeSim;

impl KubeSim {
    /// Binds, starts serving in the background and returns a handle.
    pub async fn start(config: Config) -> Result<Handle, SimError> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: config.listen,
            source,
        })?;
        let (stop_tx, stop_rx) = tokio_watch::channel(false);
        let (token, authorizer) = match &config.rbac {
            Some(settings) => {
                let admin = config.token.clone().unwrap_or_else(rbac::random_token);
                let authorizer = rbac::authorizer::Authorizer::new(admin.clone(), settings);
                (Some(admin), Some(authorizer))
            }
            None => (config.token.clone(), None),
        };
        let shared = Arc::new(server::Shared {
            state: Mutex::new(store::State::new(config.history_limit, config.clock.now())),
            token: token.clone(),
            rbac: authorizer,
            addr,
            bookmark_interval: config.bookmark_interval,
            shutdown: stop_rx.clone(),
            clock: config.clock.clone(),
        });
        if shared.rbac.is_some() {
            // The defaults the real server creates at start (bootstrap-roles).
            for obj in rbac::bootstrap_objects() {
                apply_object(&shared, &obj, "kube-apiserver")?;
            }
        }
        let task = serve(listener, shared.clone(), None);
        tracing::info!(%addr, "kube-sim listening");
        Ok(Handle {
            addr,
            token,
            shared,
            stop: stop_tx,
            task,
            extra_listeners: Mutex::new(Vec::new()),
        })
    }
}

/// Serves `shared` on `listener` until shutdown; with `user`, every request on it is that
/// user's (see [`Handle::serve_as`]).
fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<server::Shared>,
    user: Option<rbac::UserInfo>,
) -> tokio::task::JoinHandle<()> {
    let mut stop = shared.shutdown.clone();
    let s = shared;
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let s = s.clone();
        let user = user.clone();
        async move { server::handle(s, req, user).await }
    });
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                // Either a shutdown signal or the sender being dropped ends serving.
                let _ = stop.wait_for(|v| *v).await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "kube-sim server stopped with an error");
        }
    })
}

/// A running simulator.
pub struct Handle {
    addr: SocketAddr,
    token: Option<BearerToken>,
    shared: Arc<server::Shared>,
    stop: tokio_watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    extra_listeners: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Handle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// URL and token for building a client.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            url: self.url(),
            token: self.token.clone(),
        }
    }

    /// Writes a kubeconfig that points at this server (mode 0600).
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), SimError> {
        kubeconfig::write(path, &self.url(), self.token.as_ref()).map_err(|source| {
            SimError::Kubeconfig {
                path: path.display().to_string(),
                source,
            }
        })
    }

    /// Server-side applies an object in-process (e.g. the operator's CRDs at start-up).
    pub fn apply(&self, obj: &Value, manager: &str) -> Result<Value, SimError> {
        apply_object(&self.shared, obj, manager)
    }

    /// Applies documents in order (e.g. a chart's rendered RBAC), creating the namespaces they
    /// need first; namespaced documents without a namespace go to `default_namespace`.
    pub fn apply_documents(
        &self,
        documents: &[Value],
        default_namespace: &str,
        manager: &str,
    ) -> Result<(), SimError> {
        let namespaced = |doc: &Value| {
            let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
            let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
            self.shared
                .lock()
                .registry
                .find_kind(api_version, kind)
                .is_some_and(|info| info.namespaced)
        };
        let mut prepared = Vec::with_capacity(documents.len());
        let mut namespaces = std::collections::BTreeSet::new();
        for doc in documents {
            let mut doc = doc.clone();
            if namespaced(&doc) {
                if doc
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .is_none()
                {
                    doc["metadata"]["namespace"] = Value::from(default_namespace);
                }
                if let Some(ns) = doc.pointer("/metadata/namespace").and_then(Value::as_str) {
                    namespaces.insert(ns.to_string());
                }
            }
            prepared.push(doc);
        }
        for ns in namespaces {
            let exists = {
                let st = self.shared.lock();
                st.registry
                    .find("", "v1", "namespaces")
                    .is_some_and(|info| st.get(&info, "", &ns).is_ok())
            };
            if !exists {
                let obj = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                apply_object(&self.shared, &obj, manager)?;
            }
        }
        for doc in &prepared {
            apply_object(&self.shared, doc, manager)?;
        }
        Ok(())
    }

    /// Issues a token for the service account `namespace/name` (RBAC only); the account object
    /// itself is not needed.
    pub fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<BearerToken, SimError> {
        self.user_token(rbac::UserInfo::service_account(namespace, name))
    }

    /// Issues a token that authenticates as `user` (RBAC only).
    pub fn user_token(&self, user: rbac::UserInfo) -> Result<BearerToken, SimError> {
        let authorizer = self.shared.rbac.as_ref().ok_or(SimError::RbacDisabled)?;
        let token = rbac::random_token();
        authorizer.add_user(token.clone(), user);
        Ok(token)
    }

    /// Serves the same API on another loopback port where every request is `user`'s, without
    /// a token (RBAC only). For clients that never send a token over plain HTTP, as kubectl
    /// and Helm (client-go reads credentials only for TLS servers). Returns the base URL.
    pub async fn serve_as(&self, user: rbac::UserInfo) -> Result<String, SimError> {
        if self.shared.rbac.is_none() {
            return Err(SimError::RbacDisabled);
        }
        let want = SocketAddr::new(self.addr.ip(), 0);
        let listener = tokio::net::TcpListener::bind(want)
            .await
            .map_err(|source| SimError::Bind { addr: want, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr: want, source })?;
        tracing::info!(%addr, user = %user.name, "kube-sim listening for one user");
        let task = serve(listener, self.shared.clone(), Some(user));
        self.extra_listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task);
        Ok(format!("http://{addr}"))
    }

    /// URL and another token (e.g. a service account's) for building a client.
    pub fn client_config_with(&self, token: &BearerToken) -> ClientConfig {
        ClientConfig {
            url: self.url(),
            token: Some(token.clone()),
        }
    }

    /// Writes a kubeconfig with another token (mode 0600).
    pub fn write_kubeconfig_with(&self, path: &Path, token: &BearerToken) -> Result<(), SimError> {
        kubeconfig::write(path, &self.url(), Some(token)).map_err(|source| SimError::Kubeconfig {
            path: path.display().to_string(),
            source,
        })
    }

    /// The roles and bindings as the authorizer sees them now.
    pub fn rbac_policy(&self) -> Result<rbac::Policy, SimError> {
        let authorizer = self.shared.rbac.as_ref().ok_or(SimError::RbacDisabled)?;
        let st = self.shared.lock();
        Ok(authorizer.policy(&st).as_ref().clone())
    }

    /// What RBAC allowed (and by which rule) and denied so far.
    pub fn access_record(&self) -> Result<rbac::AccessRecord, SimError> {
        let authorizer = self.shared.rbac.as_ref().ok_or(SimError::RbacDisabled)?;
        Ok(authorizer.record())
    }

    /// The rules of the stored roles (defaults aside) that allowed no request so far.
    pub fn unused_rules(&self) -> Result<Vec<rbac::UnusedRule>, SimError> {
        let policy = self.rbac_policy()?;
        Ok(self.access_record()?.unused_rules(&policy))
    }

    /// For each rule of the stored roles (defaults aside), the permissions (verb × apiGroup ×
    /// resource as written) that allowed no request so far: least privilege, one verb at a time.
    pub fn unused_permissions(&self) -> Result<Vec<rbac::RulePermission>, SimError> {
        let policy = self.rbac_policy()?;
        Ok(self.access_record()?.unused_permissions(&policy))
    }

    /// Forgets what was recorded (e.g. after a test's set-up).
    pub fn clear_access_record(&self) -> Result<(), SimError> {
        let authorizer = self.shared.rbac.as_ref().ok_or(SimError::RbacDisabled)?;
        authorizer.clear_record();
        Ok(())
    }

    /// Number of stored objects (for benchmarks and diagnostics).
    pub fn object_count(&self) -> usize {
        self.shared.lock().object_count()
    }

    /// Stops serving, ends open watches and waits for the server task.
    pub async fn shutdown(self) {
        // Receivers may already be gone if the server stopped on its own.
        let _ = self.stop.send(true);
        let extra = std::mem::take(
            &mut *self
                .extra_listeners
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for task in std::iter::once(self.task).chain(extra) {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "kube-sim task ended abnormally");
            }
        }
    }
}

/// Server-side applies one object in-process, with `force`, as `manager`.
fn apply_object(shared: &server::Shared, obj: &Value, manager: &str) -> Result<Value, SimError> {
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut st = shared.lock();
    let info =
        st.registry
            .find_kind(api_version, kind)
            .ok_or_else(|| status::ApiError::NotFound {
                message: format!("no matches for kind \"{kind}\" in version \"{api_version}\""),
                name: name.to_string(),
                group: String::new(),
                kind: kind.to_string(),
            })?;
    let (_, version) = resources::split_api_version(api_version);
    let ns = if info.namespaced {
        obj.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string()
    } else {
        String::new()
    };
    let opts = store::WriteOptions {
        manager: manager.to_string(),
        force: true,
        ..Default::default()
    };
    let now = shared.clock.now();
    let out = st.patch(
        &info,
        version,
        &ns,
        name,
        patch::PatchKind::Apply,
        obj,
        "",
        &opts,
        now,
    )?;
    st.collect_garbage(now);
    Ok(out.object)
}
