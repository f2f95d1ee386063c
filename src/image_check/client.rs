//! The registry client: one manifest `HEAD` (or `GET` where `HEAD` is refused), the anonymous
//! token flow on 401, a deadline on every request and on the whole check, and the answer as a
//! tri-state [`ImageCheck`].

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::challenge::{BearerChallenge, Challenge, parse_challenge};
use crate::api::image_reference::ImageReference;

/// The manifest media types asked for: OCI index and manifest, Docker v2 list and manifest.
/// Without them some registries answer 404 for multi-platform images, or convert them.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// The header in which registries return a manifest's digest.
pub const DIGEST_HEADER: &str = "docker-content-digest";

/// Bodies read (error documents, tokens) are cut at this size; a registry cannot make us buffer more.
const MAX_BODY: usize = 64 * 1024;
/// Registry messages quoted in details are cut at this length.
const MAX_QUOTED: usize = 200;

/// What the registry said about an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageCheck {
    /// The manifest exists; `digest` is the registry's `Docker-Content-Digest` (or the digest of
    /// the reference when the registry sends none).
    Exists {
        /// `sha256:...`, when known.
        digest: Option<String>,
    },
    /// The registry answered that the repository or the tag or digest does not exist
    /// (404, `MANIFEST_UNKNOWN`, `NAME_UNKNOWN`).
    Missing {
        /// What the registry said, for people.
        detail: String,
    },
    /// No answer that settles it: unreachable, slow, overloaded, private, or strange.
    Unknown {
        /// Why, as a stable category.
        reason: UnknownReason,
        /// What happened, for people (never a token).
        detail: String,
    },
}

/// Why a check could not tell whether an image exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnknownReason {
    /// Connection refused, DNS failure, TLS failure.
    Unreachable,
    /// A request or the whole check ran past its deadline.
    Timeout,
    /// 429 from the registry or its token endpoint.
    RateLimited,
    /// 5xx from the registry or its token endpoint.
    ServerError,
    /// 401 even with an anonymous token, 403, or a challenge other than a bearer token: the
    /// image may be private, and the check has no credentials.
    AuthRequired,
    /// Any other answer (an unexpected status, a token response that is not JSON).
    UnexpectedResponse,
}

impl UnknownReason {
    /// The condition reason (`ImageAvailable`), CamelCase and stable.
    pub fn condition_reason(self) -> &'static str {
        match self {
            Self::Unreachable => "RegistryUnreachable",
            Self::Timeout => "RegistryTimeout",
            Self::RateLimited => "RegistryRateLimited",
            Self::ServerError => "RegistryServerError",
            Self::AuthRequired => "RegistryAuthRequired",
            Self::UnexpectedResponse => "RegistryUnexpectedResponse",
        }
    }

    /// A bounded metric label.
    pub fn metric_label(self) -> &'static str {
        match self {
            Self::Unreachable => "unreachable",
            Self::Timeout => "timeout",
            Self::RateLimited => "rate_limited",
            Self::ServerError => "server_error",
            Self::AuthRequired => "auth_required",
            Self::UnexpectedResponse => "unexpected_response",
        }
    }
}

impl ImageCheck {
    fn unknown(reason: UnknownReason, detail: impl Into<String>) -> Self {
        Self::Unknown {
            reason,
            detail: detail.into(),
        }
    }

    /// A bounded metric label: `exists`, `missing`, or the unknown reason's label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Exists { .. } => "exists",
            Self::Missing { .. } => "missing",
            Self::Unknown { reason, .. } => reason.metric_label(),
        }
    }
}

/// Settings of the registry client.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageCheckConfig {
    /// Deadline of each HTTP request (connect included).
    pub request_timeout: Duration,
    /// Deadline of a whole check (challenge, token, manifest).
    pub deadline: Duration,
    /// Base URLs by registry host as written in references (`ghcr.io`, `localhost:5000`,
    /// `docker.io`), e.g. `http://127.0.0.1:5000` for a test registry or a mirror. Registries
    /// not listed are reached at `https://<host>` (Docker Hub at `registry-1.docker.io`).
    pub registry_urls: BTreeMap<String, String>,
}

impl Default for ImageCheckConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(5),
            deadline: Duration::from_secs(15),
            registry_urls: BTreeMap::new(),
        }
    }
}

