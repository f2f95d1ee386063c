//! Wire types of the DigitalOcean API v2 calls the operator makes (serde), shared by the client
//! and the simulated DigitalOcean so both speak one format. Field names follow the OpenAPI
//! description in `shared/digitalocean-openapi/`.
//!
//! These are DigitalOcean's shapes, not the operator's model: [`Droplet`] is the API's droplet
//! (not the `Droplet` custom resource, not the scheduler's droplet) and [`Size`] the API's size
//! object. Decoding is tolerant where DigitalOcean may add values or leave fields out: an unknown
//! status or a droplet without `image` or `size` is kept and logged, never a failed page.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// DigitalOcean's droplet object (the wire shape of `GET /v2/droplets/{id}`, the list and the
/// create calls), not the `Droplet` custom resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Droplet {
    /// DigitalOcean's numeric id.
    pub id: u64,
    /// The droplet's name (not unique at DigitalOcean).
    #[serde(default)]
    pub name: String,
    /// Memory in MB.
    #[serde(default)]
    pub memory: u64,
    /// Virtual CPUs.
    #[serde(default)]
    pub vcpus: u32,
    /// Disk in GB.
    #[serde(default)]
    pub disk: u64,
    /// True while the platform works on the droplet (no actions possible).
    #[serde(default)]
    pub locked: bool,
    /// Lifecycle state (`Unknown` for a value this client does not know).
    #[serde(default)]
    pub status: DropletStatus,
    /// Always null for modern droplets.
    #[serde(default)]
    pub kernel: Option<serde_json::Value>,
    /// ISO-8601 creation time, seconds precision.
    #[serde(default)]
    pub created_at: String,
    /// Enabled features (`monitoring`, `ipv6`, ...).
    #[serde(default)]
    pub features: Vec<String>,
    /// Backup image ids.
    #[serde(default)]
    pub backup_ids: Vec<u64>,
    /// Backup window, null without backups.
    #[serde(default)]
    pub next_backup_window: Option<serde_json::Value>,
    /// Snapshot image ids.
    #[serde(default)]
    pub snapshot_ids: Vec<u64>,
    /// The image the droplet was created from (absent on some droplets, e.g. a deleted image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
    /// Attached volume ids.
    #[serde(default)]
    pub volume_ids: Vec<String>,
    /// The full size object (absent on some droplets, e.g. a retired size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Size>,
    /// The size slug.
    #[serde(default)]
    pub size_slug: String,
    /// IPv4 and IPv6 interfaces (empty while `new`).
    #[serde(default)]
    pub networks: Networks,
    /// The full region object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
    /// Tags on the droplet.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The VPC the droplet joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_uuid: Option<String>,
}

impl Droplet {
    /// The public IPv4 address, once the droplet has one.
    pub fn public_ipv4(&self) -> Option<Ipv4Addr> {
        self.ipv4_of_type(NetworkType::Public)
    }

    /// The private (VPC) IPv4 address, once the droplet has one.
    pub fn private_ipv4(&self) -> Option<Ipv4Addr> {
        self.ipv4_of_type(NetworkType::Private)
    }

    fn ipv4_of_type(&self, kind: NetworkType) -> Option<Ipv4Addr> {
        self.networks
            .v4
            .iter()
            .find(|n| n.kind == kind)
            .and_then(|n| n.ip_address.parse().ok())
    }

    /// True when the droplet is `active` and not locked: ready for use.
    pub fn is_ready(&self) -> bool {
        self.status == DropletStatus::Active && !self.locked
    }

    /// The region slug (from the region object, empty when DigitalOcean left it out).
    pub fn region_slug(&self) -> &str {
        self.region.as_ref().map_or("", |r| r.slug.as_str())
    }

    /// The creation time, when `created_at` parses.
    pub fn created(&self) -> Option<jiff::Timestamp> {
        self.created_at.parse().ok()
    }

    /// What this client had to tolerate in the droplet (unknown values, absent fields); empty
    /// for a well-formed droplet. Logged by the client, never an error.
    pub fn oddities(&self) -> Vec<&'static str> {
        let mut odd = Vec::new();
        if self.status == DropletStatus::Unknown {
            odd.push("unknown status");
        }
        if self.image.is_none() {
            odd.push("no image");
        }
        if self.size.is_none() {
            odd.push("no size");
        }
        if self.region.is_none() {
            odd.push("no region");
        }
        if self.created().is_none() {
            odd.push("unparsable created_at");
        }
        odd
    }
}

