//! The DigitalOcean API v2 client: typed calls, one pacer for the rate limit, retries with
//! capped exponential backoff and jitter, typed errors, and metrics.
//!
//! Retries (the shared [`crate::retry`] policy): 429 is retried after the wait DigitalOcean asks
//! for (the request was refused, so replaying it is safe). 5xx, timeouts and connection errors
//! are retried for reads and deletes. `POST /v2/droplets` is never replayed: a create may have
//! been committed before the failure, so it goes down the idempotent-creation recovery path
//! (`cloud::droplet_creation`). A droplet action (power, resize) is not resent blindly either:
//! after a failure the droplet's own actions are read first, and a committed one is returned.
//!
//! Every call has a deadline (`max_wait`, default a minute): neither the pacer nor a backoff
//! holds it past that; it fails with `CloudError::RateLimited { retry_after }` instead.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use backon::BackoffBuilder;
use http::{HeaderMap, Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cloud::error::{ApiErrorDetail, CloudError};
use crate::cloud::metrics::CloudMetrics;
use crate::cloud::models::{
    Account, AccountEnvelope, Action, ActionEnvelope, ActionPage, Droplet, DropletActionRequest,
    DropletCreateRequest, DropletCreateResponse, DropletEnvelope, DropletMetric, DropletPage,
    ErrorBody, MetricsResponse, Paged, Region, RegionPage, Size, SizePage, TagResourcesRequest,
};
use crate::cloud::rate_limit::{Pacer, RateLimitConfig, RateLimitHeaders};
use crate::retry::{RetryDecision, RetryPolicy};
use clock::{SharedClock, SystemClock, Timestamp};

/// DigitalOcean's production endpoint.
pub const DEFAULT_BASE_URL: &str = "https://api.digitalocean.com";

/// Items per page the client asks for (the API's maximum).
pub const PAGE_SIZE: u32 = 200;

/// Settings of a [`DoClient`].
#[derive(Debug, Clone)]
pub struct DoClientConfig {
    /// Base URL without `/v2` (the simulated world points it at loopback).
    pub base_url: String,
    /// The API token (`Debug` prints it redacted; it only leaves in the `Authorization` header).
    pub token: SecretString,
    /// Client-side rate budget.
    pub rate_limit: RateLimitConfig,
    /// Retry policy for transient failures.
    pub retry: RetryPolicy,
    /// Real-time timeout of one HTTP request.
    pub request_timeout: Duration,
    /// How long sizes and regions are cached.
    pub catalog_ttl: Duration,
    /// The longest one call may take in pacing and backoff waits (its deadline); past it the
    /// call fails with `CloudError::RateLimited { retry_after }` or its last error.
    pub max_wait: Duration,
}

impl DoClientConfig {
    /// Defaults for `token` against `base_url`.
    pub fn new(base_url: impl Into<String>, token: SecretString) -> Self {
        Self {
            base_url: base_url.into(),
            token,
            rate_limit: RateLimitConfig::default(),
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(30),
            catalog_ttl: Duration::from_secs(3600),
            max_wait: Duration::from_secs(60),
        }
    }
}

/// The client operations, used as bounded metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `GET /v2/account`.
    GetAccount,
    /// `POST /v2/droplets`.
    CreateDroplet,
    /// `GET /v2/droplets/{id}`.
    GetDroplet,
    /// `GET /v2/droplets`.
    ListDroplets,
    /// `DELETE /v2/droplets/{id}`.
    DeleteDroplet,
    /// `DELETE /v2/droplets?tag_name=`.
    DeleteDropletsByTag,
    /// `POST /v2/droplets/{id}/actions`.
    DropletAction,
    /// `GET /v2/actions/{id}`.
    GetAction,
    /// `GET /v2/droplets/{id}/actions`.
    ListDropletActions,
    /// `POST /v2/tags/{tag}/resources` (tagging a droplet).
    TagDroplet,
    /// `DELETE /v2/tags/{tag}/resources` (untagging a droplet).
    UntagDroplet,
    /// `POST /v2/tags` (creating a tag before tagging).
    CreateTag,
    /// `GET /v2/sizes`.
    ListSizes,
    /// `GET /v2/regions`.
    ListRegions,
    /// `GET /v2/monitoring/metrics/droplet/...`.
    GetMetrics,
}