impl ImageCheckConfig {
    /// Sends references to `registry` to `base_url` instead (tests, mirrors).
    pub fn with_registry_url(mut self, registry: &str, base_url: &str) -> Self {
        self.registry_urls
            .insert(registry.to_string(), base_url.to_string());
        self
    }
}

/// The client cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ImageCheckError {
    /// A registry override is not an absolute http(s) URL.
    #[error("registry {registry}: base URL {url:?} is not an absolute http:// or https:// URL")]
    BadRegistryUrl {
        /// The registry host.
        registry: String,
        /// The URL given.
        url: String,
    },
    /// The HTTP client could not be built.
    #[error("registry HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Asks registries whether images exist, anonymously; cheap to clone.
#[derive(Debug, Clone)]
pub struct ImageChecker {
    http: reqwest::Client,
    deadline: Duration,
    registry_urls: BTreeMap<String, Url>,
}

impl ImageChecker {
    /// A client with these settings.
    pub fn new(config: ImageCheckConfig) -> Result<Self, ImageCheckError> {
        let mut registry_urls = BTreeMap::new();
        for (registry, url) in config.registry_urls {
            let parsed = Url::parse(&url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
            let Some(mut parsed) = parsed else {
                return Err(ImageCheckError::BadRegistryUrl { registry, url });
            };
            // A base without a trailing slash would lose its last path segment on join.
            if !parsed.path().ends_with('/') {
                let path = format!("{}/", parsed.path());
                parsed.set_path(&path);
            }
            registry_urls.insert(registry, parsed);
        }
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .user_agent(concat!("mcp-droplet-operator/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            deadline: config.deadline,
            registry_urls,
        })
    }

    /// Whether `image` exists in its registry, within the configured deadline.
    pub async fn check(&self, image: &ImageReference) -> ImageCheck {
        // Network deadlines are real time (like every HTTP client's timeout); the injected
        // clock governs when the controller checks again, not how long a socket may take.
        match tokio::time::timeout(self.deadline, self.check_unbounded(image)).await {
            Ok(check) => check,
            Err(_) => ImageCheck::unknown(
                UnknownReason::Timeout,
                format!(
                    "registry {} did not settle the check within {:?}",
                    image.registry, self.deadline
                ),
            ),
        }
    }

    /// The manifest URL of `image`.
    pub fn manifest_url(&self, image: &ImageReference) -> Option<Url> {
        let base = match self.registry_urls.get(&image.registry) {
            Some(base) => base.clone(),
            None => Url::parse(&format!("https://{}/", image.api_host())).ok()?,
        };
        base.join(&format!(
            "v2/{}/manifests/{}",
            image.repository,
            image.manifest_reference()
        ))
        .ok()
    }

    async fn check_unbounded(&self, image: &ImageReference) -> ImageCheck {
        let Some(url) = self.manifest_url(image) else {
            return ImageCheck::unknown(
                UnknownReason::UnexpectedResponse,
                format!("no manifest URL for registry {}", image.registry),
            );
        };
        let mut token: Option<SecretString> = None;
        let mut method = Method::HEAD;
        let mut tried_token = false;
        loop {
            let answer = match self.manifest(&url, method.clone(), token.as_ref()).await {
                Ok(answer) => answer,
                Err(unknown) => return unknown,
            };
            match answer.status {
                StatusCode::UNAUTHORIZED if !tried_token => {
                    tried_token = true;
                    let challenge = answer
                        .headers
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .map(parse_challenge);
                    match challenge {
                        Some(Challenge::Bearer(challenge)) => {
                            match self.anonymous_token(&challenge, image).await {
                                Ok(t) => token = Some(t),
                                Err(unknown) => return unknown,
                            }
                        }
                        Some(Challenge::Other(scheme)) => {
                            return ImageCheck::unknown(
                                UnknownReason::AuthRequired,
                                format!(
                                    "registry {} wants {scheme} credentials; the check is anonymous",
                                    image.registry
                                ),
                            );
                        }
                        None => {
                            return ImageCheck::unknown(
                                UnknownReason::AuthRequired,
                                format!(
                                    "registry {} answered 401 without a challenge",
                                    image.registry
                                ),
                            );
                        }
                    }
                }
                StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED
                    if method == Method::HEAD =>
                {
                    method = Method::GET;
                }
                _ => return classify(image, &answer),
            }
        }
    }

    async fn manifest(
        &self,
        url: &Url,
        method: Method,
        token: Option<&SecretString>,
    ) -> Result<Answer, ImageCheck> {
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .header(ACCEPT, MANIFEST_ACCEPT);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {}", token.expose_secret()));
        }
        let response = request.send().await.map_err(transport_unknown)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = if method == Method::HEAD || status.is_success() {
            Vec::new()
        } else {
            read_bounded(response).await.map_err(transport_unknown)?
        };
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    async fn anonymous_token(
        &self,
        challenge: &BearerChallenge,
        image: &ImageReference,
    ) -> Result<SecretString, ImageCheck> {
        let Ok(mut realm) = Url::parse(&challenge.realm) else {
            return Err(ImageCheck::unknown(
                UnknownReason::UnexpectedResponse,
                format!("token realm {:?} is not a URL", challenge.realm),
            ));
        };
        let scope = challenge
            .scope
            .clone()
            .unwrap_or_else(|| format!("repository:{}:pull", image.repository));
        {
            let mut query = realm.query_pairs_mut();
            if let Some(service) = &challenge.service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", &scope);
        }
        let response = self
            .http
            .get(realm)
            .send()
            .await
            .map_err(transport_unknown)?;
        let status = response.status();
        let body = read_bounded(response).await.map_err(transport_unknown)?;
        if !status.is_success() {
            let reason = match status {
                StatusCode::TOO_MANY_REQUESTS => UnknownReason::RateLimited,
                s if s.is_server_error() => UnknownReason::ServerError,
                _ => UnknownReason::AuthRequired,
            };
            return Err(ImageCheck::unknown(
                reason,
                format!(
                    "token endpoint of {} answered {} to an anonymous request",
                    image.registry,
                    status.as_u16()
                ),
            ));
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            token: Option<SecretString>,
            access_token: Option<SecretString>,
        }
        match serde_json::from_slice::<TokenResponse>(&body) {
            Ok(TokenResponse {
                token: Some(token), ..
            })
            | Ok(TokenResponse {
                token: None,
                access_token: Some(token),
            }) => Ok(token),
            _ => Err(ImageCheck::unknown(
                UnknownReason::UnexpectedResponse,
                format!(
                    "token endpoint of {} answered without a token",
                    image.registry
                ),
            )),
        }
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

fn classify(image: &ImageReference, answer: &Answer) -> ImageCheck {
    let status = answer.status;
    let codes = error_codes(&answer.body);
    let said = if codes.is_empty() {
        String::new()
    } else {
        format!(
            " ({})",
            codes
                .iter()
                .map(|(code, message)| format!("{code}: {message}"))
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    let unknown_code = codes
        .iter()
        .any(|(code, _)| code == "MANIFEST_UNKNOWN" || code == "NAME_UNKNOWN");
    if status.is_success() {
        let digest = answer
            .headers
            .get(DIGEST_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|d| d.contains(':'))
            .map(str::to_string)
            .or_else(|| image.digest.clone());
        return ImageCheck::Exists { digest };
    }
    if status == StatusCode::NOT_FOUND || (status.is_client_error() && unknown_code) {
        return ImageCheck::Missing {
            detail: format!(
                "registry {} has no manifest {} in {}: {}{said}",
                image.registry,
                image.manifest_reference(),
                image.repository,
                status.as_u16()
            ),
        };
    }
    let reason = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => UnknownReason::AuthRequired,
        StatusCode::TOO_MANY_REQUESTS => UnknownReason::RateLimited,
        s if s.is_server_error() => UnknownReason::ServerError,
        _ => UnknownReason::UnexpectedResponse,
    };
    let what = match reason {
        UnknownReason::AuthRequired => " even with an anonymous token (private image?)",
        _ => "",
    };
    ImageCheck::unknown(
        reason,
        format!(
            "registry {} answered {}{what}{said}",
            image.registry,
            status.as_u16()
        ),
    )
}

/// The `errors[].code` and messages of a distribution error document (empty when it is not one).
fn error_codes(body: &[u8]) -> Vec<(String, String)> {
    #[derive(Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<ErrorEntry>,
    }
    #[derive(Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    serde_json::from_slice::<Errors>(body)
        .map(|e| {
            e.errors
                .into_iter()
                .map(|entry| (cut(&entry.code), cut(&entry.message)))
                .collect()
        })
        .unwrap_or_default()
}

fn cut(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}

async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY {
            break;
        }
    }
    Ok(body)
}

fn transport_unknown(error: reqwest::Error) -> ImageCheck {
    let reason = if error.is_timeout() {
        UnknownReason::Timeout
    } else {
        UnknownReason::Unreachable
    };
    // reqwest's message names the URL (never a header), so no token can reach it.
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    ImageCheck::unknown(reason, cut(&detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: body.as_bytes().to_vec(),
        }
    }

    fn label(check: &ImageCheck) -> &'static str {
        check.metric_label()
    }

