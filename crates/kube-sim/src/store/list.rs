//! Lists and paging. Every page of a paged list shows the state at the first page's
//! resourceVersion; later pages are reconstructed from the change history.

use super::{Bucket, ChangeType, ListPage, ListQuery, State};
use crate::object_metadata::{name_of, namespace_of};
use crate::resources::{ResourceInfo, TypeKey};
use crate::status::ApiError;
use serde_json::{Value, json};
use std::sync::Arc;

/// Parsed `?continue=` token: the resourceVersion of the first page and the last key served.
fn decode_continue(token: &str) -> Option<(u64, (String, String))> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    Some((
        v.get("rv")?.as_u64()?,
        (
            v.get("ns")?.as_str()?.to_string(),
            v.get("name")?.as_str()?.to_string(),
        ),
    ))
}

/// What the real server says when a continue token is older than the history it keeps.
const CONTINUE_TOO_OLD: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"rv": rv, "ns": ns, "name": name}).to_string())
}

impl State {
    /// Lists objects of a type.
    pub fn list(&self, info: &ResourceInfo, q: &ListQuery) -> Result<ListPage, ApiError> {
        let token = match &q.continue_token {
            Some(t) => Some(decode_continue(t).ok_or_else(|| {
                ApiError::BadRequest("continue key is not valid: illegal base64 data".into())
            })?),
            None => None,
        };
        let empty = Bucket::new();
        let current = self.bucket(&info.key()).unwrap_or(&empty);
        // Every page shows the state at the first page's resourceVersion, as etcd's
        // snapshot reads do, so a paging reflector never misses a write made meanwhile.
        let (list_rv, start, snapshot) = match token {
            Some((rv, start)) if rv < self.rv => (
                rv,
                Some(start),
                Some(self.bucket_at(&info.key(), current, rv)?),
            ),
            Some((rv, start)) => (rv, Some(start), None),
            None => (self.rv, None, None),
        };
        let bucket = snapshot.as_ref().unwrap_or(current);
        let matching: Vec<&Arc<Value>> = bucket
            .iter()
            .filter(|((ns, name), obj)| {
                q.namespace.as_ref().is_none_or(|want| want == ns)
                    && start
                        .as_ref()
                        .is_none_or(|s| (ns.clone(), name.clone()) > *s)
                    && q.labels.as_ref().is_none_or(|l| l.matches(obj))
                    && q.fields.as_ref().is_none_or(|f| f.matches(obj))
            })
            .map(|(_, o)| o)
            .collect();
        let total = matching.len();
        let take = q.limit.filter(|l| *l > 0).unwrap_or(total).min(total);
        let items: Vec<Arc<Value>> = matching[..take].iter().map(|o| (*o).clone()).collect();
        let (continue_token, remaining) = match items.last() {
            Some(last) if take < total => (
                Some(encode_continue(list_rv, namespace_of(last), name_of(last))),
                Some(total - take),
            ),
            _ => (None, None),
        };
        Ok(ListPage {
            items,
            rv: list_rv,
            continue_token,
            remaining,
        })
    }

    /// The objects of one type as they were at `rv`: the current ones with every later
    /// change undone. 410 Gone when the history no longer reaches back that far.
    fn bucket_at(&self, key: &TypeKey, current: &Bucket, rv: u64) -> Result<Bucket, ApiError> {
        if rv < self.oldest_watchable_rv() {
            return Err(ApiError::Gone(CONTINUE_TOO_OLD.into()));
        }
        let mut bucket = current.clone();
        for change in self.history.iter().rev().take_while(|c| c.rv > rv) {
            if &change.key != key {
                continue;
            }
            let k = (
                change.namespace.clone(),
                name_of(&change.object).to_string(),
            );
            match (change.change, &change.old) {
                (ChangeType::Added, _) => {
                    bucket.remove(&k);
                }
                (_, Some(old)) => {
                    bucket.insert(k, old.clone());
                }
                (ChangeType::Deleted, None) => {
                    bucket.insert(k, change.object.clone());
                }
                (_, None) => {}
            }
        }
        Ok(bucket)
    }
}
