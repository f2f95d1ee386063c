//! The last answer per image, so a converged template is not re-checked on every pass: an image
//! found is checked again hours later, one missing or undecided within minutes.
//!
//! The policy ([`RecheckPolicy::recheck_after`]) is pure; [`ImageCheckCache`] is the one owner of
//! the answers, shared by the template reconciler's tasks.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use clock::Timestamp;

use super::client::ImageCheck;
use crate::api::image_reference::ImageReference;

/// How long an answer stands before the registry is asked again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecheckPolicy {
    /// After `Exists` (a tag can be deleted or moved, rarely).
    pub found: Duration,
    /// After `Missing` (someone may be pushing it right now).
    pub missing: Duration,
    /// After `Unknown` (the registry may be back).
    pub unknown: Duration,
}

impl Default for RecheckPolicy {
    fn default() -> Self {
        Self {
            found: Duration::from_secs(6 * 3600),
            missing: Duration::from_secs(120),
            unknown: Duration::from_secs(60),
        }
    }
}

impl RecheckPolicy {
    /// How long `check` stands.
    pub fn recheck_after(&self, check: &ImageCheck) -> Duration {
        match check {
            ImageCheck::Exists { .. } => self.found,
            ImageCheck::Missing { .. } => self.missing,
            ImageCheck::Unknown { .. } => self.unknown,
        }
    }

    fn longest(&self) -> Duration {
        self.found.max(self.missing).max(self.unknown)
    }
}

/// One registry answer and when it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedImage {
    /// The answer.
    pub check: ImageCheck,
    /// When it was given (the injected clock's time).
    pub checked_at: Timestamp,
    /// When to ask again.
    pub recheck_at: Timestamp,
}

/// The last answer per image (keyed by the canonical reference).
#[derive(Debug, Default)]
pub struct ImageCheckCache {
    policy: RecheckPolicy,
    entries: Mutex<HashMap<String, CheckedImage>>,
}

impl ImageCheckCache {
    /// An empty cache with `policy`.
    pub fn new(policy: RecheckPolicy) -> Self {
        Self {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The policy in use.
    pub fn policy(&self) -> RecheckPolicy {
        self.policy
    }

    /// The answer for `image` when it still stands at `now`.
    pub fn fresh(&self, image: &ImageReference, now: Timestamp) -> Option<CheckedImage> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(&image.to_string())
            .filter(|entry| entry.recheck_at > now)
            .cloned()
    }

    /// Records `check` for `image` at `now` and returns the entry; drops answers too old to
    /// matter, so images no template uses any more do not accumulate.
    pub fn record(
        &self,
        image: &ImageReference,
        check: ImageCheck,
        now: Timestamp,
    ) -> CheckedImage {
        let entry = CheckedImage {
            recheck_at: clock::add(now, self.policy.recheck_after(&check)),
            check,
            checked_at: now,
        };
        let longest = self.policy.longest();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|_, e| clock::elapsed(e.checked_at, now) <= longest);
        entries.insert(image.to_string(), entry.clone());
        entry
    }

    /// Forgets every answer (the next pass asks every registry again).
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_check::UnknownReason;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn image(name: &str) -> ImageReference {
        ImageReference::parse(name).unwrap()
    }

    #[test]
    fn answers_stand_for_the_policy_interval_of_their_kind() {
        let policy = RecheckPolicy::default();
        let cases = [
            (ImageCheck::Exists { digest: None }, policy.found),
            (
                ImageCheck::Missing {
                    detail: String::new(),
                },
                policy.missing,
            ),
            (
                ImageCheck::Unknown {
                    reason: UnknownReason::Unreachable,
                    detail: String::new(),
                },
                policy.unknown,
            ),
        ];
        for (check, interval) in cases {
            let cache = ImageCheckCache::new(policy);
            let nginx = image("nginx");
            let recorded = cache.record(&nginx, check.clone(), at(1000));
            assert_eq!(recorded.recheck_at, clock::add(at(1000), interval));
            let just_before = clock::add(at(1000), interval - Duration::from_secs(1));
            assert_eq!(cache.fresh(&nginx, just_before), Some(recorded.clone()));
            assert_eq!(cache.fresh(&nginx, recorded.recheck_at), None, "{check:?}");
        }
    }

    #[test]
    fn spellings_of_one_image_share_an_entry_and_old_ones_are_dropped() {
        let cache = ImageCheckCache::new(RecheckPolicy::default());
        cache.record(&image("nginx"), ImageCheck::Exists { digest: None }, at(0));
        assert!(
            cache
                .fresh(&image("docker.io/library/nginx:latest"), at(10))
                .is_some()
        );
        assert!(cache.fresh(&image("nginx:1"), at(10)).is_none());
        let later = clock::add(
            at(0),
            RecheckPolicy::default().found + Duration::from_secs(1),
        );
        cache.record(
            &image("ghcr.io/a/b:1"),
            ImageCheck::Exists { digest: None },
            later,
        );
        let entries = cache.entries.lock().unwrap();
        assert_eq!(entries.len(), 1);
        assert!(entries.contains_key("ghcr.io/a/b:1"));
    }
}
