//! HTTP layer of the simulated DigitalOcean: auth, rate limiting and fault middleware, the
//! API v2 routes, pagination links and error bodies in DigitalOcean's shapes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Serialize;
use serde_json::{Value, json};

use secrecy::ExposeSecret;

use crate::cloud::models::{
    DropletActionRequest, DropletCreateRequest, DropletMetric, TagResourcesRequest,
};
use crate::cloud::offline_catalog;
use crate::sim::digitalocean::Shared;
use crate::sim::digitalocean::state::{RateDecision, SimError};
use clock::unix_seconds;

type AppState = Arc<Shared>;
type Params = Query<HashMap<String, String>>;

pub(crate) fn router(shared: AppState) -> Router {
    Router::new()
        .route("/v2/account", get(account))
        .route(
            "/v2/droplets",
            get(list_droplets)
                .post(create_droplet)
                .delete(delete_by_tag),
        )
        .route("/v2/droplets/{id}", get(get_droplet).delete(delete_droplet))
        .route(
            "/v2/droplets/{id}/actions",
            post(droplet_action).get(list_droplet_actions),
        )
        .route("/v2/tags", post(create_tag))
        .route(
            "/v2/tags/{tag}/resources",
            post(tag_resources).delete(untag_resources),
        )
        .route("/v2/actions/{id}", get(get_action))
        .route("/v2/sizes", get(list_sizes))
        .route("/v2/regions", get(list_regions))
        .route("/v2/monitoring/metrics/droplet/{metric}", get(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&shared),
            gatekeeper,
        ))
        .with_state(shared)
}

const JSON: &str = "application/json; charset=utf-8";

fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    response
}

fn error_response(error: SimError) -> Response {
    let mut body = json!({ "id": error.id, "message": error.message });
    if let (Some(Value::Object(extra)), Some(object)) = (error.extra, body.as_object_mut()) {
        object.extend(extra);
    }
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, &body)
}

fn no_content() -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    response
}

fn set_number(headers: &mut HeaderMap, name: &'static str, value: u64) {
    headers.insert(name, HeaderValue::from(value));
}

fn apply_rate_headers(headers: &mut HeaderMap, decision: &RateDecision) {
    set_number(headers, "ratelimit-limit", u64::from(decision.limit));
    set_number(
        headers,
        "ratelimit-remaining",
        u64::from(decision.remaining),
    );
    set_number(headers, "ratelimit-reset", decision.reset);
    if let Some(after) = decision.retry_after {
        set_number(headers, "retry-after", after);
    }
}

