//! HTTP front end: routes Kubernetes API paths to the store, encodes answers (objects, lists,
//! Tables, metadata-only forms, watch streams) and errors as `Status`.

use crate::patch::PatchKind;
use crate::rbac::authorizer::Authorizer;
use crate::rbac::{Attributes, Decision, UserInfo};
use crate::resources::ResourceInfo;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{DeleteOptions, FieldValidation, ListQuery, State, WriteOptions, WriteOutcome};
use crate::table::{self, IncludeObject};
use crate::watch::{self, Rendering, WatchSpec};
use crate::{BearerToken, discovery, openapi};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch as tokio_watch;

/// State shared by all requests.
pub struct Shared {
    /// The store (one lock; no request awaits while holding it).
    pub state: Mutex<State>,
    /// Required bearer token, if any (the superuser's when RBAC is on).
    pub token: Option<BearerToken>,
    /// RBAC: the token table, the compiled policy and the access record, when enabled.
    pub rbac: Option<Authorizer>,
    /// Address we listen on (for `/api` serverAddressByClientCIDRs).
    pub addr: SocketAddr,
    /// Bookmark period for watches.
    pub bookmark_interval: Duration,
    /// Flips to true on shutdown so watches end.
    pub shutdown: tokio_watch::Receiver<bool>,
    /// Source of every timestamp the server writes.
    pub clock: clock::SharedClock,
}

impl Shared {
    /// Locks the store, recovering from a poisoned lock (a panic in one request must not
    /// take the whole server down).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

fn error_response(e: &ApiError) -> Response {
    let code = StatusCode::from_u16(e.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &e.to_status())
}

fn with_warnings(mut r: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = format!("299 - {:?}", w);
        if let Ok(v) = HeaderValue::from_str(&text) {
            r.headers_mut().append(header::WARNING, v);
        }
    }
    r
}

/// A parsed resource URL.
#[derive(Debug, Clone)]
struct Target {
    group: String,
    version: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_resource_path(segs: &[&str]) -> Option<Target> {
    let (group, version, rest) = match segs {
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return None,
    };
    let t = |ns: Option<&str>, plural: &str, name: Option<&str>, sub: Option<&str>| Target {
        group: group.clone(),
        version: version.clone(),
        namespace: ns.map(str::to_string),
        plural: plural.to_string(),
        name: name.map(str::to_string),
        subresource: sub.map(str::to_string),
    };
    match rest {
        [plural] => Some(t(None, plural, None, None)),
        ["namespaces", ns, sub] if group.is_empty() && (*sub == "status" || *sub == "finalize") => {
            Some(t(None, "namespaces", Some(ns), Some(sub)))
        }
        ["namespaces", ns, plural] => Some(t(Some(ns), plural, None, None)),
        ["namespaces", ns, plural, name] => Some(t(Some(ns), plural, Some(name), None)),
        ["namespaces", ns, plural, name, sub] => Some(t(Some(ns), plural, Some(name), Some(sub))),
        [plural, name] => Some(t(None, plural, Some(name), None)),
        [plural, name, sub] => Some(t(None, plural, Some(name), Some(sub))),
        _ => None,
    }
}

fn query_map(req: &Request) -> HashMap<String, String> {
    let q = req.uri().query().unwrap_or("");
    axum::extract::Query::<HashMap<String, String>>::try_from_uri(req.uri())
        .map(|x| x.0)
        .unwrap_or_else(|_| {
            tracing::debug!(query = q, "unparsable query");
            HashMap::new()
        })
}

fn accept_form(headers: &HeaderMap) -> Option<&'static str> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // The first acceptable alternative wins, as in the real server's negotiation.
    for alt in accept.split(',') {
        if alt.contains("as=Table") {
            return Some("Table");
        }
        if alt.contains("as=PartialObjectMetadataList") || alt.contains("as=PartialObjectMetadata")
        {
            return Some("Metadata");
        }
        if alt.trim().starts_with("application/json")
            || alt.trim().starts_with("*/*")
            || alt.trim().is_empty()
        {
            return None;
        }
    }
    None
}

