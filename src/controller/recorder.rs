//! Publishes events.k8s.io/v1 Events, repeated ones as a series, like kube-runtime's
//! `Recorder`, in bounded memory and time (decision 0025).
//!
//! kube-runtime's recorder keeps a full copy of every event it published in the last six
//! minutes (keyed by another copy of the object reference), and scans that whole cache on every
//! publish. At 10,000 objects with two events each that was about 20 MB and a quadratic amount
//! of work under one lock. This one keeps a 64-bit key and what the series patch needs (the
//! event's namespace, name and count), and collects expired entries at most once a minute.
//!
//! Semantics are the recorder's: an event with the same type, reason, action, regarding object
//! and related object as one published less than [`SERIES_TTL`] ago is not created again; the
//! first event's `series` (count, last observed time) is patched instead.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams, PostParams};
pub use kube::runtime::events::{Event, EventType};

/// How long a published event can still be continued as a series (kube-runtime's TTL).
pub const SERIES_TTL: SignedDuration = SignedDuration::from_mins(6);

/// How often expired entries are collected at most.
const COLLECT_EVERY: SignedDuration = SignedDuration::from_mins(1);

/// What a series continuation needs of a published event.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Published {
    namespace: String,
    name: String,
    count: i32,
    last: Timestamp,
}

#[derive(Debug, Default)]
struct Cache {
    entries: HashMap<u64, Published>,
    collected: Option<Timestamp>,
}

impl Cache {
    /// Drops entries older than the TTL, at most once per [`COLLECT_EVERY`].
    fn collect(&mut self, now: Timestamp) {
        if self
            .collected
            .is_some_and(|at| now.duration_since(at) < COLLECT_EVERY)
        {
            return;
        }
        self.collected = Some(now);
        self.entries
            .retain(|_, p| now.duration_since(p.last) < SERIES_TTL);
    }

    /// The series continuation of `key` at `now`, if an event of it is recent enough.
    fn continuation(&self, key: u64, now: Timestamp) -> Option<Published> {
        let p = self.entries.get(&key)?;
        (now.duration_since(p.last) < SERIES_TTL).then(|| Published {
            count: p.count.saturating_add(1),
            last: now,
            ..p.clone()
        })
    }
}

/// The events.k8s.io/v1 event recorder of the operator.
pub struct EventRecorder {
    client: kube::Client,
    controller: String,
    instance: String,
    cache: Mutex<Cache>,
}

impl EventRecorder {
    /// A recorder reporting as `controller` (and `instance`, by default the controller).
    pub fn new(client: kube::Client, controller: &str, instance: Option<String>) -> Self {
        Self {
            client,
            controller: controller.to_string(),
            instance: instance.unwrap_or_else(|| controller.to_string()),
            cache: Mutex::default(),
        }
    }

    /// Entries kept for series (for tests and diagnostics).
    pub fn cached(&self) -> usize {
        self.cache.lock().map(|c| c.entries.len()).unwrap_or(0)
    }