    #[test]
    fn answers_are_classified_into_three_states() {
        let image = ImageReference::parse("ghcr.io/a/b:1").unwrap();
        let cases: &[(u16, &str, &str)] = &[
            (200, "", "exists"),
            (404, "", "missing"),
            (
                400,
                r#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known"}]}"#,
                "missing",
            ),
            (
                400,
                r#"{"errors":[{"code":"MANIFEST_INVALID","message":"x"}]}"#,
                "unexpected_response",
            ),
            (401, "", "auth_required"),
            (403, "", "auth_required"),
            (429, "", "rate_limited"),
            (500, "", "server_error"),
            (503, "", "server_error"),
            (418, "", "unexpected_response"),
        ];
        for (status, body, expected) in cases {
            assert_eq!(
                label(&classify(&image, &answer(*status, &[], body))),
                *expected,
                "{status} {body}"
            );
        }
    }

    #[test]
    fn the_digest_comes_from_the_header_or_the_reference() {
        let tagged = ImageReference::parse("ghcr.io/a/b:1").unwrap();
        let header = answer(200, &[("docker-content-digest", "sha256:abc")], "");
        assert_eq!(
            classify(&tagged, &header),
            ImageCheck::Exists {
                digest: Some("sha256:abc".into())
            }
        );
        assert_eq!(
            classify(&tagged, &answer(200, &[], "")),
            ImageCheck::Exists { digest: None }
        );
        let digest = format!("sha256:{}", "e".repeat(64));
        let pinned = ImageReference::parse(&format!("ghcr.io/a/b@{digest}")).unwrap();
        assert_eq!(
            classify(&pinned, &answer(200, &[], "")),
            ImageCheck::Exists {
                digest: Some(digest)
            }
        );
    }

