//! The objects a real cluster has without anyone creating them: the built-in namespaces and
//! the `kube-root-ca.crt` ConfigMap in every namespace.

use super::{State, WriteOptions};
use jiff::Timestamp;
use serde_json::json;

/// The ConfigMap every namespace of a real cluster gets.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
const ROOT_CA_DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

impl State {
    /// Creates `default`, `kube-system`, `kube-public` and `kube-node-lease`.
    pub(super) fn create_builtin_namespaces(&mut self, now: Timestamp) {
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            if let Some(info) = self.registry.find("", "v1", "namespaces") {
                let obj =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                let opts = WriteOptions {
                    manager: "kube-apiserver".into(),
                    ..Default::default()
                };
                // Built-in namespaces are always valid; a failure here would be a bug in the table.
                if let Err(e) = self.create(&info, "v1", None, obj, &opts, now) {
                    tracing::error!(error = %e, "creating built-in namespace failed");
                }
            }
        }
    }

    /// Publishes the `kube-root-ca.crt` ConfigMap in a new namespace, as the controller
    /// manager's root-CA publisher does on a real cluster. kube-sim serves plain HTTP, so the
    /// bundle is empty; the object is there so that namespaces look like real ones.
    pub(super) fn publish_root_ca(&mut self, namespace: &str, now: Timestamp) {
        let Some(cm) = self.registry.find("", "v1", "configmaps") else {
            return;
        };
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": namespace,
                "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION}},
            "data": {"ca.crt": ""}});
        let opts = WriteOptions {
            manager: "kube-controller-manager".into(),
            ..Default::default()
        };
        if let Err(e) = self.create(&cm, "v1", Some(namespace), obj, &opts, now) {
            tracing::error!(error = %e, namespace, "publishing kube-root-ca.crt failed");
        }
    }
}
