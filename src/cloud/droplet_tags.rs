//! The tags and names the operator puts on its droplets: the owner tag is a droplet's identity
//! (DigitalOcean has no idempotency key and accepts duplicate names), the cluster tag marks every
//! droplet of one installation for the orphan sweep.

use crate::cloud::models::Droplet;

/// Prefix of every tag and name this operator sets.
pub const TAG_PREFIX: &str = "mcp-droplet-operator";

/// The tag that identifies the droplet of one owner object (globally unique, legal charset).
pub fn owner_tag(owner_uid: &str) -> String {
    format!("{TAG_PREFIX}:uid:{}", sanitize_tag(owner_uid))
}

/// The tag on every droplet of one operator installation (for the orphan sweep).
pub fn cluster_tag(cluster_id: &str) -> String {
    format!("{TAG_PREFIX}:cluster:{}", sanitize_tag(cluster_id))
}

fn sanitize_tag(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == ':' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(200)
        .collect()
}

/// The owner UID as it appears in tags (lower case, sanitised), for comparisons.
pub fn tag_form_of_uid(owner_uid: &str) -> String {
    sanitize_tag(owner_uid)
}

/// A readable, deterministic droplet name `mcp-<ns>-<name>-<uid[0:8]>` matching DigitalOcean's
/// name pattern. It helps people; it is never the identity.
pub fn droplet_name(namespace: &str, name: &str, owner_uid: &str) -> String {
    let uid: String = owner_uid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect::<String>()
        .to_ascii_lowercase();
    let raw = format!("mcp-{namespace}-{name}-{uid}");
    let mut cleaned: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    cleaned.truncate(63);
    let trimmed = cleaned.trim_matches('-');
    if trimmed.is_empty() {
        "mcp-droplet".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// The owner UIDs carried by a droplet's owner tags (normally one; two after a restore until
/// the old tag is removed).
pub fn owner_uids_of(droplet: &Droplet) -> Vec<&str> {
    let prefix = format!("{TAG_PREFIX}:uid:");
    droplet
        .tags
        .iter()
        .filter_map(|t| t.strip_prefix(prefix.as_str()))
        .collect()
}

/// The first owner UID of a droplet, if it has an owner tag.
pub fn owner_uid_of(droplet: &Droplet) -> Option<&str> {
    owner_uids_of(droplet).into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_names_are_legal_and_deterministic() {
        let uid = "6F9619FF-8B86-D011-B42D-00C04FC964FF";
        assert_eq!(
            owner_tag(uid),
            "mcp-droplet-operator:uid:6f9619ff-8b86-d011-b42d-00c04fc964ff"
        );
        let name = droplet_name("team_a", "GitHub.Server", uid);
        assert_eq!(name, "mcp-team-a-github-server-6f9619ff");
        assert_eq!(name, droplet_name("team_a", "GitHub.Server", uid));
        assert_eq!(cluster_tag("Prod 1"), "mcp-droplet-operator:cluster:prod-1");
    }
}