/// Whether the client asks for aggregated discovery (`apidiscovery.k8s.io/v2`) before plain JSON.
fn wants_aggregated(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    for alt in accept.split(',') {
        let params: Vec<&str> = alt.split(';').map(str::trim).collect();
        if params.contains(&"as=APIGroupDiscoveryList") {
            if params.contains(&"v=v2") && params.contains(&"g=apidiscovery.k8s.io") {
                return true;
            }
            // Only v2 is served; try the client's next alternative.
            continue;
        }
        return false;
    }
    false
}

fn include_object(q: &HashMap<String, String>) -> IncludeObject {
    match q.get("includeObject").map(String::as_str) {
        Some("None") => IncludeObject::None,
        Some("Object") => IncludeObject::Object,
        _ => IncludeObject::Metadata,
    }
}

/// The default field manager: the User-Agent up to the first '/', as the real server does.
fn manager_from(q: &HashMap<String, String>, headers: &HeaderMap) -> String {
    if let Some(m) = q.get("fieldManager") {
        return m.clone();
    }
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.split('/').next().unwrap_or(ua).to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn write_options(
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<WriteOptions, ApiError> {
    let validation = match q.get("fieldValidation").map(String::as_str) {
        None | Some("") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Warn") => FieldValidation::Warn,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "Invalid value: \"{other}\": fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\""
            )));
        }
    };
    Ok(WriteOptions {
        manager: manager_from(q, headers),
        dry_run: q.get("dryRun").is_some_and(|d| d == "All"),
        validation,
        force: q.get("force").is_some_and(|f| f == "true"),
    })
}

fn list_query(
    info: &ResourceInfo,
    t: &Target,
    q: &HashMap<String, String>,
) -> Result<ListQuery, ApiError> {
    let labels = match q.get("labelSelector").filter(|s| !s.is_empty()) {
        Some(s) => Some(LabelSelector::parse(s).map_err(|e| ApiError::BadRequest(e.to_string()))?),
        None => None,
    };
    let is_event = info.kind == "Event";
    let fields = match q.get("fieldSelector").filter(|s| !s.is_empty()) {
        Some(s) => Some(
            FieldSelector::parse(
                s,
                is_event,
                info.version(&t.version)
                    .map(|v| v.selectable_fields.as_slice())
                    .unwrap_or_default(),
            )
            .map_err(|e| ApiError::BadRequest(e.to_string()))?,
        ),
        None => None,
    };
    Ok(ListQuery {
        namespace: t.namespace.clone(),
        labels,
        fields,
        limit: q.get("limit").and_then(|l| l.parse().ok()),
        continue_token: q.get("continue").filter(|c| !c.is_empty()).cloned(),
    })
}

fn parse_body(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes).or_else(|_| {
        serde_yaml_ng::from_slice::<Value>(bytes)
            .map_err(|e| ApiError::BadRequest(format!("error decoding request body: {e}")))
    })
}