impl Operation {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GetAccount => "get_account",
            Self::CreateDroplet => "create_droplet",
            Self::GetDroplet => "get_droplet",
            Self::ListDroplets => "list_droplets",
            Self::DeleteDroplet => "delete_droplet",
            Self::DeleteDropletsByTag => "delete_droplets_by_tag",
            Self::DropletAction => "droplet_action",
            Self::GetAction => "get_action",
            Self::ListDropletActions => "list_droplet_actions",
            Self::TagDroplet => "tag_droplet",
            Self::UntagDroplet => "untag_droplet",
            Self::CreateTag => "create_tag",
            Self::ListSizes => "list_sizes",
            Self::ListRegions => "list_regions",
            Self::GetMetrics => "get_metrics",
        }
    }

    /// Whether 5xx and transport failures may be replayed as they are. A create may have been
    /// committed (recovery by tag instead); an action is checked against the droplet's actions
    /// before it is sent again ([`DoClient::droplet_action`]).
    fn replayable(self) -> bool {
        !matches!(self, Self::CreateDroplet | Self::DropletAction)
    }
}

/// What a delete found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// DigitalOcean accepted the delete.
    Deleted,
    /// The droplet was already gone (404).
    AlreadyGone,
}

#[derive(Debug, Default)]
struct CatalogCache {
    sizes: Option<(Timestamp, Vec<Size>)>,
    regions: Option<(Timestamp, Vec<Region>)>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    config: DoClientConfig,
    base: String,
    clock: SharedClock,
    pacer: Pacer,
    metrics: CloudMetrics,
    cache: Mutex<CatalogCache>,
}

/// The DigitalOcean client; cheap to clone (shared pacer, connection pool and metrics).
#[derive(Debug, Clone)]
pub struct DoClient {
    inner: Arc<Inner>,
    max_wait: Duration,
}

impl DoClient {
    /// A client using the system clock.
    pub fn new(config: DoClientConfig) -> Result<Self, CloudError> {
        Self::with_parts(config, Arc::new(SystemClock), CloudMetrics::new())
    }

    /// A client with injected time and metrics (the simulated world and tests); the jitter
    /// of retries is the config's `retry.jitter`.
    pub fn with_parts(
        config: DoClientConfig,
        clock: SharedClock,
        metrics: CloudMetrics,
    ) -> Result<Self, CloudError> {
        let base = config.base_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CloudError::Config(format!(
                "base URL must start with http:// or https://, got {base:?}"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .user_agent(concat!("mcp-droplet-operator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CloudError::Config(e.to_string()))?;
        let pacer = Pacer::new(Arc::clone(&clock), config.rate_limit);
        let max_wait = config.max_wait;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                config,
                base,
                clock,
                pacer,
                metrics,
                cache: Mutex::new(CatalogCache::default()),
            }),
            max_wait,
        })
    }

