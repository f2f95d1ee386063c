//! Writing a kubeconfig file that points kubectl and kube-rs at a running kube-sim.

use crate::BearerToken;
use std::io::Write;
use std::path::Path;

/// The kubeconfig text for a server URL and optional token.
pub fn render(url: &str, token: Option<&BearerToken>) -> String {
    let user = match token {
        Some(t) => format!(
            "    token: {}\n",
            serde_json::Value::String(t.expose().to_string())
        ),
        None => "    {}\n".replace("    {}", "    username: kube-sim"),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-sim\n  cluster:\n    server: {url}\ncontexts:\n- name: kube-sim\n  context:\n    cluster: kube-sim\n    user: kube-sim\n    namespace: default\ncurrent-context: kube-sim\npreferences: {{}}\nusers:\n- name: kube-sim\n  user:\n{user}"
    )
}

/// Writes the kubeconfig with owner-only permissions (it may hold a token).
pub fn write(path: &Path, url: &str, token: Option<&BearerToken>) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    // `mode` applies only when the file is created: tighten a file that already existed too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(render(url, token).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn an_existing_world_readable_file_becomes_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("kube-sim-kc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kubeconfig");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(
            &path,
            "http://127.0.0.1:1",
            Some(&BearerToken::new("s3cret")),
        )
        .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn renders_token_and_server() {
        let t = BearerToken::new("s3cret");
        let text = render("http://127.0.0.1:1", Some(&t));
        assert!(text.contains("server: http://127.0.0.1:1"));
        assert!(text.contains("token: \"s3cret\""));
        assert!(render("http://x", None).contains("username: kube-sim"));
        assert!(!format!("{t:?}").contains("s3cret"), "{t:?}");
        assert_eq!(format!("{t}"), "***");
    }
}