fn present(info: &ResourceInfo, version: &str, obj: &Value) -> Value {
    let mut o = obj.clone();
    o["apiVersion"] = json!(info.api_version(version));
    o
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Authentication, then (with RBAC) authorization. `Ok(None)` means "no RBAC: allowed";
/// `Ok(Some(user))` is the authenticated, authorized user.
fn admit(
    shared: &Shared,
    req: &Request,
    listener_user: Option<UserInfo>,
) -> Result<Option<UserInfo>, ApiError> {
    let presented = bearer_token(req.headers());
    let Some(authorizer) = &shared.rbac else {
        if let Some(token) = &shared.token
            && !presented.is_some_and(|t| token.matches(t))
        {
            return Err(ApiError::Unauthorized);
        }
        return Ok(None);
    };
    // Anonymous requests are refused, as with `--anonymous-auth=false`.
    let user = match listener_user {
        Some(user) => user,
        None => presented
            .and_then(|t| authorizer.authenticate(t))
            .ok_or(ApiError::Unauthorized)?,
    };
    let policy = authorizer.policy(&shared.lock());
    let header_text = |name: &str| {
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let impersonated_user = header_text("Impersonate-User").into_iter().next();
    let user = authorizer.impersonate(
        &policy,
        user,
        impersonated_user.as_deref(),
        &header_text("Impersonate-Group"),
    )?;
    let attributes =
        Attributes::from_request(req.method().as_str(), req.uri().path(), &query_map(req));
    match authorizer.authorize(&policy, &user, &attributes) {
        Decision::Privileged | Decision::Allowed { .. } => Ok(Some(user)),
        Decision::Denied => {
            tracing::debug!(user = %user.name, ?attributes, "kube-sim RBAC denied a request");
            Err(crate::rbac::policy::forbidden(&user, &attributes))
        }
    }
}

/// Entry point for every request. `listener_user` is set on a listener that serves one user
/// (`Handle::serve_as`): its requests need no token.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request,
    listener_user: Option<UserInfo>,
) -> Response {
    let user = match admit(&shared, &req, listener_user) {
        Ok(user) => user,
        Err(e) => return error_response(&e),
    };
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method().clone();
    match (method.clone(), segs.as_slice()) {
        (Method::GET, ["version"]) => return json_response(StatusCode::OK, &discovery::version()),
        (Method::GET, ["healthz" | "readyz" | "livez"]) => {
            return (StatusCode::OK, "ok").into_response();
        }
        (Method::GET, ["api" | "apis"]) if wants_aggregated(req.headers()) => {
            let st = shared.lock();
            let doc = discovery::aggregated(&st.registry, segs[0] == "api");
            let bytes = serde_json::to_vec(&doc).unwrap_or_default();
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, discovery::AGGREGATED_CONTENT_TYPE)],
                bytes,
            )
                .into_response();
        }
        (Method::GET, ["api"]) => {
            return json_response(
                StatusCode::OK,
                &discovery::core_versions(&shared.addr.to_string()),
            );
        }
        (Method::GET, ["apis"]) => {
            let st = shared.lock();
            return json_response(StatusCode::OK, &discovery::group_list(&st.registry));
        }
        (Method::GET, ["api", v]) => {
            let st = shared.lock();
            return match discovery::resource_list(&st.registry, "", v) {
                Some(d) => json_response(StatusCode::OK, &d),
                None => error_response(&ApiError::not_found("", "", v)),
            };
        }
        (Method::GET, ["apis", g]) => {
            let st = shared.lock();
            return match discovery::group(&st.registry, g) {
                Some(d) => json_response(StatusCode::OK, &d),
                None => error_response(&ApiError::not_found("", "", g)),
            };
        }
        (Method::GET, ["apis", g, v]) => {
            let st = shared.lock();
            return match discovery::resource_list(&st.registry, g, v) {
                Some(d) => json_response(StatusCode::OK, &d),
                None => error_response(&ApiError::not_found("", "", &format!("{g}/{v}"))),
            };
        }
        (Method::GET, ["openapi", "v3"]) => {
            let st = shared.lock();
            return json_response(StatusCode::OK, &openapi::v3_index(&st.registry));
        }
        (Method::GET, ["openapi", "v3", "api", v]) => {
            let st = shared.lock();
            return match openapi::v3_group_version(&st.registry, "", v) {
                Some(d) => json_response(StatusCode::OK, &d),
                None => error_response(&ApiError::not_found("", "", v)),
            };
        }
        (Method::GET, ["openapi", "v3", "apis", g, v]) => {
            let st = shared.lock();
            return match openapi::v3_group_version(&st.registry, g, v) {
                Some(d) => json_response(StatusCode::OK, &d),
                None => error_response(&ApiError::not_found("", "", &format!("{g}/{v}"))),
            };
        }
        (Method::GET, ["openapi", "v2"]) => {
            let accept = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if accept.contains("protobuf") && !accept.contains("json") {
                // kubectl only accepts the protobuf form. A Document holding just
                // `swagger: "2.0"` (field 1) is valid and lists no models, so kubectl relies on
                // the v3 documents and server-side field validation.
                let body: Vec<u8> = [&[0x0a, 0x03][..], b"2.0"].concat();
                return (
                    StatusCode::OK,
                    [(
                        header::CONTENT_TYPE,
                        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                    )],
                    body,
                )
                    .into_response();
            }
            let st = shared.lock();
            return json_response(StatusCode::OK, &openapi::v2(&st.registry));
        }
        _ => {}
    }
    let Some(target) = parse_resource_path(&segs) else {
        return error_response(&ApiError::NotFound {
            message: "the server could not find the requested resource".into(),
            name: String::new(),
            group: String::new(),
            kind: String::new(),
        });
    };
    let result = resource_request(shared, req, target, user).await;
    let response = match result {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    tracing::debug!(%method, path, status = response.status().as_u16(), "kube-sim request");
    response
}