    /// The same client (shared pacer and pool) whose calls wait at most `max_wait`, e.g. a
    /// finalizer's delete that must answer quickly and requeue rather than queue.
    pub fn with_max_wait(&self, max_wait: Duration) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            max_wait,
        }
    }

    /// The wait the pacer knows of now (zero when a request could go at once).
    pub fn rate_limit_wait(&self) -> Duration {
        self.inner.pacer.current_wait()
    }

    /// The client's metrics (register them with [`CloudMetrics::register`]).
    pub fn metrics(&self) -> &CloudMetrics {
        &self.inner.metrics
    }

    /// The clock the client paces with.
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// `GET /v2/account`: checks the token and reads the droplet limit.
    pub async fn account(&self) -> Result<Account, CloudError> {
        let envelope: AccountEnvelope = self
            .call_json(
                Operation::GetAccount,
                Method::GET,
                "/v2/account",
                &[],
                None::<&()>,
            )
            .await?;
        Ok(envelope.account)
    }

    /// `POST /v2/droplets` for one droplet. Not replayed on 5xx or transport errors.
    pub async fn create_droplet(
        &self,
        request: &DropletCreateRequest,
    ) -> Result<DropletCreateResponse, CloudError> {
        self.call_json(
            Operation::CreateDroplet,
            Method::POST,
            "/v2/droplets",
            &[],
            Some(request),
        )
        .await
    }

    /// `GET /v2/droplets/{id}`; `CloudError::NotFound` when it does not exist.
    pub async fn get_droplet(&self, id: u64) -> Result<Droplet, CloudError> {
        let envelope: DropletEnvelope = self
            .call_json(
                Operation::GetDroplet,
                Method::GET,
                &format!("/v2/droplets/{id}"),
                &[],
                None::<&()>,
            )
            .await?;
        Ok(envelope.droplet)
    }

    /// Every droplet of the account, following pagination (each id once).
    pub async fn list_droplets(&self) -> Result<Vec<Droplet>, CloudError> {
        self.list_all::<DropletPage>(Operation::ListDroplets, "/v2/droplets", &[])
            .await
            .map(distinct_droplets)
    }

    /// Every droplet carrying `tag`, following pagination (each id once).
    pub async fn list_droplets_by_tag(&self, tag: &str) -> Result<Vec<Droplet>, CloudError> {
        self.list_all::<DropletPage>(
            Operation::ListDroplets,
            "/v2/droplets",
            &[("tag_name", tag.to_owned())],
        )
        .await
        .map(distinct_droplets)
    }

    /// Droplets whose name matches exactly (case-insensitive at DigitalOcean).
    pub async fn list_droplets_by_name(&self, name: &str) -> Result<Vec<Droplet>, CloudError> {
        self.list_all::<DropletPage>(
            Operation::ListDroplets,
            "/v2/droplets",
            &[("name", name.to_owned())],
        )
        .await
        .map(distinct_droplets)
    }

    /// Puts `tag` on droplet `id` (creating the tag first; both calls are idempotent).
    pub async fn tag_droplet(&self, id: u64, tag: &str) -> Result<(), CloudError> {
        self.call(
            Operation::CreateTag,
            Method::POST,
            "/v2/tags",
            &[],
            Some(&serde_json::json!({ "name": tag })),
        )
        .await?;
        let body = TagResourcesRequest::droplets(&[id]);
        self.call(
            Operation::TagDroplet,
            Method::POST,
            &format!("/v2/tags/{}/resources", encode(tag)),
            &[],
            Some(&body),
        )
        .await
        .map(|_| ())
    }

    /// `DELETE /v2/droplets/{id}`; a 404 means it is already gone.
    pub async fn delete_droplet(&self, id: u64) -> Result<DeleteOutcome, CloudError> {
        match self
            .call(
                Operation::DeleteDroplet,
                Method::DELETE,
                &format!("/v2/droplets/{id}"),
                &[],
                None::<&()>,
            )
            .await
        {
            Ok(_) => Ok(DeleteOutcome::Deleted),
            Err(CloudError::NotFound(_)) => Ok(DeleteOutcome::AlreadyGone),
            Err(other) => Err(other),
        }
    }

    /// `DELETE /v2/droplets?tag_name=`: deletes every droplet carrying `tag` (a blunt GC tool).
    pub async fn delete_droplets_by_tag(&self, tag: &str) -> Result<(), CloudError> {
        self.call(
            Operation::DeleteDropletsByTag,
            Method::DELETE,
            "/v2/droplets",
            &[("tag_name", tag.to_owned())],
            None::<&()>,
        )
        .await
        .map(|_| ())
    }

    /// Removes `tag` from droplet `id` (a 404 means the tag no longer exists: nothing to do).
    pub async fn untag_droplet(&self, id: u64, tag: &str) -> Result<(), CloudError> {
        let body = TagResourcesRequest::droplets(&[id]);
        match self
            .call(
                Operation::UntagDroplet,
                Method::DELETE,
                &format!("/v2/tags/{}/resources", encode(tag)),
                &[],
                Some(&body),
            )
            .await
        {
            Ok(_) | Err(CloudError::NotFound(_)) => Ok(()),
            Err(other) => Err(other),
        }
    }

    /// `POST /v2/droplets/{id}/actions`. An action is not idempotent (two power cycles are two
    /// reboots), so after a 5xx or a transport failure the droplet's actions are read first:
    /// an action of this type started since the attempt was committed and is returned; only
    /// when there is none is the POST sent again (within the retry policy and the deadline).
    pub async fn droplet_action(
        &self,
        id: u64,
        action: &DropletActionRequest,
    ) -> Result<Action, CloudError> {
        let policy = self.inner.config.retry;
        let deadline = clock::add(self.inner.clock.now(), self.max_wait);
        let mut delays = policy.backoff().build();
        let mut failures = 0u32;
        loop {
            // DigitalOcean writes `started_at` in whole seconds.
            let attempt_start = Timestamp::from_second(self.inner.clock.now().as_second())
                .unwrap_or(Timestamp::UNIX_EPOCH);
            let failure = match self
                .call_json::<ActionEnvelope, _>(
                    Operation::DropletAction,
                    Method::POST,
                    &format!("/v2/droplets/{id}/actions"),
                    &[],
                    Some(action),
                )
                .await
            {
                Ok(envelope) => return Ok(envelope.action),
                Err(failure @ (CloudError::Server(_) | CloudError::Transport { .. })) => failure,
                Err(other) => return Err(other),
            };
            // Did the failed POST commit? A failed lookup leaves that unknown: stop rather
            // than risk a second action.
            let actions = self.list_droplet_actions(id).await.map_err(|lookup| {
                tracing::warn!(droplet = id, error = %lookup, "cannot tell whether a failed action was committed");
                failure.clone()
            })?;
            if let Some(committed) = actions.into_iter().find(|a| {
                a.kind == action.kind()
                    && a.started_at
                        .parse::<Timestamp>()
                        .is_ok_and(|started| started >= attempt_start)
            }) {
                tracing::info!(
                    droplet = id,
                    action = committed.id,
                    "a failed action POST was committed; not resending"
                );
                return Ok(committed);
            }
            failures += 1;
            let delay = match delays.next() {
                Some(delay) if failures < policy.max_attempts => delay,
                _ => return Err(failure),
            };
            if clock::add(self.inner.clock.now(), delay) > deadline {
                return Err(failure);
            }
            self.inner
                .metrics
                .record_retry(Operation::DropletAction.as_str(), failure.metric_label());
            self.inner.clock.sleep(delay).await;
        }
    }

    /// `GET /v2/droplets/{id}/actions`, every page, newest first as DigitalOcean lists them.
    pub async fn list_droplet_actions(&self, id: u64) -> Result<Vec<Action>, CloudError> {
        self.list_all::<ActionPage>(
            Operation::ListDropletActions,
            &format!("/v2/droplets/{id}/actions"),
            &[],
        )
        .await
    }

    /// `GET /v2/actions/{id}`.
    pub async fn get_action(&self, id: u64) -> Result<Action, CloudError> {
        let envelope: ActionEnvelope = self
            .call_json(
                Operation::GetAction,
                Method::GET,
                &format!("/v2/actions/{id}"),
                &[],
                None::<&()>,
            )
            .await?;
        Ok(envelope.action)
    }

    /// `GET /v2/sizes`, all pages, uncached.
    pub async fn list_sizes(&self) -> Result<Vec<Size>, CloudError> {
        self.list_all::<SizePage>(Operation::ListSizes, "/v2/sizes", &[])
            .await
    }

    /// `GET /v2/regions`, all pages, uncached.
    pub async fn list_regions(&self) -> Result<Vec<Region>, CloudError> {
        self.list_all::<RegionPage>(Operation::ListRegions, "/v2/regions", &[])
            .await
    }

    /// Sizes, cached for `catalog_ttl`; on failure a stale copy, else the embedded catalogue.
    pub async fn sizes(&self) -> Vec<Size> {
        self.catalog_list(
            "sizes",
            |c| &mut c.sizes,
            self.list_sizes(),
            crate::cloud::offline_catalog::sizes,
        )
        .await
    }

    /// Regions, cached for `catalog_ttl`; on failure a stale copy, else the embedded catalogue.
    pub async fn regions(&self) -> Vec<Region> {
        self.catalog_list(
            "regions",
            |c| &mut c.regions,
            self.list_regions(),
            crate::cloud::offline_catalog::regions,
        )
        .await
    }

    /// One catalogue list through the cache: fresh copy, else the live list, else the stale copy,
    /// else the embedded catalogue. Reading the catalogue never fails.
    async fn catalog_list<T: Clone>(
        &self,
        what: &'static str,
        slot: impl Fn(&mut CatalogCache) -> &mut Option<(Timestamp, Vec<T>)>,
        live: impl std::future::Future<Output = Result<Vec<T>, CloudError>>,
        offline: fn() -> Vec<T>,
    ) -> Vec<T> {
        let now = self.inner.clock.now();
        let ttl = self.inner.config.catalog_ttl;
        if let Some((at, items)) = slot(&mut self.lock_cache()).clone()
            && clock::elapsed(at, now) < ttl
        {
            return items;
        }
        match live.await {
            Ok(items) => {
                *slot(&mut self.lock_cache()) = Some((now, items.clone()));
                items
            }
            Err(error) => {
                tracing::warn!(%error, what, "listing the catalogue failed; using the cached or embedded one");
                slot(&mut self.lock_cache())
                    .clone()
                    .map(|(_, items)| items)
                    .unwrap_or_else(offline)
            }
        }
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, CatalogCache> {
        self.inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// One monitoring series set for a droplet over `[start, end]`.
    pub async fn droplet_metric(
        &self,
        id: u64,
        metric: DropletMetric,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<MetricsResponse, CloudError> {
        self.call_json(
            Operation::GetMetrics,
            Method::GET,
            &format!("/v2/monitoring/metrics/droplet/{}", metric.path_segment()),
            &[
                ("host_id", id.to_string()),
                ("start", clock::unix_seconds(start).to_string()),
                ("end", clock::unix_seconds(end).to_string()),
            ],
            None::<&()>,
        )
        .await
    }

    /// CPU, memory and load of a droplet over the `window` ending now (4 API calls).
    pub async fn droplet_utilization(
        &self,
        id: u64,
        window: Duration,
    ) -> Result<DropletUtilization, CloudError> {
        let end = self.inner.clock.now();
        let start = jiff::SignedDuration::try_from(window)
            .ok()
            .and_then(|w| end.checked_sub(w).ok())
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let cpu = self
            .droplet_metric(id, DropletMetric::Cpu, start, end)
            .await?;
        let total = self
            .droplet_metric(id, DropletMetric::MemoryTotal, start, end)
            .await?;
        let available = self
            .droplet_metric(id, DropletMetric::MemoryAvailable, start, end)
            .await?;
        let load = self
            .droplet_metric(id, DropletMetric::Load1, start, end)
            .await?;
        Ok(DropletUtilization::from_metrics(
            &cpu, &total, &available, &load,
        ))
    }

    async fn list_all<P>(
        &self,
        operation: Operation,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<P::Item>, CloudError>
    where
        P: Paged + DeserializeOwned,
    {
        let mut items = Vec::new();
        let mut page = 1u32;
        loop {
            let mut q = query.to_vec();
            q.push(("page", page.to_string()));
            q.push(("per_page", PAGE_SIZE.to_string()));
            let body: P = self
                .call_json(operation, Method::GET, path, &q, None::<&()>)
                .await?;
            let (mut page_items, next) = body.into_parts();
            let empty = page_items.is_empty();
            items.append(&mut page_items);
            // Follow only the page number of `next`, on our own base URL: the token must
            // never go to a host named in a response.
            match next.and_then(|link| page_of(&link)) {
                Some(next_page) if next_page > page && !empty => page = next_page,
                _ => return Ok(items),
            }
        }
    }

    async fn call_json<T: DeserializeOwned, B: Serialize>(
        &self,
        operation: Operation,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<T, CloudError> {
        let bytes = self.call(operation, method, path, query, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| CloudError::Decode {
            operation: operation.as_str(),
            message: e.to_string(),
        })
    }

    /// Sends one logical request with pacing and retries; returns the body of a 2xx.
    async fn call<B: Serialize>(
        &self,
        operation: Operation,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<Vec<u8>, CloudError> {
        let inner = &self.inner;
        let url = with_query(&format!("{}{}", inner.base, path), query);
        let deadline = clock::add(inner.clock.now(), self.max_wait);
        let policy = RetryPolicy {
            deadline: Some(self.max_wait),
            ..inner.config.retry
        };
        policy
            .run(
                &inner.clock,
                || self.send_once(operation, &method, &url, body, deadline),
                |failure| match failure {
                    // A 429 from the server: the pacer now blocks for the wait it asked for,
                    // and the next attempt fails fast if that passes the deadline.
                    CloudError::RateLimited {
                        detail: Some(_), ..
                    } => RetryDecision::RetryAfter(Duration::ZERO),
                    CloudError::Server(_) | CloudError::Transport { .. } => {
                        RetryDecision::transient_if(operation.replayable())
                    }
                    _ => RetryDecision::Stop,
                },
                |failure, delay| {
                    let reason = failure.metric_label();
                    inner.metrics.record_retry(operation.as_str(), reason);
                    tracing::debug!(operation = operation.as_str(), ?delay, error = %failure, "retrying");
                },
            )
            .await
    }

    /// One attempt: a turn from the pacer (within `deadline`), the request, the response.
    async fn send_once<B: Serialize>(
        &self,
        operation: Operation,
        method: &Method,
        url: &str,
        body: Option<&B>,
        deadline: Timestamp,
    ) -> Result<Vec<u8>, CloudError> {
        let inner = &self.inner;
        inner
            .pacer
            .acquire(deadline)
            .await
            .map_err(|refused| CloudError::RateLimited {
                retry_after: refused.retry_after,
                detail: None,
            })?;
        let mut request = inner
            .http
            .request(method.clone(), url)
            .bearer_auth(inner.config.token.expose_secret().trim())
            .header(http::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                let headers = response.headers().clone();
                let limits = RateLimitHeaders::from_headers(&headers);
                inner.pacer.observe(&limits, status.as_u16());
                if let Some(remaining) = limits.remaining {
                    inner.metrics.set_rate_limit_remaining(remaining);
                }
                inner
                    .metrics
                    .record_request(operation.as_str(), Some(status.as_u16()));
                let bytes = response.bytes().await.map_err(|e| CloudError::Transport {
                    operation: operation.as_str(),
                    message: e.without_url().to_string(),
                })?;
                if status.is_success() {
                    Ok(bytes.to_vec())
                } else {
                    let mut error = error_from_response(status, &headers, &bytes, limits);
                    if let CloudError::RateLimited { retry_after, .. } = &mut error {
                        // The pacer's block is the better estimate (it knows the reset too).
                        *retry_after = inner.pacer.current_wait().max(*retry_after);
                    }
                    Err(error)
                }
            }
            Err(e) => {
                inner.metrics.record_request(operation.as_str(), None);
                Err(CloudError::Transport {
                    operation: operation.as_str(),
                    message: describe_transport_error(&e),
                })
            }
        }
    }
}

/// The droplets with each id once (a droplet created or deleted while the pages were read can
/// shift into a second page); the later copy is kept.
pub fn distinct_droplets(droplets: Vec<Droplet>) -> Vec<Droplet> {
    let mut seen = std::collections::HashMap::with_capacity(droplets.len());
    let mut out: Vec<Droplet> = Vec::with_capacity(droplets.len());
    for droplet in droplets {
        match seen.get(&droplet.id) {
            Some(&index) => out[index] = droplet,
            None => {
                seen.insert(droplet.id, out.len());
                out.push(droplet);
            }
        }
    }
    out
}

fn error_from_response(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    limits: RateLimitHeaders,
) -> CloudError {
    let header_request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let decoded = serde_json::from_slice::<ErrorBody>(body).ok().or_else(|| {
        // A non-JSON body becomes the message, as godo does.
        let text = String::from_utf8_lossy(body).trim().to_owned();
        (!text.is_empty()).then(|| ErrorBody {
            message: text.chars().take(512).collect(),
            ..ErrorBody::default()
        })
    });
    let detail = ApiErrorDetail::new(status.as_u16(), decoded, header_request_id);
    CloudError::from_status(detail, limits.retry_after.map(Duration::from_secs))
}

fn describe_transport_error(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    // Without the URL: the message stays short and bounded; the token is never in it anyway.
    let mut message = format!("{kind}: {}", DisplaySource(error));
    if message.len() > 512 {
        let cut = (0..=512)
            .rev()
            .find(|&i| message.is_char_boundary(i))
            .unwrap_or(0);
        message.truncate(cut);
    }
    message
}

struct DisplaySource<'a>(&'a reqwest::Error);

impl std::fmt::Display for DisplaySource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(self.0);
        let mut first = true;
        while let Some(s) = source {
            if !first {
                f.write_str(": ")?;
            }
            write!(f, "{s}")?;
            first = false;
            source = s.source();
        }
        if first {
            f.write_str("no detail")?;
        }
        Ok(())
    }
}

/// `url` with `query` appended, values percent-encoded (RFC 3986 unreserved kept).
fn with_query(url: &str, query: &[(&str, String)]) -> String {
    let mut out = url.to_owned();
    for (i, (key, value)) in query.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(key);
        out.push('=');
        out.push_str(&encode(value));
    }
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters (query values, path parts).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The `page` query parameter of a pagination link.
pub fn page_of(link: &str) -> Option<u32> {
    let query = link.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == "page").then(|| value.parse().ok()).flatten()
    })
}