/// Auth, rate limit, injected 5xx and latency, then the route; every response gets the
/// `ratelimit-*` headers and a request id (header and error body).
async fn gatekeeper(State(shared): State<AppState>, request: Request, next: Next) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let now = shared.clock.now();
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .map(str::to_owned);
    let mut response = match presented {
        Some(token) if token == shared.token.expose_secret().trim() => {
            let (decision, injected_error) = {
                let mut world = shared.state();
                let decision = world.admit(&token, now);
                let injected = decision.allowed && world.draw_server_error();
                (decision, injected)
            };
            let mut response = if !decision.allowed {
                error_response(SimError {
                    status: 429,
                    id: "too_many_requests",
                    message: "API rate limit exceeded.".to_owned(),
                    extra: None,
                })
            } else if injected_error {
                error_response(SimError::server_error())
            } else {
                let latency = shared.state().config().faults.latency;
                if !latency.is_zero() {
                    shared.clock.sleep(latency).await;
                }
                let events = shared.state().advance(shared.clock.now());
                shared.dispatch(events);
                next.run(request).await
            };
            apply_rate_headers(response.headers_mut(), &decision);
            response
        }
        _ => {
            let decision = shared.state().unauthenticated_limits(now);
            let mut response = error_response(SimError {
                status: 401,
                id: "unauthorized",
                message: "Unable to authenticate you.".to_owned(),
                extra: None,
            });
            apply_rate_headers(response.headers_mut(), &decision);
            response
        }
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

async fn not_found() -> Response {
    error_response(SimError::not_found())
}

async fn account(State(shared): State<AppState>) -> Response {
    let limit = shared.state().droplet_limit();
    json_response(
        StatusCode::OK,
        &json!({
            "account": {
                "droplet_limit": limit,
                "floating_ip_limit": 3,
                "email": "sim@example.invalid",
                "uuid": "5f0d3c2a9d6e4b7c8a1b2c3d4e5f6a7b8c9d0e1f",
                "email_verified": true,
                "status": "active",
                "status_message": "",
                "team": { "uuid": "1f2e3d4c5b6a7980a1b2c3d4e5f60718293a4b5c", "name": "Simulated Team" }
            }
        }),
    )
}

/// `page` and `per_page` as DigitalOcean reads them (default 20, at most 200).
fn page_params(params: &HashMap<String, String>) -> (usize, usize) {
    let page = params
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let per_page = params
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .map_or(20, |p| p.clamp(1, 200));
    (page, per_page)
}

/// One page of `items` under `key`, with `links.pages` (absolute URLs) and `meta.total`.
fn paginate<T: Serialize>(
    key: &str,
    items: Vec<T>,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    path: &str,
    filters: &[&str],
) -> Response {
    let (page, per_page) = page_params(params);
    let total = items.len();
    let last = total.div_ceil(per_page).max(1);
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let mut filter_query = String::new();
    for name in filters {
        if let Some(value) = params.get(*name) {
            filter_query.push_str(&format!("{name}={value}&"));
        }
    }
    let link = |n: usize| format!("http://{host}{path}?{filter_query}page={n}&per_page={per_page}");
    let mut pages = serde_json::Map::new();
    if last > 1 {
        if page > 1 {
            pages.insert("first".into(), Value::String(link(1)));
            pages.insert("prev".into(), Value::String(link((page - 1).min(last))));
        }
        if page < last {
            pages.insert("next".into(), Value::String(link(page + 1)));
            pages.insert("last".into(), Value::String(link(last)));
        }
    }
    let links = if pages.is_empty() {
        json!({})
    } else {
        json!({ "pages": pages })
    };
    let page_items: Vec<T> = items
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .collect();
    let mut body = serde_json::Map::new();
    body.insert(
        key.to_owned(),
        serde_json::to_value(page_items).unwrap_or(Value::Array(Vec::new())),
    );
    body.insert("links".into(), links);
    body.insert("meta".into(), json!({ "total": total }));
    json_response(StatusCode::OK, &Value::Object(body))
}

async fn list_droplets(
    State(shared): State<AppState>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    let tag = params.get("tag_name").map(String::as_str);
    let name = params.get("name").map(String::as_str);
    if tag.is_some() && name.is_some() {
        return error_response(SimError::bad_request(
            "tag_name and name cannot be combined",
        ));
    }
    let droplets = shared.state().list_droplets(tag, name, shared.clock.now());
    paginate(
        "droplets",
        droplets,
        &params,
        &headers,
        "/v2/droplets",
        &["tag_name", "name"],
    )
}

async fn create_droplet(
    State(shared): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(mut value) = serde_json::from_slice::<Value>(&body) else {
        return error_response(SimError::bad_request("error parsing request body"));
    };
    if value.get("names").is_some() {
        return error_response(SimError::unprocessable(
            "the simulated DigitalOcean creates one droplet per request (use `name`)",
        ));
    }
    // The API takes an image slug or a numeric id.
    if let Some(id) = value.get("image").and_then(Value::as_u64) {
        value["image"] = Value::String(id.to_string());
    }
    if value.get("tags").is_some_and(Value::is_null) {
        value["tags"] = json!([]);
    }
    let request: DropletCreateRequest = match serde_json::from_value(value) {
        Ok(request) => request,
        Err(e) => {
            return error_response(SimError::unprocessable(format!(
                "request payload validation failed: {e}"
            )));
        }
    };
    let now = shared.clock.now();
    let (result, fail_after_commit) = {
        let mut world = shared.state();
        let result = world.create_droplet(&request, now);
        let fail = result.is_ok() && world.draw_commit_then_fail();
        (result, fail)
    };
    match result {
        Err(error) => error_response(error),
        Ok(_) if fail_after_commit => error_response(SimError::server_error()),
        Ok((droplet, action)) => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1");
            json_response(
                StatusCode::ACCEPTED,
                &json!({
                    "droplet": droplet,
                    "links": { "actions": [{
                        "id": action.id,
                        "rel": "create",
                        "href": format!("http://{host}/v2/actions/{}", action.id),
                    }]}
                }),
            )
        }
    }
}

fn parse_id(raw: &str) -> Option<u64> {
    raw.parse().ok()
}

async fn get_droplet(State(shared): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(id) = parse_id(&id) else {
        return error_response(SimError::not_found());
    };
    let now = shared.clock.now();
    match shared.state().get_droplet(id, now) {
        Ok(droplet) => json_response(StatusCode::OK, &json!({ "droplet": droplet })),
        Err(error) => error_response(error),
    }
}

async fn delete_droplet(State(shared): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(id) = parse_id(&id) else {
        return error_response(SimError::not_found());
    };
    let result = shared.state().delete_droplet(id);
    match result {
        Ok(event) => {
            shared.dispatch(vec![event]);
            no_content()
        }
        Err(error) => error_response(error),
    }
}