    /// Publishes `event` about `regarding` (in its namespace, `default` for cluster-scoped
    /// objects): a new Event, or the next count of a recent identical one.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = series_key(event, regarding);
        let continuation = match self.cache.lock() {
            Ok(mut cache) => {
                cache.collect(now);
                cache.continuation(key, now)
            }
            Err(_) => None,
        };
        let continued = match continuation {
            Some(next) => {
                let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), &next.namespace);
                let patch = serde_json::json!({
                    "series": { "count": next.count, "lastObservedTime": MicroTime(now) }
                });
                match events
                    .patch(&next.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => Some(next),
                    // The event is gone (deleted, or expired on the server): start anew.
                    Err(kube::Error::Api(status)) if status.code == 404 => None,
                    Err(e) => return Err(e),
                }
            }
            None => None,
        };
        let published = match continued {
            Some(next) => next,
            None => {
                let new = self.new_event(event, regarding, now);
                let namespace = new.metadata.namespace.clone().unwrap_or_default();
                let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
                events.create(&PostParams::default(), &new).await?;
                Published {
                    namespace,
                    name: new.metadata.name.unwrap_or_default(),
                    count: 1,
                    last: now,
                }
            }
        };
        if let Ok(mut cache) = self.cache.lock() {
            cache.entries.insert(key, published);
        }
        Ok(())
    }

    fn new_event(&self, event: &Event, regarding: &ObjectReference, now: Timestamp) -> K8sEvent {
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let object = regarding.name.as_deref().unwrap_or(&self.controller);
        K8sEvent {
            metadata: ObjectMeta {
                name: Some(format!("{object}.{:x}", now.as_nanosecond())),
                namespace: Some(namespace),
                ..Default::default()
            },
            event_time: Some(MicroTime(now)),
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_string(),
            ),
            ..Default::default()
        }
    }
}

/// What makes two events the same series: type, reason, action, the regarding object and the
/// related one (as kube-runtime's recorder; the reporter is the same for all of this recorder).
fn series_key(event: &Event, regarding: &ObjectReference) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    matches!(event.type_, EventType::Warning).hash(&mut h);
    event.reason.hash(&mut h);
    event.action.hash(&mut h);
    for reference in std::iter::once(regarding).chain(event.secondary.as_ref()) {
        reference.api_version.hash(&mut h);
        reference.kind.hash(&mut h);
        reference.namespace.hash(&mut h);
        reference.name.hash(&mut h);
        reference.uid.hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(name: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("MCPDeployment".into()),
            namespace: Some("team".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        }
    }

    fn warning(reason: &str) -> Event {
        Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some("n".into()),
            action: "Reconcile".into(),
            secondary: None,
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).expect("timestamp")
    }

    #[test]
    fn the_key_tells_series_apart_by_object_reason_and_type() {
        let a = series_key(&warning("X"), &reference("a"));
        assert_eq!(a, series_key(&warning("X"), &reference("a")));
        assert_ne!(a, series_key(&warning("Y"), &reference("a")));
        assert_ne!(a, series_key(&warning("X"), &reference("b")));
        let mut normal = warning("X");
        normal.type_ = EventType::Normal;
        assert_ne!(a, series_key(&normal, &reference("a")));
        // The note is not part of it: a repeated failure with a new message continues.
        let mut other_note = warning("X");
        other_note.note = Some("other".into());
        assert_eq!(a, series_key(&other_note, &reference("a")));
    }

    #[test]
    fn a_recent_event_continues_as_a_series_and_an_old_one_does_not() {
        let mut cache = Cache::default();
        cache.entries.insert(
            7,
            Published {
                namespace: "team".into(),
                name: "a.1".into(),
                count: 1,
                last: at(0),
            },
        );
        let next = cache.continuation(7, at(60)).expect("continues");
        assert_eq!(
            (next.count, next.name.as_str(), next.last),
            (2, "a.1", at(60))
        );
        assert_eq!(cache.continuation(7, at(6 * 60)), None);
        assert_eq!(cache.continuation(8, at(1)), None);
    }

    #[test]
    fn expired_entries_are_collected_at_most_once_a_minute() {
        let mut cache = Cache::default();
        let entry = |last| Published {
            namespace: "team".into(),
            name: "e".into(),
            count: 1,
            last,
        };
        cache.entries.insert(1, entry(at(0)));
        cache.entries.insert(2, entry(at(300)));
        cache.collect(at(330));
        assert_eq!(cache.entries.len(), 2, "nothing expired yet");
        // 1 expires at 360; the next collection may run from 390 on.
        cache.collect(at(370));
        assert_eq!(cache.entries.len(), 2, "collected less than a minute ago");
        cache.collect(at(390));
        assert_eq!(cache.entries.keys().copied().collect::<Vec<_>>(), vec![2]);
    }
}