/// A droplet's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DropletStatus {
    /// Being provisioned.
    New,
    /// Powered on (not necessarily booted).
    Active,
    /// Powered off.
    Off,
    /// Retired or destroyed.
    Archive,
    /// A value this client does not know (DigitalOcean added one); treated as not ready.
    #[default]
    #[serde(other)]
    Unknown,
}

/// The image object embedded in a droplet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// Numeric image id.
    pub id: u64,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Distribution, e.g. "Ubuntu".
    #[serde(default)]
    pub distribution: String,
    /// Public image slug, null for private images.
    #[serde(default)]
    pub slug: Option<String>,
    /// Whether the image is public.
    #[serde(default)]
    pub public: bool,
    /// Regions the image is in.
    #[serde(default)]
    pub regions: Vec<String>,
    /// `base`, `snapshot`, ...
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Minimum disk in GB.
    #[serde(default)]
    pub min_disk_size: Option<u64>,
    /// Image size in GB.
    #[serde(default)]
    pub size_gigabytes: Option<f64>,
    /// Creation time.
    #[serde(default)]
    pub created_at: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Image tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Image status.
    #[serde(default)]
    pub status: String,
}

/// A droplet's network interfaces.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Networks {
    /// IPv4 interfaces.
    #[serde(default)]
    pub v4: Vec<NetworkV4>,
    /// IPv6 interfaces.
    #[serde(default)]
    pub v6: Vec<serde_json::Value>,
}

/// One IPv4 interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkV4 {
    /// The address.
    pub ip_address: String,
    /// The netmask in dotted form.
    pub netmask: String,
    /// The gateway; private interfaces have none (the API may send `"nil"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Public or private.
    #[serde(rename = "type")]
    pub kind: NetworkType,
}

/// Whether an interface is public or in the VPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkType {
    /// Internet-facing.
    Public,
    /// VPC-internal.
    Private,
    /// A type this client does not know.
    #[serde(other)]
    Other,
}

/// DigitalOcean's size object from `GET /v2/sizes` (the wire shape, not the catalogue's size).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Size {
    /// Size slug, e.g. `s-1vcpu-1gb`.
    pub slug: String,
    /// Memory in MB.
    pub memory: u64,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Disk in GB.
    pub disk: u64,
    /// Monthly transfer in TB.
    pub transfer: f64,
    /// USD per month.
    pub price_monthly: f64,
    /// USD per hour.
    pub price_hourly: f64,
    /// Regions where the size can be created.
    pub regions: Vec<String>,
    /// Whether new droplets can use this size.
    pub available: bool,
    /// Family, e.g. "Basic".
    #[serde(default)]
    pub description: String,
}

/// A region from `GET /v2/regions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Region {
    /// Display name, e.g. "New York 3".
    pub name: String,
    /// Slug, e.g. `nyc3`.
    pub slug: String,
    /// Features offered there.
    #[serde(default)]
    pub features: Vec<String>,
    /// Whether new droplets can be created there.
    pub available: bool,
    /// Size slugs offered there.
    #[serde(default)]
    pub sizes: Vec<String>,
}

/// The body of `POST /v2/droplets` (single droplet form). Its Debug leaves out the `user_data`,
/// which carries the droplet's enrolment token.
#[derive(Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct DropletCreateRequest {
    /// Droplet name (hostname).
    pub name: String,
    /// Region slug.
    pub region: String,
    /// Size slug.
    pub size: String,
    /// Image slug or numeric id as text.
    pub image: String,
    /// SSH key ids or fingerprints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_keys: Vec<String>,
    /// Whether to enable IPv6.
    #[serde(default)]
    pub ipv6: bool,
    /// Whether to install the DigitalOcean metrics agent (needed for memory and load metrics).
    #[serde(default)]
    pub monitoring: bool,
    /// Tags to set (created when missing).
    #[serde(default)]
    pub tags: Vec<String>,
    /// cloud-init user data (at most 64 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    /// VPC to join; the region's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_uuid: Option<String>,
}