    #[test]
    fn registry_messages_are_quoted_and_cut() {
        let image = ImageReference::parse("ghcr.io/a/b:1").unwrap();
        let long = "x".repeat(500);
        let body = format!(r#"{{"errors":[{{"code":"MANIFEST_UNKNOWN","message":"{long}"}}]}}"#);
        let ImageCheck::Missing { detail } = classify(&image, &answer(404, &[], &body)) else {
            panic!("not missing");
        };
        assert!(detail.contains("MANIFEST_UNKNOWN: xxx"), "{detail}");
        assert!(detail.len() < 400, "{detail}");
    }

    #[test]
    fn overrides_must_be_http_urls_and_keep_their_path() {
        let bad = ImageChecker::new(
            ImageCheckConfig::default().with_registry_url("localhost:5000", "ftp://x"),
        );
        assert!(matches!(bad, Err(ImageCheckError::BadRegistryUrl { .. })));
        let checker = ImageChecker::new(
            ImageCheckConfig::default()
                .with_registry_url("localhost:5000", "http://127.0.0.1:9/mirror"),
        )
        .unwrap();
        let local = ImageReference::parse("localhost:5000/a/b:1").unwrap();
        assert_eq!(
            checker.manifest_url(&local).unwrap().as_str(),
            "http://127.0.0.1:9/mirror/v2/a/b/manifests/1"
        );
        let hub = ImageReference::parse("nginx").unwrap();
        assert_eq!(
            checker.manifest_url(&hub).unwrap().as_str(),
            "https://registry-1.docker.io/v2/library/nginx/manifests/latest"
        );
    }
}
