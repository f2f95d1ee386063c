//! The state of the simulated DigitalOcean: droplets, actions, rate-limit logs and usage.
//! Every method takes `now`, so the behaviour is a pure function of inputs and the seed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::Duration;

use clock::Timestamp;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::catalog;
use crate::cloud::models::{
    Action, ActionStatus, Droplet, DropletActionRequest, DropletCreateRequest, DropletStatus,
    Image, NetworkType, NetworkV4, Networks,
};
use crate::cloud::offline_catalog::{region_model, size_model};
use crate::sim::digitalocean::config::{FaultConfig, SimDoConfig};
use crate::sim::digitalocean::{ActiveDroplet, DropletUsage};

/// An API error the simulator answers with (status, DigitalOcean id, message, extra fields).
#[derive(Debug, Clone, PartialEq)]
pub struct SimError {
    /// HTTP status.
    pub status: u16,
    /// DigitalOcean's error id.
    pub id: &'static str,
    /// The message.
    pub message: String,
    /// Extra body fields (e.g. `error_attributes`).
    pub extra: Option<serde_json::Value>,
}

impl SimError {
    fn new(status: u16, id: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            id,
            message: message.into(),
            extra: None,
        }
    }

    /// 404 with DigitalOcean's message.
    pub fn not_found() -> Self {
        Self::new(
            404,
            "not_found",
            "The resource you requested could not be found.",
        )
    }

    /// 422 with a message.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(422, "unprocessable_entity", message)
    }

    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }

    /// 500 with DigitalOcean's message.
    pub fn server_error() -> Self {
        Self::new(500, "server_error", "Unexpected server-side error")
    }
}

/// DigitalOcean's droplet-limit message (research section 1).
pub const DROPLET_LIMIT_MESSAGE: &str =
    "creating this/these droplet(s) will exceed your droplet limit";

#[derive(Debug, Clone)]
struct SimDroplet {
    droplet: Droplet,
    created: Timestamp,
    active_at: Option<Timestamp>,
    lost_at: Option<Timestamp>,
    user_data: Option<String>,
    monitoring: bool,
    ipv4: Ipv4Addr,
    private_ipv4: Ipv4Addr,
    locked_by: Option<u64>,
    announced: bool,
    usage: DropletUsage,
    /// GET answers 404 until then (a transient 404 injected by a test).
    hidden_from_get_until: Option<Timestamp>,
    /// Lists leave it out until then (list lag injected by a test).
    hidden_from_list_until: Option<Timestamp>,
}

#[derive(Debug, Clone)]
struct SimAction {
    action: Action,
    completes_at: Option<Timestamp>,
    effect: Option<ActionEffect>,
}

/// What a droplet action changes when it completes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ActionEffect {
    /// The droplet's status becomes this.
    Status(DropletStatus),
    /// The droplet's size becomes this slug.
    Resize(String),
}

/// Something the hook must be told, produced by [`CloudState::advance`] and deletes.
#[derive(Debug, Clone)]
pub enum LifecycleEvent {
    /// A droplet became active.
    Active(ActiveDroplet),
    /// A droplet was deleted or vanished.
    Deleted(u64),
}

/// Outcome of the rate limiter for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// `ratelimit-limit`.
    pub limit: u32,
    /// `ratelimit-remaining`.
    pub remaining: u32,
    /// `ratelimit-reset`, Unix seconds.
    pub reset: u64,
    /// `retry-after` seconds (burst 429 only).
    pub retry_after: Option<u64>,
}

/// Request statistics, for benchmarks and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimStats {
    /// Requests that passed the rate limiter.
    pub requests: u64,
    /// 429 responses sent.
    pub rate_limited: u64,
    /// Most requests accepted within any 60 s window (simulated time).
    pub peak_per_minute: u64,
    /// Droplets created so far.
    pub droplets_created: u64,
}