/// An apply patch that creates its object is authorized for `create` too, as the real server
/// does (`withAuthorization` around the patcher's create validation, in
/// `endpoints/handlers/patch.go`): `patch` alone lets a client change objects, not make them.
fn authorize_create_on_apply(
    shared: &Shared,
    st: &crate::store::State,
    user: Option<&UserInfo>,
    info: &crate::resources::ResourceInfo,
    ns: &str,
    name: &str,
) -> Result<(), ApiError> {
    let (Some(authorizer), Some(user)) = (&shared.rbac, user) else {
        return Ok(());
    };
    if st.get(info, ns, name).is_ok() {
        return Ok(());
    }
    let attributes = Attributes::Resource(crate::rbac::ResourceAttributes {
        verb: "create".into(),
        group: info.group.clone(),
        resource: info.plural.clone(),
        subresource: String::new(),
        namespace: ns.to_string(),
        name: name.to_string(),
    });
    let policy = authorizer.policy(st);
    match authorizer.authorize(&policy, user, &attributes) {
        Decision::Privileged | Decision::Allowed { .. } => Ok(()),
        // `apierrors.NewForbidden` with the RBAC authorizer's reason, which is empty on a
        // plain denial.
        Decision::Denied => Err(ApiError::Forbidden {
            message: format!(
                "{} \"{name}\" is forbidden: ",
                crate::status::qualified(&info.plural, &info.group)
            ),
            name: name.to_string(),
            group: info.group.clone(),
            kind: info.plural.clone(),
        }),
    }
}