/// A droplet's recent CPU, memory and load, derived from DigitalOcean monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DropletUtilization {
    /// Busy share of CPU time over the window, 0..=1 (None without data).
    pub cpu: Option<f64>,
    /// Used share of memory at the end of the window, 0..=1.
    pub memory: Option<f64>,
    /// The last 1-minute load average.
    pub load1: Option<f64>,
}

impl DropletUtilization {
    /// Computes utilization from the four monitoring responses (pure).
    pub fn from_metrics(
        cpu: &MetricsResponse,
        memory_total: &MetricsResponse,
        memory_available: &MetricsResponse,
        load1: &MetricsResponse,
    ) -> Self {
        let memory = match (last_value(memory_total), last_value(memory_available)) {
            (Some(total), Some(available)) if total > 0.0 => {
                Some(((total - available) / total).clamp(0.0, 1.0))
            }
            _ => None,
        };
        Self {
            cpu: cpu_busy_share(cpu),
            memory,
            load1: last_value(load1),
        }
    }
}

fn last_value(response: &MetricsResponse) -> Option<f64> {
    response
        .data
        .result
        .first()
        .and_then(|s| s.points().last().map(|(_, v)| *v))
}

/// `1 - Δidle / Σ Δ(all modes)` over the series' first and last points.
pub fn cpu_busy_share(cpu: &MetricsResponse) -> Option<f64> {
    let mut idle = 0.0;
    let mut total = 0.0;
    for series in &cpu.data.result {
        let points = series.points();
        let (Some(first), Some(last)) = (points.first(), points.last()) else {
            continue;
        };
        let delta = (last.1 - first.1).max(0.0);
        total += delta;
        if series.metric.get("mode").map(String::as_str) == Some("idle") {
            idle += delta;
        }
    }
    (total > 0.0).then(|| (1.0 - idle / total).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_never_prints() {
        let config = DoClientConfig::new("http://127.0.0.1:1", "dop_v1_secret".into());
        assert!(!format!("{config:?}").contains("secret"));
    }

    #[test]
    fn a_droplet_listed_on_two_pages_counts_once() {
        let droplet = |id: u64, name: &str| -> Droplet {
            serde_json::from_value(serde_json::json!({"id": id, "name": name})).expect("droplet")
        };
        let listed = vec![droplet(1, "a"), droplet(2, "b"), droplet(1, "a-later")];
        let distinct = distinct_droplets(listed);
        let seen: Vec<(u64, &str)> = distinct.iter().map(|d| (d.id, d.name.as_str())).collect();
        assert_eq!(seen, vec![(1, "a-later"), (2, "b")]);
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            with_query(
                "http://h/v2/droplets",
                &[("tag_name", "a:b c".to_owned()), ("page", "2".to_owned())]
            ),
            "http://h/v2/droplets?tag_name=a%3Ab%20c&page=2"
        );
    }

    #[test]
    fn page_number_is_read_from_links() {
        assert_eq!(
            page_of("https://api.digitalocean.com/v2/sizes?page=2&per_page=1"),
            Some(2)
        );
        assert_eq!(page_of("https://x/v2/sizes?per_page=1&page=13"), Some(13));
        assert_eq!(page_of("https://x/v2/sizes"), None);
    }

    #[test]
    fn error_body_maps_to_typed_error() {
        let body = br#"{"id":"unprocessable_entity","message":"creating this/these droplet(s) will exceed your droplet limit","request_id":"r1"}"#;
        let error = error_from_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &HeaderMap::new(),
            body,
            RateLimitHeaders::default(),
        );
        match error {
            CloudError::Unprocessable(detail) => {
                assert_eq!(detail.id, "unprocessable_entity");
                assert!(detail.message.contains("droplet limit"));
                assert_eq!(detail.request_id.as_deref(), Some("r1"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