/// The simulated cloud.
#[derive(Debug)]
pub struct CloudState {
    config: SimDoConfig,
    rng: StdRng,
    next_droplet_id: u64,
    next_action_id: u64,
    next_ip_index: u32,
    droplets: BTreeMap<u64, SimDroplet>,
    actions: HashMap<u64, SimAction>,
    request_log: HashMap<String, VecDeque<Timestamp>>,
    minute_window: VecDeque<Timestamp>,
    forced_rate_limits: u32,
    stats: SimStats,
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

impl CloudState {
    /// A world with no droplets.
    pub fn new(config: SimDoConfig) -> Self {
        let first_address = config.first_address;
        Self {
            rng: StdRng::seed_from_u64(config.seed),
            config,
            next_droplet_id: 500_000_001,
            next_action_id: 2_000_000_001,
            next_ip_index: first_address,
            droplets: BTreeMap::new(),
            actions: HashMap::new(),
            request_log: HashMap::new(),
            minute_window: VecDeque::new(),
            forced_rate_limits: 0,
            stats: SimStats::default(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &SimDoConfig {
        &self.config
    }

    /// Replaces the fault switches.
    pub fn set_faults(&mut self, faults: FaultConfig) {
        self.config.faults = faults;
    }

    /// Makes the next `count` requests answer 429 (a "429 storm").
    pub fn force_rate_limited(&mut self, count: u32) {
        self.forced_rate_limits = self.forced_rate_limits.saturating_add(count);
    }

    /// Statistics so far.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Counts a request of `token` at `now` against the sliding windows.
    pub fn admit(&mut self, token: &str, now: Timestamp) -> RateDecision {
        let limits = self.config.rate_limits;
        let enforce = self.config.enforce_rate_limits;
        let log = self.request_log.entry(token.to_owned()).or_default();
        while log.front().is_some_and(|t| clock::elapsed(*t, now) >= HOUR) {
            log.pop_front();
        }
        let in_minute = log
            .iter()
            .rev()
            .take_while(|t| clock::elapsed(**t, now) < MINUTE)
            .count();
        let reset_of = |log: &VecDeque<Timestamp>| {
            log.front().map_or(clock::unix_seconds(now) + 3600, |t| {
                clock::unix_seconds(clock::add(*t, HOUR))
            })
        };
        let forced = self.forced_rate_limits > 0;
        let minute_full = enforce && in_minute >= limits.per_minute as usize;
        let hour_full = enforce && log.len() >= limits.per_hour as usize;
        if forced || minute_full || hour_full {
            if forced {
                self.forced_rate_limits -= 1;
            }
            self.stats.rate_limited += 1;
            let retry_after = if hour_full && !minute_full && !forced {
                None
            } else if minute_full {
                let oldest_in_minute = log[log.len() - in_minute];
                let wait = clock::elapsed(now, clock::add(oldest_in_minute, MINUTE));
                Some(wait.as_secs() + 1)
            } else {
                Some(1)
            };
            return RateDecision {
                allowed: false,
                limit: limits.per_hour,
                remaining: 0,
                reset: reset_of(log),
                retry_after,
            };
        }
        log.push_back(now);
        let remaining = limits.per_hour.saturating_sub(log.len() as u32);
        let reset = reset_of(log);
        self.stats.requests += 1;
        self.minute_window.push_back(now);
        while self
            .minute_window
            .front()
            .is_some_and(|t| clock::elapsed(*t, now) >= MINUTE)
        {
            self.minute_window.pop_front();
        }
        self.stats.peak_per_minute = self
            .stats
            .peak_per_minute
            .max(self.minute_window.len() as u64);
        RateDecision {
            allowed: true,
            limit: limits.per_hour,
            remaining,
            reset,
            retry_after: None,
        }
    }

    /// Headers for a response to an unauthenticated request (nothing counted).
    pub fn unauthenticated_limits(&self, now: Timestamp) -> RateDecision {
        RateDecision {
            allowed: true,
            limit: self.config.rate_limits.per_hour,
            remaining: self.config.rate_limits.per_hour,
            reset: clock::unix_seconds(now),
            retry_after: None,
        }
    }

    /// Draws whether this request fails with an injected 500.
    pub fn draw_server_error(&mut self) -> bool {
        let rate = self.config.faults.server_error_rate;
        rate > 0.0 && self.rng.random::<f64>() < rate
    }

    fn next_ip(&mut self) -> (Ipv4Addr, Ipv4Addr) {
        let i = self.next_ip_index;
        self.next_ip_index += 1;
        // 250 hosts per /24, skipping .0 and .255, starting at 127.10.0.1.
        let host = (i % 250 + 1) as u8;
        let c = ((i / 250) % 250) as u8;
        let b = 10u8.saturating_add((i / 62_500) as u8);
        (
            Ipv4Addr::new(127, b, c, host),
            Ipv4Addr::new(10, b, c, host),
        )
    }

    /// `POST /v2/droplets`: validates like DigitalOcean and commits the droplet.
    pub fn create_droplet(
        &mut self,
        request: &DropletCreateRequest,
        now: Timestamp,
    ) -> Result<(Droplet, Action), SimError> {
        validate_name(&request.name)?;
        let size = catalog::size(&request.size).ok_or_else(|| {
            SimError::unprocessable("You specified an invalid size for Droplet creation.")
        })?;
        let region = catalog::region(&request.region)
            .filter(|r| r.available)
            .ok_or_else(|| {
                SimError::unprocessable("You specified an invalid region for Droplet creation.")
            })?;
        if !self.config.images.iter().any(|i| i == &request.image) {
            return Err(SimError::unprocessable(
                "You specified an invalid image for Droplet creation.",
            ));
        }
        if request
            .user_data
            .as_ref()
            .is_some_and(|u| u.len() > 64 * 1024)
        {
            return Err(SimError::unprocessable(
                "user_data has a maximum size of 64 KiB",
            ));
        }
        let sold_out = self
            .config
            .faults
            .unavailable
            .iter()
            .any(|(s, r)| s == &request.size && r == &request.region);
        if !size.sold_in(region.slug) || sold_out {
            let available: Vec<String> = catalog::regions()
                .iter()
                .filter(|r| size.sold_in(r.slug))
                .filter(|r| {
                    !self
                        .config
                        .faults
                        .unavailable
                        .iter()
                        .any(|(s, reg)| s == &request.size && reg == r.slug)
                })
                .map(|r| r.slug.to_owned())
                .collect();
            let mut error = SimError::unprocessable(format!(
                "The size {} is temporarily unavailable in {}. Please select a different region or size.",
                request.size, request.region
            ));
            error.extra = Some(serde_json::json!({
                "error_attributes": { "available_regions": available }
            }));
            return Err(error);
        }
        if self.droplets.len() as u64 >= u64::from(self.config.droplet_limit) {
            return Err(SimError::unprocessable(DROPLET_LIMIT_MESSAGE));
        }
        for tag in &request.tags {
            validate_tag(tag)?;
        }

        let id = self.next_droplet_id;
        self.next_droplet_id += 1;
        let (ipv4, private_ipv4) = self.next_ip();
        let never_active = self.draw(self.config.faults.never_active_rate);
        let boot = self.config.boot_delay.sample(self.rng.random::<f64>());
        let active_at = (!never_active).then_some(clock::add(now, boot));
        let lost_at = if self.draw(self.config.faults.lost_droplet_rate) {
            active_at.map(|a| clock::add(a, boot.max(Duration::from_secs(1))))
        } else {
            None
        };
        let mut features = vec!["private_networking".to_owned()];
        if request.monitoring {
            features.push("monitoring".to_owned());
        }
        if request.ipv6 {
            features.push("ipv6".to_owned());
        }
        let droplet = Droplet {
            id,
            name: request.name.clone(),
            memory: size.memory_mib,
            vcpus: size.vcpus,
            disk: size.disk_gib,
            locked: false,
            status: DropletStatus::New,
            kernel: None,
            created_at: rfc3339(now),
            features,
            backup_ids: Vec::new(),
            next_backup_window: None,
            snapshot_ids: Vec::new(),
            image: Some(image_for(&request.image, region.slug)),
            volume_ids: Vec::new(),
            size: Some(size_model(size)),
            size_slug: size.slug.to_owned(),
            networks: Networks::default(),
            region: Some(region_model(region)),
            tags: request.tags.clone(),
            vpc_uuid: Some(
                request
                    .vpc_uuid
                    .clone()
                    .unwrap_or_else(|| format!("sim-vpc-{}", region.slug)),
            ),
        };
        let action = self.new_action("create", id, region.slug, now, active_at, None);
        self.droplets.insert(
            id,
            SimDroplet {
                droplet: droplet.clone(),
                created: now,
                active_at,
                lost_at,
                user_data: request.user_data.clone(),
                monitoring: request.monitoring,
                ipv4,
                private_ipv4,
                locked_by: None,
                announced: false,
                usage: DropletUsage::default(),
                hidden_from_get_until: None,
                hidden_from_list_until: None,
            },
        );
        self.stats.droplets_created += 1;
        Ok((droplet, action))
    }

    /// Draws whether a create is committed and then answered with 500.
    pub fn draw_commit_then_fail(&mut self) -> bool {
        self.draw(self.config.faults.create_commit_then_fail_rate)
    }

    /// Draws whether a droplet action is committed and then answered with 500.
    pub fn draw_action_commit_then_fail(&mut self) -> bool {
        self.draw(self.config.faults.action_commit_then_fail_rate)
    }

    fn draw(&mut self, rate: f64) -> bool {
        rate > 0.0 && self.rng.random::<f64>() < rate
    }

    fn new_action(
        &mut self,
        kind: &str,
        droplet_id: u64,
        region: &str,
        now: Timestamp,
        completes_at: Option<Timestamp>,
        effect: Option<ActionEffect>,
    ) -> Action {
        let id = self.next_action_id;
        self.next_action_id += 1;
        let action = Action {
            id,
            status: ActionStatus::InProgress,
            kind: kind.to_owned(),
            started_at: rfc3339(now),
            completed_at: None,
            resource_id: Some(droplet_id),
            resource_type: "droplet".to_owned(),
            region: catalog::region(region).map(region_model),
            region_slug: Some(region.to_owned()),
        };
        self.actions.insert(
            id,
            SimAction {
                action: action.clone(),
                completes_at,
                effect,
            },
        );
        action
    }

    /// Moves time forward: boots droplets, completes actions, loses droplets. Returns the
    /// events the lifecycle hook must hear.
    pub fn advance(&mut self, now: Timestamp) -> Vec<LifecycleEvent> {
        let mut events = Vec::new();
        let mut completed = Vec::new();
        for (id, action) in &mut self.actions {
            if action.action.status == ActionStatus::InProgress
                && action.completes_at.is_some_and(|t| t <= now)
            {
                action.action.status = ActionStatus::Completed;
                action.action.completed_at = action.completes_at.map(rfc3339);
                completed.push((*id, action.action.resource_id, action.effect.clone()));
            }
        }
        for (action_id, droplet_id, effect) in completed {
            if let Some(d) = droplet_id.and_then(|id| self.droplets.get_mut(&id))
                && d.locked_by == Some(action_id)
            {
                d.locked_by = None;
                d.droplet.locked = false;
                match effect {
                    Some(ActionEffect::Status(status)) => d.droplet.status = status,
                    Some(ActionEffect::Resize(slug)) => {
                        if let Some(size) = catalog::size(&slug) {
                            d.droplet.memory = size.memory_mib;
                            d.droplet.vcpus = size.vcpus;
                            d.droplet.disk = size.disk_gib;
                            d.droplet.size = Some(size_model(size));
                            d.droplet.size_slug = slug;
                        }
                    }
                    None => {}
                }
            }
        }
        let mut lost = Vec::new();
        for (id, d) in &mut self.droplets {
            if d.droplet.status == DropletStatus::New && d.active_at.is_some_and(|t| t <= now) {
                d.droplet.status = DropletStatus::Active;
                d.droplet.networks = Networks {
                    v4: vec![
                        NetworkV4 {
                            ip_address: d.ipv4.to_string(),
                            netmask: "255.0.0.0".to_owned(),
                            gateway: Some("127.0.0.1".to_owned()),
                            kind: NetworkType::Public,
                        },
                        NetworkV4 {
                            ip_address: d.private_ipv4.to_string(),
                            netmask: "255.255.0.0".to_owned(),
                            gateway: None,
                            kind: NetworkType::Private,
                        },
                    ],
                    v6: Vec::new(),
                };
            }
            if d.droplet.status != DropletStatus::New && !d.announced {
                d.announced = true;
                events.push(LifecycleEvent::Active(ActiveDroplet {
                    id: *id,
                    name: d.droplet.name.clone(),
                    ipv4: d.ipv4,
                    private_ipv4: d.private_ipv4,
                    user_data: d.user_data.clone(),
                    tags: d.droplet.tags.clone(),
                    region: d.droplet.region_slug().to_owned(),
                    size: d.droplet.size_slug.clone(),
                }));
            }
            if d.lost_at.is_some_and(|t| t <= now) {
                lost.push(*id);
            }
        }
        for id in lost {
            self.droplets.remove(&id);
            events.push(LifecycleEvent::Deleted(id));
        }
        events
    }

    /// The earliest future instant at which [`CloudState::advance`] has work, if any.
    pub fn next_wakeup(&self) -> Option<Timestamp> {
        let boots = self
            .droplets
            .values()
            .filter(|d| d.droplet.status == DropletStatus::New)
            .filter_map(|d| d.active_at);
        let losses = self.droplets.values().filter_map(|d| d.lost_at);
        let actions = self
            .actions
            .values()
            .filter(|a| a.action.status == ActionStatus::InProgress)
            .filter_map(|a| a.completes_at);
        boots.chain(losses).chain(actions).min()
    }

    /// `GET /v2/droplets/{id}`.
    pub fn get_droplet(&self, id: u64, now: Timestamp) -> Result<Droplet, SimError> {
        let d = self.droplets.get(&id).ok_or_else(SimError::not_found)?;
        if now < clock::add(d.created, self.config.get_lag) || d.hidden_from_get_until > Some(now) {
            return Err(SimError::not_found());
        }
        Ok(d.droplet.clone())
    }

    /// `GET /v2/droplets` with an optional tag or name filter, hiding droplets still in list lag.
    pub fn list_droplets(
        &self,
        tag: Option<&str>,
        name: Option<&str>,
        now: Timestamp,
    ) -> Vec<Droplet> {
        self.droplets
            .values()
            .filter(|d| {
                now >= clock::add(d.created, self.config.list_lag)
                    && d.hidden_from_list_until.is_none_or(|until| now >= until)
            })
            .filter(|d| tag.is_none_or(|t| d.droplet.tags.iter().any(|x| x == t)))
            .filter(|d| name.is_none_or(|n| d.droplet.name.eq_ignore_ascii_case(n)))
            .map(|d| d.droplet.clone())
            .collect()
    }

    /// Every droplet regardless of lag (for tests and the simulated world).
    pub fn all_droplets(&self) -> Vec<Droplet> {
        self.droplets.values().map(|d| d.droplet.clone()).collect()
    }

    /// `DELETE /v2/droplets/{id}`.
    pub fn delete_droplet(&mut self, id: u64) -> Result<LifecycleEvent, SimError> {
        self.droplets
            .remove(&id)
            .map(|_| LifecycleEvent::Deleted(id))
            .ok_or_else(SimError::not_found)
    }

    /// `DELETE /v2/droplets?tag_name=`: deletes every droplet with the tag.
    pub fn delete_by_tag(&mut self, tag: &str) -> Vec<LifecycleEvent> {
        let ids: Vec<u64> = self
            .droplets
            .iter()
            .filter(|(_, d)| d.droplet.tags.iter().any(|t| t == tag))
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| {
                self.droplets
                    .remove(&id)
                    .map(|_| LifecycleEvent::Deleted(id))
            })
            .collect()
    }

    /// Makes a droplet vanish as if destroyed outside the operator.
    pub fn lose_droplet(&mut self, id: u64) -> Option<LifecycleEvent> {
        self.droplets
            .remove(&id)
            .map(|_| LifecycleEvent::Deleted(id))
    }

    /// `POST /v2/droplets/{id}/actions`.
    pub fn droplet_action(
        &mut self,
        id: u64,
        request: &DropletActionRequest,
        now: Timestamp,
    ) -> Result<Action, SimError> {
        let (region, status, locked) = {
            let d = self.droplets.get(&id).ok_or_else(SimError::not_found)?;
            (
                d.droplet.region_slug().to_owned(),
                d.droplet.status,
                d.locked_by.is_some() || d.droplet.status == DropletStatus::New,
            )
        };
        if locked {
            return Err(SimError::unprocessable(
                "Droplet already has a pending event.",
            ));
        }
        let effect = match request {
            DropletActionRequest::Shutdown | DropletActionRequest::PowerOff => {
                ActionEffect::Status(DropletStatus::Off)
            }
            DropletActionRequest::PowerOn
            | DropletActionRequest::Reboot
            | DropletActionRequest::PowerCycle => ActionEffect::Status(DropletStatus::Active),
            DropletActionRequest::Resize { size, .. } => {
                if status != DropletStatus::Off {
                    return Err(SimError::unprocessable(
                        "Droplet must be powered off to resize.",
                    ));
                }
                let size = catalog::size(size).ok_or_else(|| {
                    SimError::unprocessable("You specified an invalid size for Droplet resize.")
                })?;
                ActionEffect::Resize(size.slug.to_owned())
            }
        };
        let completes = clock::add(now, self.config.action_delay);
        let action = self.new_action(
            request.kind(),
            id,
            &region,
            now,
            Some(completes),
            Some(effect),
        );
        if let Some(d) = self.droplets.get_mut(&id) {
            d.locked_by = Some(action.id);
            d.droplet.locked = true;
        }
        Ok(action)
    }

    /// `GET /v2/actions/{id}`.
    pub fn get_action(&self, id: u64) -> Result<Action, SimError> {
        self.actions
            .get(&id)
            .map(|a| a.action.clone())
            .ok_or_else(SimError::not_found)
    }

    /// `GET /v2/droplets/{id}/actions`: the droplet's actions, newest first.
    pub fn droplet_actions(&self, id: u64) -> Result<Vec<Action>, SimError> {
        if !self.droplets.contains_key(&id) {
            return Err(SimError::not_found());
        }
        let mut actions: Vec<Action> = self
            .actions
            .values()
            .filter(|a| a.action.resource_id == Some(id))
            .map(|a| a.action.clone())
            .collect();
        actions.sort_by_key(|a| std::cmp::Reverse(a.id));
        Ok(actions)
    }

    /// `POST /v2/tags/{tag}/resources` for droplets: adds the tag (idempotent).
    pub fn tag_droplets(&mut self, tag: &str, ids: &[u64]) -> Result<(), SimError> {
        validate_tag(tag)?;
        if let Some(missing) = ids.iter().find(|id| !self.droplets.contains_key(id)) {
            return Err(SimError::unprocessable(format!(
                "droplet {missing} does not exist"
            )));
        }
        for id in ids {
            if let Some(d) = self.droplets.get_mut(id)
                && !d.droplet.tags.iter().any(|t| t == tag)
            {
                d.droplet.tags.push(tag.to_owned());
            }
        }
        Ok(())
    }

    /// `DELETE /v2/tags/{tag}/resources` for droplets: removes the tag.
    pub fn untag_droplets(&mut self, tag: &str, ids: &[u64]) {
        for id in ids {
            if let Some(d) = self.droplets.get_mut(id) {
                d.droplet.tags.retain(|t| t != tag);
            }
        }
    }

    /// Makes `GET /v2/droplets/{id}` answer 404 until `until` (a transient 404); false when
    /// the droplet does not exist.
    pub fn hide_from_get(&mut self, id: u64, until: Timestamp) -> bool {
        self.droplets
            .get_mut(&id)
            .map(|d| d.hidden_from_get_until = Some(until))
            .is_some()
    }

    /// Leaves the droplet out of lists until `until`; false when it does not exist.
    pub fn hide_from_lists(&mut self, id: u64, until: Timestamp) -> bool {
        self.droplets
            .get_mut(&id)
            .map(|d| d.hidden_from_list_until = Some(until))
            .is_some()
    }

    /// Replaces a droplet's `status` and drops its `image` and `size` objects, as an odd
    /// droplet in a real account may look; false when it does not exist.
    pub fn make_droplet_odd(&mut self, id: u64, status: DropletStatus) -> bool {
        self.droplets
            .get_mut(&id)
            .map(|d| {
                d.droplet.status = status;
                d.droplet.image = None;
                d.droplet.size = None;
            })
            .is_some()
    }

    /// Records what a droplet's agent reports about its usage.
    pub fn report_usage(&mut self, id: u64, usage: DropletUsage) -> bool {
        match self.droplets.get_mut(&id) {
            Some(d) => {
                d.usage = usage;
                true
            }
            None => false,
        }
    }

    /// The monitoring series of `metric` for droplet `id` over `[start, end]` (120 s step).
    pub fn metric_series(
        &self,
        id: u64,
        metric: crate::cloud::models::DropletMetric,
        start: u64,
        end: u64,
    ) -> Vec<crate::cloud::models::MetricSeries> {
        use crate::cloud::models::{DropletMetric, MetricSeries};
        let Some(d) = self.droplets.get(&id) else {
            return Vec::new();
        };
        let created = clock::unix_seconds(d.created);
        let step = 120;
        let first = start.max(created).div_ceil(step) * step;
        let times: Vec<u64> = (first..=end).step_by(step as usize).collect();
        let host = id.to_string();
        let usage = d.usage;
        let memory_total = d.droplet.memory * 1024 * 1024;
        let series = |labels: &[(&str, &str)], value: &dyn Fn(u64) -> f64| MetricSeries {
            metric: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .chain(std::iter::once(("host_id".to_owned(), host.clone())))
                .collect(),
            values: times
                .iter()
                .map(|t| (*t, format_value(value(*t))))
                .collect(),
        };
        let gauge = |v: f64| -> Vec<MetricSeries> {
            if d.monitoring {
                vec![series(&[], &|_| v)]
            } else {
                Vec::new()
            }
        };
        match metric {
            DropletMetric::Cpu => {
                let vcpus = f64::from(d.droplet.vcpus);
                let busy = usage.cpu.clamp(0.0, 1.0);
                let shares = [
                    ("idle", 1.0 - busy),
                    ("user", busy * 0.8),
                    ("system", busy * 0.2),
                    ("iowait", 0.0),
                    ("irq", 0.0),
                    ("nice", 0.0),
                    ("softirq", 0.0),
                    ("steal", 0.0),
                ];
                shares
                    .iter()
                    .map(|(mode, share)| {
                        series(&[("mode", mode)], &|t| {
                            (t.saturating_sub(created)) as f64 * vcpus * share
                        })
                    })
                    .collect()
            }
            DropletMetric::MemoryTotal => gauge(memory_total as f64),
            DropletMetric::MemoryAvailable | DropletMetric::MemoryFree => {
                gauge(memory_total.saturating_sub(usage.memory_used_bytes.min(memory_total)) as f64)
            }
            DropletMetric::MemoryCached => gauge(0.0),
            DropletMetric::Load1 | DropletMetric::Load5 | DropletMetric::Load15 => {
                gauge(usage.load1)
            }
        }
    }

    /// The account's droplet limit.
    pub fn droplet_limit(&self) -> u32 {
        self.config.droplet_limit
    }
}

fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

fn validate_tag(tag: &str) -> Result<(), SimError> {
    if tag.is_empty()
        || tag.len() > 255
        || !tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':'))
    {
        return Err(SimError::unprocessable(format!("invalid tag name {tag:?}")));
    }
    Ok(())
}

fn validate_name(name: &str) -> Result<(), SimError> {
    let valid = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(SimError::unprocessable(
            "Name Only valid hostname characters are allowed. (a-z, A-Z, 0-9, . and -)",
        ))
    }
}

fn image_for(slug: &str, region: &str) -> Image {
    let distribution = if slug.starts_with("debian") {
        "Debian"
    } else {
        "Ubuntu"
    };
    let id = slug.bytes().fold(100_000_u64, |acc, b| {
        (acc * 31 + u64::from(b)) % 1_000_000_000
    });
    Image {
        id,
        name: slug.to_owned(),
        distribution: distribution.to_owned(),
        slug: Some(slug.to_owned()),
        public: true,
        regions: vec![region.to_owned()],
        kind: "base".to_owned(),
        min_disk_size: Some(7),
        size_gigabytes: Some(2.36),
        created_at: "2024-04-25T12:00:00Z".to_owned(),
        description: format!("{distribution} image {slug}"),
        tags: Vec::new(),
        status: "available".to_owned(),
    }
}

/// RFC 3339 UTC with seconds precision, as DigitalOcean writes timestamps.
pub fn rfc3339(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
