"""Installs charts/mcp-droplet-operator on a real Kubernetes API server with the real Helm library
(helm-sdkpy) and proves its RBAC there: the operator runs (outside the cluster, `--cloud
simulated`) with the token of the chart's ServiceAccount, so every request it makes is authorized
by the API server against exactly the chart's roles. Not part of the test command (CI has no
cluster); docs/installation.md records the runs. Called by scripts/chart-on-cluster.

1. install with default values (release mcp-system; the CRDs are adopted if crds/ was applied);
2. the API server's own answer to `kubectl auth can-i --as <the chart's ServiceAccount>` for
   every permission the chart grants, and for a few it must not (Secrets in kube-system are
   readable cluster-wide by design; writes to other kinds, nodes, RBAC are not);
3. the operator, with a kubeconfig holding only that ServiceAccount's token, takes an MCPTemplate,
   a DropletPool and an MCPDeployment (which provisions a droplet) to Ready, with leader
   election on; its log shows no denied request;
4. deleting the deployment, then the namespace, removes them through the operator's finalizers
   (the droplets it provisioned are deleted at the simulated DigitalOcean first);
5. uninstall keeps the CRDs.

Usage: chart_on_cluster.py KUBECONFIG OPERATOR_BINARY
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import helm_sdkpy as helm
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "mcp-droplet-operator"
RELEASE = "mcp-droplet-operator"
RELEASE_NS = "mcp-system"
ACCOUNT = f"system:serviceaccount:{RELEASE_NS}:{RELEASE}"
TEAM = "chart-check"

failures: list[str] = []


def check(ok: bool, what: str) -> None:
    print(f"  {'ok ' if ok else 'FAIL'} {what}")
    if not ok:
        failures.append(what)


def step(what: str) -> None:
    print(f"\n== {what}")


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None, check_rc: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check_rc and result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result


def rbac_permissions(manifest: str) -> list[tuple[str, str, str, str]]:
    """(verb, group, resource, namespace or '') of every rule the chart renders."""
    out = []
    for doc in yaml.safe_load_all(manifest):
        if not doc or doc.get("kind") not in ("ClusterRole", "Role"):
            continue
        namespace = doc["metadata"].get("namespace", "") if doc["kind"] == "Role" else ""
        for rule in doc.get("rules", []):
            for group in rule.get("apiGroups", []):
                for resource in rule.get("resources", []):
                    for verb in rule.get("verbs", []):
                        out.append((verb, group, resource, namespace))
    return out


def can_i(kubeconfig: str, verb: str, group: str, resource: str, namespace: str) -> bool:
    target = f"{resource}.{group}" if group else resource
    if "/" in resource:
        name, sub = resource.split("/", 1)
        target = f"{name}.{group}" if group else name
        args = ["auth", "can-i", verb, target, f"--subresource={sub}"]
    else:
        args = ["auth", "can-i", verb, target]
    args += ["--as", ACCOUNT]
    args += ["-n", namespace] if namespace else ["-A"]
    result = kubectl(kubeconfig, *args, check_rc=False)
    return result.stdout.strip() == "yes"


def account_kubeconfig(admin: str, token: str, path: pathlib.Path) -> None:
    config = yaml.safe_load(pathlib.Path(admin).read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c for c in config["clusters"] if c["name"] == context["context"]["cluster"])
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": "operator", "user": {"token": token}}],
                "contexts": [{"name": "operator", "context": {"cluster": cluster["name"], "user": "operator"}}],
                "current-context": "operator",
            }
        )
    )


WORKLOAD = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {TEAM}}}
---
apiVersion: mcp.agentopia.io/v1alpha1
kind: DropletPool
metadata: {{name: default, namespace: {TEAM}}}
spec:
  regions: [nyc3]
  sizes: [s-1vcpu-2gb]
  limits: {{maxDroplets: 2}}
---
apiVersion: v1
kind: Secret
metadata: {{name: tz, namespace: {TEAM}}}
stringData: {{zone: Europe/Paris}}
---
apiVersion: mcp.agentopia.io/v1alpha1
kind: MCPDeployment
metadata: {{name: time, namespace: {TEAM}}}
spec:
  templateRef: {{name: time}}
  env:
    - name: LOCAL_TIMEZONE
      valueFrom: {{secretKeyRef: {{name: tz, key: zone}}}}
"""


