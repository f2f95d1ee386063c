//! The registry client against the stand-in registry: every answer a registry gives maps to the
//! right one of Exists / Missing / Unknown, the token flow works, and no check outlives its
//! deadline.

use std::time::{Duration, Instant};

use mcp_droplet_operator::api::image_reference::ImageReference;
use mcp_droplet_operator::image_check::{
    ImageCheck, ImageCheckConfig, ImageChecker, UnknownReason, client::MANIFEST_ACCEPT,
};
use mcp_droplet_operator::testing::{FakeRegistry, RegistryMode};

const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const OTHER: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

async fn registry() -> FakeRegistry {
    let registry = FakeRegistry::start().await.unwrap();
    registry.add_image("tools/time", "1.0", DIGEST);
    registry.add_image("tools/time", "1.1", OTHER);
    registry
}

fn checker(config: ImageCheckConfig) -> ImageChecker {
    ImageChecker::new(config).unwrap()
}

fn image(reference: &str) -> ImageReference {
    ImageReference::parse(reference).unwrap()
}

fn unknown_reason(check: &ImageCheck) -> Option<UnknownReason> {
    match check {
        ImageCheck::Unknown { reason, .. } => Some(*reason),
        _ => None,
    }
}

#[tokio::test]
async fn a_tag_that_exists_gives_its_digest_and_the_manifest_types_are_asked_for() {
    let registry = registry().await;
    let client = checker(registry.check_config(&registry.host()));
    let check = client
        .check(&image(&registry.image("tools/time", "1.0")))
        .await;
    assert_eq!(
        check,
        ImageCheck::Exists {
            digest: Some(DIGEST.into())
        }
    );
    assert_eq!(registry.last_accept().as_deref(), Some(MANIFEST_ACCEPT));
    for media_type in [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ] {
        assert!(MANIFEST_ACCEPT.contains(media_type), "{media_type}");
    }
}

#[tokio::test]
async fn a_digest_reference_is_checked_by_digest_through_a_named_registry() {
    let registry = registry().await;
    let client = checker(registry.check_config("registry.test"));
    let found = client
        .check(&image(&format!("registry.test/tools/time@{OTHER}")))
        .await;
    assert_eq!(
        found,
        ImageCheck::Exists {
            digest: Some(OTHER.into())
        }
    );
    let unknown_digest = format!("sha256:{}", "3".repeat(64));
    let missing = client
        .check(&image(&format!(
            "registry.test/tools/time@{unknown_digest}"
        )))
        .await;
    assert!(matches!(missing, ImageCheck::Missing { .. }), "{missing:?}");
}

#[tokio::test]
async fn an_unknown_tag_or_repository_is_missing() {
    let registry = registry().await;
    let client = checker(registry.check_config(&registry.host()));
    for reference in [
        registry.image("tools/time", "9.9"),
        registry.image("tools/nothing", "1.0"),
    ] {
        let check = client.check(&image(&reference)).await;
        let ImageCheck::Missing { detail } = &check else {
            panic!("{reference}: {check:?}");
        };
        assert!(detail.contains("404"), "{detail}");
    }
}

#[tokio::test]
async fn a_registry_that_refuses_head_is_asked_with_get_and_its_error_codes_are_read() {
    let registry = registry().await;
    registry.refuse_head(true);
    let client = checker(registry.check_config(&registry.host()));
    let found = client
        .check(&image(&registry.image("tools/time", "1.1")))
        .await;
    assert_eq!(
        found,
        ImageCheck::Exists {
            digest: Some(OTHER.into())
        }
    );
    let missing = client
        .check(&image(&registry.image("tools/nothing", "1")))
        .await;
    let ImageCheck::Missing { detail } = &missing else {
        panic!("{missing:?}");
    };
    assert!(detail.contains("NAME_UNKNOWN"), "{detail}");
    // HEAD then GET, for each of the two checks.
    assert_eq!(registry.manifest_requests(), 4);
}

#[tokio::test]
async fn the_anonymous_token_flow_answers_the_challenge_and_retries() {
    let registry = registry().await;
    registry.require_token(true);
    let client = checker(registry.check_config(&registry.host()));
    let check = client
        .check(&image(&registry.image("tools/time", "1.0")))
        .await;
    assert_eq!(
        check,
        ImageCheck::Exists {
            digest: Some(DIGEST.into())
        }
    );
    assert_eq!(registry.token_requests(), 1);
    assert_eq!(registry.manifest_requests(), 2);
    assert_eq!(
        registry.last_scope().as_deref(),
        Some("repository:tools/time:pull")
    );
    let missing = client
        .check(&image(&registry.image("tools/time", "0.1")))
        .await;
    assert!(matches!(missing, ImageCheck::Missing { .. }), "{missing:?}");
}

#[tokio::test]
async fn a_401_with_the_anonymous_token_is_unknown_not_missing() {
    let registry = registry().await;
    registry.require_token(true);
    registry.deny_anonymous(true);
    let client = checker(registry.check_config(&registry.host()));
    let check = client
        .check(&image(&registry.image("tools/time", "1.0")))
        .await;
    assert_eq!(
        unknown_reason(&check),
        Some(UnknownReason::AuthRequired),
        "{check:?}"
    );
    // One token, one retry: the client does not loop on 401.
    assert_eq!(registry.token_requests(), 1);
    assert_eq!(registry.manifest_requests(), 2);
    let ImageCheck::Unknown { detail, .. } = check else {
        unreachable!()
    };
    assert!(!detail.contains("anonymous-1"), "token leaked: {detail}");
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_unknown() {
    let registry = registry().await;
    let client = checker(registry.check_config(&registry.host()));
    let reference = image(&registry.image("tools/time", "1.0"));
    for (mode, reason) in [
        (RegistryMode::ServerError, UnknownReason::ServerError),
        (RegistryMode::RateLimited, UnknownReason::RateLimited),
    ] {
        registry.set_mode(mode);
        let check = client.check(&reference).await;
        assert_eq!(unknown_reason(&check), Some(reason), "{mode:?}: {check:?}");
    }
    registry.set_mode(RegistryMode::ServerError);
    registry.require_token(true);
    let check = client.check(&reference).await;
    assert_eq!(
        unknown_reason(&check),
        Some(UnknownReason::ServerError),
        "{check:?}"
    );
}

#[tokio::test]
async fn a_hanging_registry_is_unknown_within_the_deadline() {
    let registry = registry().await;
    registry.set_mode(RegistryMode::Hang);
    let mut config = registry.check_config(&registry.host());
    config.request_timeout = Duration::from_millis(300);
    config.deadline = Duration::from_secs(1);
    let client = checker(config);
    let started = Instant::now();
    let check = client
        .check(&image(&registry.image("tools/time", "1.0")))
        .await;
    assert_eq!(
        unknown_reason(&check),
        Some(UnknownReason::Timeout),
        "{check:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // The whole check has a deadline too, shorter than one request's here.
    let mut config = registry.check_config(&registry.host());
    config.request_timeout = Duration::from_secs(30);
    config.deadline = Duration::from_millis(300);
    let check = checker(config)
        .check(&image(&registry.image("tools/time", "1.0")))
        .await;
    assert_eq!(unknown_reason(&check), Some(UnknownReason::Timeout));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_registry_that_is_gone_is_unreachable() {
    let registry = registry().await;
    let config = registry.check_config(&registry.host());
    let reference = image(&registry.image("tools/time", "1.0"));
    drop(registry);
    let check = checker(config).check(&reference).await;
    assert_eq!(
        unknown_reason(&check),
        Some(UnknownReason::Unreachable),
        "{check:?}"
    );
}