impl std::fmt::Debug for DropletCreateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DropletCreateRequest")
            .field("name", &self.name)
            .field("region", &self.region)
            .field("size", &self.size)
            .field("image", &self.image)
            .field("ssh_keys", &self.ssh_keys)
            .field("ipv6", &self.ipv6)
            .field("monitoring", &self.monitoring)
            .field("tags", &self.tags)
            .field("user_data", &RedactedUserData(&self.user_data))
            .field("vpc_uuid", &self.vpc_uuid)
            .finish()
    }
}

/// Debug form of cloud-init user data: its size only, never its text (it holds a token).
pub struct RedactedUserData<'a>(pub &'a Option<String>);

impl std::fmt::Debug for RedactedUserData<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(text) => write!(f, "Some(<{} bytes, redacted>)", text.len()),
            None => f.write_str("None"),
        }
    }
}

/// A link to an action, as in the create response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionLink {
    /// Action id.
    pub id: u64,
    /// Relation, e.g. `create`.
    pub rel: String,
    /// Absolute URL of the action.
    pub href: String,
}

/// An action (`GET /v2/actions/{id}`, droplet actions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// Action id.
    pub id: u64,
    /// Progress of the action.
    pub status: ActionStatus,
    /// Kind, e.g. `create`, `power_off`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Start time.
    pub started_at: String,
    /// Completion time, null while in progress.
    #[serde(default)]
    pub completed_at: Option<String>,
    /// The droplet id.
    #[serde(default)]
    pub resource_id: Option<u64>,
    /// `droplet`.
    #[serde(default)]
    pub resource_type: String,
    /// The region object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
    /// The region slug.
    #[serde(default)]
    pub region_slug: Option<String>,
}

/// The progress of an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionStatus {
    /// Still running.
    InProgress,
    /// Done.
    Completed,
    /// Failed.
    Errored,
    /// A value this client does not know.
    #[serde(other)]
    Unknown,
}

/// The droplet actions the operator issues (`POST /v2/droplets/{id}/actions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DropletActionRequest {
    /// Graceful reboot.
    Reboot,
    /// Hard reset.
    PowerCycle,
    /// Graceful shutdown.
    Shutdown,
    /// Hard power off.
    PowerOff,
    /// Power on.
    PowerOn,
    /// Change the size (the droplet must be off); `disk` also grows the disk (irreversible).
    Resize {
        /// The new size slug.
        size: String,
        /// Whether to resize the disk as well.
        disk: bool,
    },
}

impl DropletActionRequest {
    /// The action's `type` string on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Reboot => "reboot",
            Self::PowerCycle => "power_cycle",
            Self::Shutdown => "shutdown",
            Self::PowerOff => "power_off",
            Self::PowerOn => "power_on",
            Self::Resize { .. } => "resize",
        }
    }
}

/// The account behind the token (`GET /v2/account`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// How many droplets may exist at once.
    pub droplet_limit: u32,
    /// How many floating IPs may exist.
    pub floating_ip_limit: u32,
    /// Account e-mail.
    pub email: String,
    /// Account UUID.
    pub uuid: String,
    /// Whether the e-mail is verified.
    pub email_verified: bool,
    /// `active`, `warning` or `locked`.
    pub status: String,
    /// Details on the status.
    pub status_message: String,
}

/// Pagination links of a collection response.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Links {
    /// Page links; absent when everything fits on one page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages: Option<PageLinks>,
}

/// `first`, `prev`, `next` and `last` page URLs (absolute).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PageLinks {
    /// First page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<String>,
    /// Previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
    /// Next page; its absence marks the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
}

/// `meta` of a collection response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Meta {
    /// Total matching objects across all pages.
    pub total: u64,
}

/// A monitoring response (`GET /v2/monitoring/metrics/droplet/...`), Prometheus matrix style.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsResponse {
    /// `success` or `error`.
    pub status: String,
    /// The series.
    pub data: MetricsData,
}

/// The `data` part of a monitoring response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsData {
    /// Always `matrix`.
    #[serde(rename = "resultType")]
    pub result_type: String,
    /// One entry per series.
    pub result: Vec<MetricSeries>,
}

