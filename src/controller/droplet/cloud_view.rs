//! One list of the installation's droplets shared by every Droplet that is booting, instead of
//! one GET per droplet per poll: at a burst of 100 new droplets polled every 10 s, GETs alone
//! would be 600 requests a minute against DigitalOcean's 250. Concurrent callers wait for the
//! same list (the lock is held across it); a list younger than the TTL is reused.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::Mutex;

use crate::cloud::CloudError;
use crate::cloud::client::DoClient;
use crate::cloud::models::Droplet as CloudDroplet;

/// How long one list answers for every booting droplet (clock time).
pub const LIST_TTL: Duration = Duration::from_secs(5);

type Listed = (Timestamp, Arc<HashMap<u64, CloudDroplet>>);

/// The shared, briefly cached list of droplets carrying the cluster tag.
#[derive(Debug, Default)]
pub struct CloudView {
    listed: Mutex<Option<Listed>>,
}

impl CloudView {
    /// The droplet `id` as of a list at most [`LIST_TTL`] old, or `None` when that list does not
    /// show it (list lag, a droplet without the cluster tag, or gone: the caller GETs it).
    pub async fn find(
        &self,
        cloud: &DoClient,
        cluster_tag: &str,
        id: u64,
    ) -> Result<Option<CloudDroplet>, CloudError> {
        let mut listed = self.listed.lock().await;
        let now = cloud.clock().now();
        let fresh = listed
            .as_ref()
            .is_some_and(|(at, _)| clock::elapsed(*at, now) < LIST_TTL);
        if !fresh {
            let droplets = cloud.list_droplets_by_tag(cluster_tag).await?;
            let by_id = droplets.into_iter().map(|d| (d.id, d)).collect();
            *listed = Some((now, Arc::new(by_id)));
        }
        Ok(listed
            .as_ref()
            .and_then(|(_, by_id)| by_id.get(&id).cloned()))
    }
}
