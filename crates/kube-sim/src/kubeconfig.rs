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
    f.write_all(render(url, token).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_token_and_server() {
        let t = BearerToken::new("s3cret");
        let text = render("http://127.0.0.1:1", Some(&t));
        assert!(text.contains("server: http://127.0.0.1:1"));
        assert!(text.contains("token: \"s3cret\""));
        assert!(render("http://x", None).contains("username: kube-sim"));
        assert_eq!(format!("{t:?}"), "***");
    }
}