/// One series: labels and `[unix_seconds, "value"]` points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSeries {
    /// Labels, e.g. `host_id`, `mode`.
    pub metric: BTreeMap<String, String>,
    /// Points as `[timestamp, value-as-string]`.
    pub values: Vec<(u64, String)>,
}

impl MetricSeries {
    /// The points parsed to numbers (unparsable values are skipped).
    pub fn points(&self) -> Vec<(u64, f64)> {
        self.values
            .iter()
            .filter_map(|(t, v)| v.parse().ok().map(|v| (*t, v)))
            .collect()
    }
}

/// The monitoring metrics the operator reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropletMetric {
    /// Cumulative CPU seconds per mode.
    Cpu,
    /// Total memory in bytes.
    MemoryTotal,
    /// Available memory in bytes.
    MemoryAvailable,
    /// Free memory in bytes.
    MemoryFree,
    /// Page-cache memory in bytes.
    MemoryCached,
    /// 1-minute load average.
    Load1,
    /// 5-minute load average.
    Load5,
    /// 15-minute load average.
    Load15,
}

impl DropletMetric {
    /// Every metric, in a stable order.
    pub const ALL: [DropletMetric; 8] = [
        Self::Cpu,
        Self::MemoryTotal,
        Self::MemoryAvailable,
        Self::MemoryFree,
        Self::MemoryCached,
        Self::Load1,
        Self::Load5,
        Self::Load15,
    ];

    /// The last path segment under `/v2/monitoring/metrics/droplet/`.
    pub fn path_segment(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::MemoryTotal => "memory_total",
            Self::MemoryAvailable => "memory_available",
            Self::MemoryFree => "memory_free",
            Self::MemoryCached => "memory_cached",
            Self::Load1 => "load_1",
            Self::Load5 => "load_5",
            Self::Load15 => "load_15",
        }
    }

    /// The metric named by a path segment.
    pub fn from_path_segment(segment: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.path_segment() == segment)
    }
}

/// The error body of every 4xx and 5xx response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Short code, e.g. `not_found`.
    #[serde(default)]
    pub id: String,
    /// Human-readable text.
    #[serde(default)]
    pub message: String,
    /// Support correlation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Envelope of a single droplet (`{"droplet": ...}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DropletEnvelope {
    /// The droplet.
    pub droplet: Droplet,
}

/// Envelope of the single-droplet create response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DropletCreateResponse {
    /// The new droplet (`status: new`).
    pub droplet: Droplet,
    /// Links to the create action.
    pub links: CreateLinks,
}

/// `links` of a create response.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CreateLinks {
    /// The create action(s).
    #[serde(default)]
    pub actions: Vec<ActionLink>,
}

/// One entry of a droplet page: a droplet, or what could not be read as one (logged and left
/// out, so one odd droplet cannot fail the page).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PageDroplet {
    /// A droplet (possibly with tolerated oddities).
    Droplet(Box<Droplet>),
    /// An entry without even an id.
    Unreadable(serde_json::Value),
}

/// A page of droplets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DropletPage {
    /// Droplets on this page.
    pub droplets: Vec<PageDroplet>,
    /// Page links.
    #[serde(default)]
    pub links: Links,
    /// Totals.
    pub meta: Meta,
}

/// A page of sizes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SizePage {
    /// Sizes on this page.
    pub sizes: Vec<Size>,
    /// Page links.
    #[serde(default)]
    pub links: Links,
    /// Totals.
    pub meta: Meta,
}

/// A page of regions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegionPage {
    /// Regions on this page.
    pub regions: Vec<Region>,
    /// Page links.
    #[serde(default)]
    pub links: Links,
    /// Totals.
    pub meta: Meta,
}

/// A page of actions (`GET /v2/droplets/{id}/actions`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActionPage {
    /// Actions on this page.
    pub actions: Vec<Action>,
    /// Page links.
    #[serde(default)]
    pub links: Links,
    /// Totals.
    #[serde(default)]
    pub meta: Meta,
}

/// The body of `POST /v2/tags/{tag}/resources`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagResourcesRequest {
    /// The resources to tag.
    pub resources: Vec<TagResource>,
}