async fn resource_request(
    shared: Arc<Shared>,
    req: Request,
    t: Target,
    user: Option<UserInfo>,
) -> Result<Response, ApiError> {
    let q = query_map(&req);
    let headers = req.headers().clone();
    let method = req.method().clone();
    let info = {
        let st = shared.lock();
        st.registry.find(&t.group, &t.version, &t.plural)
    };
    let Some(info) = info else {
        return Err(ApiError::NotFound {
            message: "the server could not find the requested resource".into(),
            name: String::new(),
            group: t.group.clone(),
            kind: t.plural.clone(),
        });
    };
    if t.namespace.is_some() && !info.namespaced {
        return Err(ApiError::NotFound {
            message: "the server could not find the requested resource".into(),
            name: String::new(),
            group: t.group.clone(),
            kind: t.plural.clone(),
        });
    }
    if info.group == "authorization.k8s.io" {
        return access_review(&shared, &t, user.as_ref(), req).await;
    }
    let sub = t.subresource.clone().unwrap_or_default();
    let sub_ok = sub.is_empty()
        || (sub == "status" && info.has_status(&t.version))
        || (sub == "finalize" && info.plural == "namespaces");
    if !sub_ok {
        return Err(ApiError::NotFound {
            message: "the server could not find the requested resource".into(),
            name: t.name.clone().unwrap_or_default(),
            group: t.group.clone(),
            kind: t.plural.clone(),
        });
    }
    let sub_for_write = if sub == "finalize" {
        String::new()
    } else {
        sub.clone()
    };
    let ns = t.namespace.clone().unwrap_or_default();
    let form = accept_form(&headers);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let protobuf = content_type.contains("protobuf");
    if content_type.contains("cbor") {
        // client-go falls back to JSON when the server answers 415 to a CBOR body.
        return Err(ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {content_type})"
        )));
    }
    let body = axum::body::to_bytes(req.into_body(), 64 * 1024 * 1024)
        .await
        .map_err(|e| ApiError::BadRequest(format!("reading body: {e}")))?;
    let body: Vec<u8> = if protobuf && !body.is_empty() {
        let decoded = crate::protobuf::decode(&body).map_err(|e| match e {
            crate::protobuf::ProtobufError::Unsupported(_) => {
                ApiError::UnsupportedMediaType(e.to_string())
            }
            crate::protobuf::ProtobufError::Malformed => ApiError::BadRequest(e.to_string()),
        })?;
        serde_json::to_vec(&decoded).map_err(|e| ApiError::Internal(e.to_string()))?
    } else {
        body.to_vec()
    };
    let now = shared.clock.now();
    match (method, &t.name) {
        (Method::GET, None) if q.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            start_watch(shared, info, &t, &q, form)
        }
        (Method::GET, None) => {
            let lq = list_query(&info, &t, &q)?;
            let lq_has_no_selectors = lq.labels.is_none() && lq.fields.is_none();
            let st = shared.lock();
            let page = st.list(&info, &lq)?;
            drop(st);
            let mut meta = json!({"resourceVersion": page.rv.to_string()});
            if let Some(c) = &page.continue_token {
                meta["continue"] = json!(c);
            }
            // Like the real server, no remainingItemCount when selectors filter the list.
            if let Some(r) = page.remaining.filter(|_| lq_has_no_selectors) {
                meta["remainingItemCount"] = json!(r);
            }
            let body = match form {
                Some("Table") => {
                    let objs: Vec<Value> = page
                        .items
                        .iter()
                        .map(|o| present(&info, &t.version, o))
                        .collect();
                    let refs: Vec<&Value> = objs.iter().collect();
                    table::table(&info, &t.version, &refs, include_object(&q), meta, now)
                }
                Some("Metadata") => json!({
                    "kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
                    "items": page.items.iter().map(|o| json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata").cloned().unwrap_or(Value::Null)})).collect::<Vec<_>>(),
                }),
                _ => json!({
                    "kind": format!("{}List", info.kind),
                    "apiVersion": info.api_version(&t.version),
                    "metadata": meta,
                    "items": page.items.iter().map(|o| present(&info, &t.version, o)).collect::<Vec<_>>(),
                }),
            };
            Ok(json_response(StatusCode::OK, &body))
        }
        (Method::GET, Some(name)) => {
            let obj = shared.lock().get(&info, &ns, name)?;
            let o = present(&info, &t.version, &obj);
            let body = match form {
                Some("Table") => table::table(
                    &info,
                    &t.version,
                    &[&o],
                    include_object(&q),
                    json!({"resourceVersion": o.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)}),
                    now,
                ),
                Some("Metadata") => {
                    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata").cloned().unwrap_or(Value::Null)})
                }
                _ => o,
            };
            Ok(json_response(StatusCode::OK, &body))
        }
        (Method::POST, None) => {
            let opts = write_options(&q, &headers)?;
            let obj = parse_body(&body)?;
            let mut st = shared.lock();
            let out = st.create(
                &info,
                &t.version,
                t.namespace.as_deref().or(if info.namespaced {
                    Some("default")
                } else {
                    None
                }),
                obj,
                &opts,
                now,
            )?;
            st.collect_garbage(now);
            Ok(outcome(&info, &t.version, out))
        }
        (Method::PUT, Some(name)) => {
            let opts = write_options(&q, &headers)?;
            let obj = parse_body(&body)?;
            let mut st = shared.lock();
            let out = st.update(
                &info,
                &t.version,
                &ns,
                name,
                obj,
                &sub_for_write,
                &opts,
                now,
            )?;
            st.collect_garbage(now);
            Ok(outcome(&info, &t.version, out))
        }
        (Method::PATCH, Some(name)) => {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let kind = PatchKind::from_content_type(ct).ok_or_else(|| {
                ApiError::UnsupportedMediaType(format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {ct})"
                ))
            })?;
            let opts = write_options(&q, &headers)?;
            if kind != PatchKind::Apply && opts.force {
                return Err(ApiError::BadRequest(
                    "force: Forbidden: may not be specified for non-apply patch".into(),
                ));
            }
            let patch = parse_body(&body)?;
            let mut st = shared.lock();
            if kind == PatchKind::Apply && sub_for_write.is_empty() {
                authorize_create_on_apply(&shared, &st, user.as_ref(), &info, &ns, name)?;
            }
            let out = st.patch(
                &info,
                &t.version,
                &ns,
                name,
                kind,
                &patch,
                &sub_for_write,
                &opts,
                now,
            )?;
            st.collect_garbage(now);
            Ok(outcome(&info, &t.version, out))
        }
        (Method::DELETE, name) => {
            let opts_body = parse_body(&body)?;
            let mut opts = DeleteOptions {
                propagation: opts_body
                    .get("propagationPolicy")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or_else(|| q.get("propagationPolicy").cloned()),
                precondition_uid: opts_body
                    .pointer("/preconditions/uid")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                precondition_rv: opts_body
                    .pointer("/preconditions/resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                dry_run: q.get("dryRun").is_some_and(|d| d == "All")
                    || opts_body
                        .get("dryRun")
                        .and_then(Value::as_array)
                        .is_some_and(|a| a.iter().any(|d| d == "All")),
            };
            if opts.propagation.is_none()
                && opts_body.get("orphanDependents").and_then(Value::as_bool) == Some(true)
            {
                opts.propagation = Some("Orphan".into());
            }
            match name {
                Some(name) => {
                    let obj = shared.lock().delete(&info, &ns, name, &opts, now)?;
                    Ok(json_response(
                        StatusCode::OK,
                        &present(&info, &t.version, &obj),
                    ))
                }
                None => {
                    let lq = list_query(&info, &t, &q)?;
                    let deleted = shared.lock().delete_collection(&info, &lq, &opts, now)?;
                    let items: Vec<Value> = deleted
                        .iter()
                        .map(|o| present(&info, &t.version, o))
                        .collect();
                    Ok(json_response(
                        StatusCode::OK,
                        &json!({"kind": format!("{}List", info.kind), "apiVersion": info.api_version(&t.version), "metadata": {}, "items": items}),
                    ))
                }
            }
        }
        (m, _) => Err(ApiError::MethodNotAllowed(format!(
            "{m} is not supported on this path"
        ))),
    }
}