def wait_for(what: str, timeout: float, probe) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return True
        time.sleep(1)
    check(False, f"{what} within {timeout:.0f} s")
    return False


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    admin, binary = sys.argv[1], sys.argv[2]
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="chart-on-cluster-"))
    config = helm.Configuration(namespace=RELEASE_NS, kubeconfig=admin)
    operator = None
    try:
        version = json.loads(kubectl(admin, "version", "-o", "json").stdout)["serverVersion"]["gitVersion"]
        step(f"install (default values) on the API server {version}")
        release = asyncio.run(
            helm.Install(config).run(
                RELEASE, str(CHART), create_namespace=True, wait=False, timeout=180, take_ownership=True
            )
        )
        check(release["info"]["status"] == "deployed", "the release is deployed")
        for kind in ["deployment", "serviceaccount", "service", "poddisruptionbudget"]:
            got = kubectl(admin, "get", kind, "-n", RELEASE_NS, "-o", "name").stdout.split()
            check(any(RELEASE in g for g in got), f"{kind} {RELEASE} exists in {RELEASE_NS}")
        for crd in ["mcptemplates", "dropletpools", "droplets", "mcpdeployments"]:
            established = kubectl(
                admin, "get", "crd", f"{crd}.mcp.agentopia.io", "-o",
                "jsonpath={.status.conditions[?(@.type=='Established')].status}",
            ).stdout
            check(established == "True", f"CRD {crd} is Established")

        step("the API server's RBAC answers for the chart's ServiceAccount")
        granted = rbac_permissions(release["manifest"])
        check(len(granted) > 20, f"the chart grants {len(granted)} permissions")
        for verb, group, resource, namespace in granted:
            where = namespace or "all namespaces"
            check(can_i(admin, verb, group, resource, namespace), f"{verb} {resource}.{group or 'core'} in {where}")
        for verb, group, resource, namespace in [
            ("create", "", "pods", ""),
            ("delete", "", "namespaces", ""),
            ("update", "mcp.agentopia.io", "mcptemplates", ""),
            ("create", "rbac.authorization.k8s.io", "clusterrolebindings", ""),
            ("get", "", "nodes", ""),
            ("create", "coordination.k8s.io", "leases", "kube-system"),
        ]:
            check(not can_i(admin, verb, group, resource, namespace), f"not allowed: {verb} {resource} {namespace}")

        step("the operator under the ServiceAccount's token takes a deployment to Ready")
        token = kubectl(admin, "create", "token", RELEASE, "-n", RELEASE_NS, "--duration", "1h").stdout.strip()
        account = workdir / "operator.kubeconfig"
        account_kubeconfig(admin, token, account)
        kubectl(admin, "apply", "-f", str(ROOT / "examples" / "05-template-time.yaml"))
        kubectl(admin, "apply", "-f", "-", stdin=WORKLOAD)
        log = (workdir / "operator.log").open("w")
        env = dict(os.environ, RUST_LOG="info")
        operator = subprocess.Popen(
            [binary, "run", "--cloud", "simulated", "--kubeconfig", str(account), "--namespace", RELEASE_NS,
             "--leader-election", "true", "--admin-addr", "127.0.0.1:0"],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )

        def phase() -> str:
            return kubectl(admin, "get", "mcpd", "time", "-n", TEAM, "-o", "jsonpath={.status.phase}", check_rc=False).stdout

        if wait_for("the deployment Ready", 240, lambda: phase() == "Ready"):
            check(True, "the deployment is Ready")
            endpoint = kubectl(admin, "get", "mcpd", "time", "-n", TEAM, "-o", "jsonpath={.status.endpoint}").stdout
            check(endpoint.startswith("https://"), f"its endpoint is {endpoint}")
            client = kubectl(admin, "get", "secret", "time-mcp", "-n", TEAM, "-o", "json", check_rc=False)
            check(client.returncode == 0 and "url" in json.loads(client.stdout or "{}").get("data", {}), "the time-mcp Secret holds the URL")
        holder = kubectl(admin, "get", "lease", "-n", RELEASE_NS, "-o", "jsonpath={.items[*].spec.holderIdentity}", check_rc=False).stdout
        check(bool(holder.strip()), f"the Lease in {RELEASE_NS} has a holder ({holder.strip()})")

        step("deletion through the finalizers: the deployment, then the namespace with its droplets")
        kubectl(admin, "delete", "mcpd", "time", "-n", TEAM, "--wait=false")
        wait_for(
            "the deployment gone",
            180,
            lambda: kubectl(admin, "get", "mcpd", "time", "-n", TEAM, check_rc=False).returncode != 0,
        )
        # The namespace goes while the operator runs: its droplets carry the operator's
        # finalizer (deleting a droplet deletes the cloud droplet first).
        kubectl(admin, "delete", "namespace", TEAM, "--wait=false")
        wait_for(
            f"the namespace {TEAM} gone (its droplets deleted through their finalizers)",
            240,
            lambda: kubectl(admin, "get", "namespace", TEAM, check_rc=False).returncode != 0,
        )
        operator.terminate()
        operator.wait(timeout=60)
        log.close()
        text = (workdir / "operator.log").read_text()
        denied = [line for line in text.splitlines() if "forbidden" in line.lower() or " 403" in line]
        check(not denied, f"no denied request in the operator's log ({len(text.splitlines())} lines)")
        for line in denied[:10]:
            print(f"     {line}")

        step("uninstall keeps the CRDs")
        asyncio.run(helm.Uninstall(config).run(RELEASE, wait=False, timeout=120))
        kept = kubectl(admin, "get", "crd", "mcptemplates.mcp.agentopia.io", check_rc=False)
        check(kept.returncode == 0, "the MCPTemplate CRD is kept")
    finally:
        if operator is not None and operator.poll() is None:
            operator.kill()
    print(f"\nworking files in {workdir}")
    if failures:
        print(f"\n{len(failures)} check(s) failed:")
        for failure in failures:
            print(f"  - {failure}")
        return 1
    print("the chart installs and its RBAC suffices on this API server")
    return 0


if __name__ == "__main__":
    sys.exit(main())