impl TagResourcesRequest {
    /// A request tagging these droplets.
    pub fn droplets(ids: &[u64]) -> Self {
        Self {
            resources: ids
                .iter()
                .map(|id| TagResource {
                    resource_id: id.to_string(),
                    resource_type: "droplet".to_owned(),
                })
                .collect(),
        }
    }
}

/// One resource of a tag request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagResource {
    /// The resource id as text.
    pub resource_id: String,
    /// `droplet`, `volume`, ...
    pub resource_type: String,
}

/// Envelope of one action.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActionEnvelope {
    /// The action.
    pub action: Action,
}

/// Envelope of the account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountEnvelope {
    /// The account.
    pub account: Account,
}

/// Anything that arrives in pages and can be flattened.
pub trait Paged {
    /// The item type.
    type Item;
    /// The items on this page and the link to the next page, if any.
    fn into_parts(self) -> (Vec<Self::Item>, Option<String>);
}

impl Paged for DropletPage {
    type Item = Droplet;
    fn into_parts(self) -> (Vec<Droplet>, Option<String>) {
        let droplets = self
            .droplets
            .into_iter()
            .filter_map(|entry| match entry {
                PageDroplet::Droplet(droplet) => {
                    let odd = droplet.oddities();
                    if !odd.is_empty() {
                        tracing::warn!(droplet = droplet.id, oddities = ?odd, "tolerating an odd droplet");
                    }
                    Some(*droplet)
                }
                PageDroplet::Unreadable(value) => {
                    let keys: Vec<&String> =
                        value.as_object().map(|o| o.keys().collect()).unwrap_or_default();
                    tracing::warn!(?keys, "skipping a droplet entry without an id");
                    None
                }
            })
            .collect();
        (droplets, self.links.pages.and_then(|p| p.next))
    }
}

impl Paged for ActionPage {
    type Item = Action;
    fn into_parts(self) -> (Vec<Action>, Option<String>) {
        (self.actions, self.links.pages.and_then(|p| p.next))
    }
}

impl Paged for SizePage {
    type Item = Size;
    fn into_parts(self) -> (Vec<Size>, Option<String>) {
        (self.sizes, self.links.pages.and_then(|p| p.next))
    }
}

impl Paged for RegionPage {
    type Item = Region;
    fn into_parts(self) -> (Vec<Region>, Option<String>) {
        (self.regions, self.links.pages.and_then(|p| p.next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_user_data() {
        let request = DropletCreateRequest {
            name: "d1".into(),
            user_data: Some("enrolmentToken: s3cr3t-token".into()),
            ..Default::default()
        };
        let printed = format!("{request:?}");
        assert!(printed.contains("d1") && printed.contains("bytes, redacted"));
        assert!(!printed.contains("s3cr3t"), "{printed}");
    }

    #[test]
    fn an_odd_droplet_is_tolerated_and_an_unreadable_entry_does_not_fail_the_page() {
        let page: DropletPage = serde_json::from_value(serde_json::json!({
            "droplets": [
                {"id": 7, "name": "odd", "status": "migrating", "created_at": "2026-12-02T08:00:00Z",
                 "tags": ["a"], "networks": {"v4": [{"ip_address": "10.0.0.1", "netmask": "255.0.0.0",
                 "type": "anycast"}], "v6": []}},
                {"name": "no id at all"},
                {"id": 8, "name": "plain", "status": "active", "memory": 1024, "vcpus": 1, "disk": 25,
                 "locked": false, "created_at": "2026-12-02T08:00:00Z", "size_slug": "s-1vcpu-1gb"}
            ],
            "links": {},
            "meta": {"total": 3}
        }))
        .expect("the page decodes");
        let (droplets, next) = page.into_parts();
        assert_eq!(next, None);
        let ids: Vec<u64> = droplets.iter().map(|d| d.id).collect();
        assert_eq!(ids, vec![7, 8]);
        assert_eq!(droplets[0].status, DropletStatus::Unknown);
        assert!(!droplets[0].is_ready());
        assert_eq!(droplets[0].networks.v4[0].kind, NetworkType::Other);
        assert_eq!(
            droplets[0].oddities(),
            vec!["unknown status", "no image", "no size", "no region"]
        );
        assert_eq!(droplets[1].status, DropletStatus::Active);
    }
}
