//! Does a template's image exist? Asks the image's registry through the OCI distribution API
//! (`HEAD /v2/<repository>/manifests/<tag|digest>`), anonymously, with a deadline, and answers in
//! three states: [`ImageCheck::Exists`], [`ImageCheck::Missing`] (the registry says so) or
//! [`ImageCheck::Unknown`] (it could not be asked, or would not say). Only `Missing` rejects a
//! template; `Unknown` leaves it accepted with an `ImageAvailable: Unknown` condition
//! (decision 0010).
//!
//! - [`client`]: the HTTP client and the tri-state answer;
//! - [`challenge`]: the `WWW-Authenticate: Bearer` challenge of the token flow (pure);
//! - [`cache`]: the last answer per image and when to ask again.
//!
//! The reference grammar is [`crate::api::image_reference`] (pure, shared with validation).
//! A stand-in registry for tests is `crate::testing::registry_fake`.

pub mod cache;
pub mod challenge;
pub mod client;

pub use cache::{CheckedImage, ImageCheckCache, RecheckPolicy};
pub use client::{ImageCheck, ImageCheckConfig, ImageCheckError, ImageChecker, UnknownReason};

/// Whether (and how) the template controller asks registries about images.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageCheckSettings {
    /// Never ask: `ImageAvailable` stays Unknown with reason `ImageCheckDisabled` (the
    /// simulated world, which has no registry).
    Off,
    /// Ask with this client configuration.
    Registry(ImageCheckConfig),
}

impl Default for ImageCheckSettings {
    /// Ask every registry at its own address, with the default deadlines.
    fn default() -> Self {
        Self::Registry(ImageCheckConfig::default())
    }
}