/// Access reviews. Without RBAC every review is allowed. With it, the review is evaluated
/// like the server does (not counted in the access record): a SelfSubjectAccessReview for the
/// caller, a (Local)SubjectAccessReview for `spec.user` and `spec.groups`.
async fn access_review(
    shared: &Shared,
    t: &Target,
    caller: Option<&UserInfo>,
    req: Request,
) -> Result<Response, ApiError> {
    let method = req.method().clone();
    if method != Method::POST {
        return Err(ApiError::MethodNotAllowed(format!(
            "{method} is not supported for access reviews"
        )));
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = axum::body::to_bytes(req.into_body(), 1024 * 1024)
        .await
        .map_err(|e| ApiError::BadRequest(format!("reading body: {e}")))?;
    let mut review = if content_type.contains("protobuf") {
        crate::protobuf::decode(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?
    } else {
        parse_body(&body)?
    };
    review["metadata"] = json!({});
    review["status"] = match (&shared.rbac, caller) {
        (Some(authorizer), Some(caller)) => {
            let spec = review.get("spec").cloned().unwrap_or(Value::Null);
            let subject = if t.plural == "selfsubjectaccessreviews" {
                caller.clone()
            } else {
                let text = |v: &Value| v.as_str().map(str::to_string);
                UserInfo {
                    name: spec.get("user").and_then(text).unwrap_or_default(),
                    groups: spec
                        .get("groups")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(text).collect())
                        .unwrap_or_default(),
                }
            };
            let attributes = review_attributes(&spec)?;
            let policy = authorizer.policy(&shared.lock());
            match policy.authorize(&subject, &attributes) {
                Decision::Privileged => json!({"allowed": true}),
                Decision::Allowed { reason, .. } => json!({"allowed": true, "reason": reason}),
                Decision::Denied => json!({"allowed": false}),
            }
        }
        _ => json!({"allowed": true, "reason": "kube-sim does not authorize requests"}),
    };
    Ok(json_response(StatusCode::CREATED, &review))
}

/// The attributes a review asks about (`spec.resourceAttributes` or
/// `spec.nonResourceAttributes`).
fn review_attributes(spec: &Value) -> Result<Attributes, ApiError> {
    let field = |v: &Value, f: &str| {
        v.get(f)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if let Some(r) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
        return Ok(Attributes::Resource(crate::rbac::ResourceAttributes {
            verb: field(r, "verb"),
            group: field(r, "group"),
            resource: field(r, "resource"),
            subresource: field(r, "subresource"),
            namespace: field(r, "namespace"),
            name: field(r, "name"),
        }));
    }
    if let Some(n) = spec.get("nonResourceAttributes").filter(|v| v.is_object()) {
        return Ok(Attributes::NonResource(
            crate::rbac::NonResourceAttributes {
                verb: field(n, "verb"),
                path: field(n, "path"),
            },
        ));
    }
    Err(ApiError::BadRequest(
        "spec.resourceAttributes: Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified".into(),
    ))
}

fn outcome(info: &ResourceInfo, version: &str, out: WriteOutcome) -> Response {
    let code = if out.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    with_warnings(
        json_response(code, &present(info, version, &out.object)),
        &out.warnings,
    )
}

fn start_watch(
    shared: Arc<Shared>,
    info: Arc<ResourceInfo>,
    t: &Target,
    q: &HashMap<String, String>,
    form: Option<&str>,
) -> Result<Response, ApiError> {
    let lq = list_query(&info, t, q)?;
    let rendering = match form {
        Some("Table") => Rendering::Table(include_object(q)),
        Some("Metadata") => Rendering::Metadata,
        _ => Rendering::Object,
    };
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let spec = WatchSpec {
        info: info.clone(),
        version: t.version.clone(),
        namespace: lq.namespace.clone(),
        labels: lq.labels.clone(),
        fields: lq.fields.clone(),
        bookmarks: q.get("allowWatchBookmarks").is_some_and(|b| b == "true"),
        bookmark_interval: shared.bookmark_interval,
        timeout,
        rendering,
        clock: shared.clock.clone(),
    };
    let send_initial = q.get("sendInitialEvents").is_some_and(|v| v == "true");
    let requested: Option<u64> = match q.get("resourceVersion").map(String::as_str) {
        _ if send_initial => None,
        None | Some("") | Some("0") => None,
        Some(rv) => Some(rv.parse().map_err(|_| {
            ApiError::BadRequest(format!(
                "resourceVersion: Invalid value: \"{rv}\": must be an integer"
            ))
        })?),
    };
    let (tx, rx_body) = futures::channel::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(64);
    let st = shared.lock();
    let current = st.current_rv();
    let (initial, past, rx, start_rv) = match requested {
        Some(rv) if rv < st.oldest_watchable_rv() => {
            let ev = watch::gone_event(rv, st.oldest_watchable_rv());
            drop(st);
            let mut line = serde_json::to_vec(&ev).unwrap_or_default();
            line.push(b'\n');
            return Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                line,
            )
                .into_response());
        }
        Some(rv) => {
            let (rx, past) = st.subscribe_from(rv);
            (Vec::new(), past, rx, rv)
        }
        None => {
            let page = st.list(
                &info,
                &ListQuery {
                    limit: None,
                    continue_token: None,
                    ..lq
                },
            )?;
            let (rx, _) = st.subscribe_from(current);
            let initial = page.items.into_iter().map(|o| ("ADDED", o)).collect();
            (initial, Vec::new(), rx, current)
        }
    };
    drop(st);
    let shutdown = shared.shutdown.clone();
    tokio::spawn(watch::pump(
        spec,
        initial,
        send_initial,
        past,
        rx,
        start_rv,
        shutdown,
        tx,
    ));
    let body = Body::from_stream(rx_body);
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn aggregated_discovery_only_when_asked_for_v2_first() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert!(wants_aggregated(&accept(kubectl)));
        let beta_first = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert!(!wants_aggregated(&accept(beta_first)));
        assert!(!wants_aggregated(&accept("application/json")));
    }

    #[test]
    fn resource_paths_parse() {
        let t = parse_resource_path(&[
            "apis",
            "g.io",
            "v1",
            "namespaces",
            "ns",
            "widgets",
            "w",
            "status",
        ])
        .unwrap();
        assert_eq!(
            (
                t.namespace.as_deref(),
                t.plural.as_str(),
                t.name.as_deref(),
                t.subresource.as_deref()
            ),
            (Some("ns"), "widgets", Some("w"), Some("status"))
        );
        let t = parse_resource_path(&["api", "v1", "namespaces", "ns", "status"]).unwrap();
        assert_eq!(
            (
                t.plural.as_str(),
                t.name.as_deref(),
                t.subresource.as_deref()
            ),
            ("namespaces", Some("ns"), Some("status"))
        );
        let t = parse_resource_path(&["api", "v1", "namespaces", "ns", "configmaps"]).unwrap();
        assert_eq!(
            (t.namespace.as_deref(), t.plural.as_str(), t.name),
            (Some("ns"), "configmaps", None)
        );
    }
}
