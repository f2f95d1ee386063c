//! Watch streams: newline-delimited `{"type": ..., "object": ...}` events from a
//! resourceVersion, with selector transitions, bookmarks, timeouts and 410 Gone.

use crate::resources::ResourceInfo;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Change, ChangeType};
use crate::table::{self, IncludeObject};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// How events are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rendering {
    /// Plain objects.
    Object,
    /// One-row `Table` objects (`kubectl get -w`).
    Table(IncludeObject),
    /// `PartialObjectMetadata`.
    Metadata,
}

/// Everything a watch needs after the initial snapshot is taken.
pub struct WatchSpec {
    /// Type watched.
    pub info: Arc<ResourceInfo>,
    /// Version requested (objects are shown with this apiVersion).
    pub version: String,
    /// Namespace filter.
    pub namespace: Option<String>,
    /// Label selector.
    pub labels: Option<LabelSelector>,
    /// Field selector.
    pub fields: Option<FieldSelector>,
    /// Send BOOKMARK events.
    pub bookmarks: bool,
    /// Bookmark period.
    pub bookmark_interval: Duration,
    /// Stream ends after this.
    pub timeout: Duration,
    /// Output form.
    pub rendering: Rendering,
    /// The server's clock (table ages are computed against it).
    pub clock: clock::SharedClock,
}

impl WatchSpec {
    fn matches(&self, ns: &str, obj: &Value) -> bool {
        self.namespace.as_ref().is_none_or(|n| n == ns)
            && self.labels.as_ref().is_none_or(|l| l.matches(obj))
            && self.fields.as_ref().is_none_or(|f| f.matches(obj))
    }

    /// The event type to send for a change, if any (selector transitions become ADDED/DELETED).
    pub fn event_for(&self, c: &Change) -> Option<&'static str> {
        if c.key != self.info.key() {
            return None;
        }
        let now = self.matches(&c.namespace, &c.object);
        let before = c
            .old
            .as_ref()
            .is_some_and(|o| self.matches(&c.namespace, o));
        match c.change {
            ChangeType::Added => now.then_some("ADDED"),
            ChangeType::Deleted => (now || before).then_some("DELETED"),
            ChangeType::Modified => match (before, now) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            },
        }
    }

    /// Renders an object for the stream.
    pub fn render(&self, obj: &Value, first: bool) -> Value {
        let mut o = obj.clone();
        o["apiVersion"] = json!(self.info.api_version(&self.version));
        match self.rendering {
            Rendering::Object => o,
            Rendering::Metadata => {
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata").cloned().unwrap_or(Value::Null)})
            }
            Rendering::Table(include) => {
                let mut t = table::table(
                    &self.info,
                    &self.version,
                    &[&o],
                    include,
                    json!({"resourceVersion": o.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)}),
                    self.clock.now(),
                );
                if !first {
                    t["columnDefinitions"] = json!([]);
                }
                t
            }
        }
    }

    fn bookmark(&self, rv: u64) -> Value {
        json!({"type": "BOOKMARK", "object": {
            "kind": self.info.kind,
            "apiVersion": self.info.api_version(&self.version),
            "metadata": {"resourceVersion": rv.to_string()}
        }})
    }
}

/// A 410 Gone watch event (sent as the only event of the stream).
pub fn gone_event(rv: u64, oldest: u64) -> Value {
    json!({"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("too old resource version: {rv} ({oldest})"),
        "reason": "Expired", "code": 410
    }})
}

fn line(v: &Value) -> Vec<u8> {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    b
}

/// Pumps events to `out` until timeout, shutdown, lag, or the client goes away.
#[allow(clippy::too_many_arguments)]
pub async fn pump(
    spec: WatchSpec,
    initial: Vec<(&'static str, Arc<Value>)>,
    initial_events_end: bool,
    past: Vec<Arc<Change>>,
    mut rx: broadcast::Receiver<Arc<Change>>,
    start_rv: u64,
    mut shutdown: watch::Receiver<bool>,
    out: futures::channel::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
) {
    use futures::SinkExt;
    let mut out = out;
    let mut first = true;
    let mut last_rv = start_rv;
    for (ty, obj) in initial {
        let ev = json!({"type": ty, "object": spec.render(&obj, first)});
        first = false;
        if out.send(Ok(line(&ev))).await.is_err() {
            return;
        }
    }
    if initial_events_end {
        // Streaming lists (`sendInitialEvents=true`): this bookmark tells the client the
        // initial state is complete.
        let mut b = spec.bookmark(start_rv);
        b["object"]["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        if out.send(Ok(line(&b))).await.is_err() {
            return;
        }
    }
    for c in past {
        last_rv = c.rv;
        if let Some(ty) = spec.event_for(&c) {
            let ev = json!({"type": ty, "object": spec.render(&c.object, first)});
            first = false;
            if out.send(Ok(line(&ev))).await.is_err() {
                return;
            }
        }
    }
    let deadline = tokio::time::sleep(spec.timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(spec.bookmark_interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = &mut deadline => return,
            _ = shutdown.changed() => return,
            _ = ticker.tick(), if spec.bookmarks => {
                if out.send(Ok(line(&spec.bookmark(last_rv)))).await.is_err() {
                    return;
                }
            }
            msg = rx.recv() => {
                let c = match msg {
                    Ok(c) => c,
                    // A watcher that falls behind is closed; the client re-watches from its last version.
                    Err(_) => return,
                };
                if c.rv <= last_rv {
                    continue;
                }
                last_rv = c.rv;
                if let Some(ty) = spec.event_for(&c) {
                    let ev = json!({"type": ty, "object": spec.render(&c.object, first)});
                    first = false;
                    if out.send(Ok(line(&ev))).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}