async fn delete_by_tag(State(shared): State<AppState>, Query(params): Params) -> Response {
    let Some(tag) = params.get("tag_name") else {
        return error_response(SimError::bad_request("tag_name is required"));
    };
    let events = shared.state().delete_by_tag(tag);
    shared.dispatch(events);
    no_content()
}

async fn droplet_action(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Some(id) = parse_id(&id) else {
        return error_response(SimError::not_found());
    };
    let request: DropletActionRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(_) => {
            return error_response(SimError::unprocessable(
                "the action type is missing or not supported by the simulator",
            ));
        }
    };
    let now = shared.clock.now();
    let (result, fail_after_commit) = {
        let mut world = shared.state();
        let result = world.droplet_action(id, &request, now);
        let fail = result.is_ok() && world.draw_action_commit_then_fail();
        (result, fail)
    };
    match result {
        Ok(_) if fail_after_commit => error_response(SimError::server_error()),
        Ok(action) => json_response(StatusCode::CREATED, &json!({ "action": action })),
        Err(error) => error_response(error),
    }
}

async fn list_droplet_actions(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    let Some(id) = parse_id(&id) else {
        return error_response(SimError::not_found());
    };
    let result = shared.state().droplet_actions(id);
    match result {
        Ok(actions) => paginate(
            "actions",
            actions,
            &params,
            &headers,
            &format!("/v2/droplets/{id}/actions"),
            &[],
        ),
        Err(error) => error_response(error),
    }
}

async fn create_tag(body: Bytes) -> Response {
    let name = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("name").and_then(Value::as_str).map(str::to_owned));
    match name {
        Some(name) => json_response(
            StatusCode::CREATED,
            &json!({ "tag": { "name": name, "resources": { "count": 0 } } }),
        ),
        None => error_response(SimError::unprocessable("name is required")),
    }
}

fn droplet_ids(body: &[u8]) -> Result<Vec<u64>, SimError> {
    let request: TagResourcesRequest = serde_json::from_slice(body)
        .map_err(|_| SimError::bad_request("resources are required"))?;
    request
        .resources
        .iter()
        .filter(|r| r.resource_type == "droplet")
        .map(|r| {
            r.resource_id
                .parse()
                .map_err(|_| SimError::unprocessable("resource_id must be a droplet id"))
        })
        .collect()
}

async fn tag_resources(
    State(shared): State<AppState>,
    Path(tag): Path<String>,
    body: Bytes,
) -> Response {
    let result = droplet_ids(&body).and_then(|ids| shared.state().tag_droplets(&tag, &ids));
    match result {
        Ok(()) => no_content(),
        Err(error) => error_response(error),
    }
}

async fn untag_resources(
    State(shared): State<AppState>,
    Path(tag): Path<String>,
    body: Bytes,
) -> Response {
    match droplet_ids(&body) {
        Ok(ids) => {
            shared.state().untag_droplets(&tag, &ids);
            no_content()
        }
        Err(error) => error_response(error),
    }
}

async fn get_action(State(shared): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(id) = parse_id(&id) else {
        return error_response(SimError::not_found());
    };
    match shared.state().get_action(id) {
        Ok(action) => json_response(StatusCode::OK, &json!({ "action": action })),
        Err(error) => error_response(error),
    }
}

async fn list_sizes(Query(params): Params, headers: HeaderMap) -> Response {
    paginate(
        "sizes",
        offline_catalog::sizes(),
        &params,
        &headers,
        "/v2/sizes",
        &[],
    )
}

async fn list_regions(Query(params): Params, headers: HeaderMap) -> Response {
    paginate(
        "regions",
        offline_catalog::regions(),
        &params,
        &headers,
        "/v2/regions",
        &[],
    )
}

async fn metrics(
    State(shared): State<AppState>,
    Path(metric): Path<String>,
    Query(params): Params,
) -> Response {
    let Some(metric) = DropletMetric::from_path_segment(&metric) else {
        return error_response(SimError::not_found());
    };
    let number = |name: &str| params.get(name).and_then(|v| v.parse::<u64>().ok());
    let (Some(host_id), Some(start), Some(end)) =
        (number("host_id"), number("start"), number("end"))
    else {
        return error_response(SimError::bad_request("host_id, start and end are required"));
    };
    let end = end.min(unix_seconds(shared.clock.now()));
    let result = shared.state().metric_series(host_id, metric, start, end);
    json_response(
        StatusCode::OK,
        &json!({
            "status": "success",
            "data": { "resultType": "matrix", "result": result }
        }),
    )
}
