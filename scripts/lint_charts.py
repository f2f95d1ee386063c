"""Checks charts/mcp-droplet-operator with the real Helm library (helm-sdkpy wraps Helm v4's Go
packages) against kube-sim, the project's in-process API server. Called by scripts/lint-charts.

1. lint (warnings fail);
2. the values of examples/gitops (Argo CD, Flux) pass values.schema.json;
3. install with default values (all namespaces) and with namespaced values onto kube-sim
   (`wait` off: nothing runs pods there) and check what was rendered: the built-in kinds pass
   `kubernetes-validate -k 1.33.0 --strict`, the CRDs equal crds/ plus the keep annotation, the
   RBAC has no wildcard and keeps the Lease in the release namespace, the pod is restricted;
4. upgrade to a chart whose MCPTemplate CRD has one more field: an MCPTemplate using that field is
   refused before (strict field validation) and stored after;
5. uninstall keeps the CRDs (helm.sh/resource-policy: keep);
6. the rendered ServiceAccount, roles and bindings of both installs equal
   tests/fixtures/chart/rbac-*.yaml, which Rust tests give kube-sim to run the operator under
   exactly the chart's RBAC (MCP_UPDATE_CHART_FIXTURES=1 rewrites them).

Usage: lint_charts.py OPERATOR_BINARY
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import helm_sdkpy as helm
import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "mcp-droplet-operator"
KEEP = {"helm.sh/resource-policy": "keep"}
# The default install's release name (its objects are then named mcp-droplet-operator).
RELEASE = "mcp-droplet-operator"
BUILT_IN_GROUPS = {
    "v1",
    "apps/v1",
    "policy/v1",
    "networking.k8s.io/v1",
    "rbac.authorization.k8s.io/v1",
    "apiextensions.k8s.io/v1",
}
# What the Deployment's container must always carry (issue 15: restricted pod security).
RESTRICTED = {
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
# Helm's lint severities (pkg/chart/v2/lint/support): 1 info, 2 warning, 3 error.
LINT_WARNING = 2

failures: list[str] = []


def check(ok: bool, what: str) -> None:
    """Records a failed expectation (all are reported, then the script fails)."""
    if ok:
        print(f"  ok   {what}")
    else:
        print(f"  FAIL {what}")
        failures.append(what)


def step(what: str) -> None:
    print(f"-- {what}", flush=True)


class KubeSim:
    """kube-sim started by `mcp-droplet-operator sim`, with a tiny JSON client for checks."""

    def __init__(self, binary: str, workdir: pathlib.Path):
        self.kubeconfig = workdir / "kubeconfig"
        self.log = open(workdir / "kube-sim.log", "w")
        self.process = subprocess.Popen(
            [binary, "sim", "--kubeconfig", str(self.kubeconfig)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        self.server = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"kube-sim exited with {self.process.returncode}")
            if self.kubeconfig.exists():
                config = yaml.safe_load(self.kubeconfig.read_text()) or {}
                clusters = config.get("clusters") or []
                if clusters:
                    self.server = clusters[0]["cluster"]["server"]
                    try:
                        self.request("GET", "/version")
                        break
                    except OSError:
                        pass
            time.sleep(0.2)
        else:
            raise SystemExit("kube-sim did not come up within 60 s")

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        req.add_header("Accept", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def documents(manifest: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(manifest) if d]


def deep_merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def lint(config: helm.Configuration) -> None:
    step("helm lint")
    result = asyncio.run(helm.Lint(config).run(str(CHART)))
    messages = result.get("Messages") or []
    for message in messages:
        print(f"     severity {message.get('Severity')} in {message.get('Path')}: {message.get('Err')}")
    check(result.get("TotalChartsLinted") == 1, "the chart was linted")
    check(not result.get("Errors"), "lint reports no errors")
    check(
        all(m.get("Severity", 0) < LINT_WARNING for m in messages),
        "lint reports no warnings",
    )


def gitops_values() -> None:
    step("examples/gitops values against values.schema.json")
    schema = json.loads((CHART / "values.schema.json").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    check(not list(jsonschema.Draft7Validator(schema).iter_errors(defaults)), "values.yaml passes the schema")
    argocd = yaml.safe_load((ROOT / "examples/gitops/argocd/operator-application.yaml").read_text())
    flux = yaml.safe_load((ROOT / "examples/gitops/flux/helmrelease.yaml").read_text())
    for name, values in [
        ("Argo CD Application valuesObject", argocd["spec"]["source"]["helm"]["valuesObject"]),
        ("Flux HelmRelease values", flux["spec"]["values"]),
    ]:
        errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(deep_merge(defaults, values))]
        check(not errors, f"{name} pass the schema {errors}")
    typo = deep_merge(defaults, {"digitalocean": {"existingSecrets": "x"}})
    check(
        bool(list(jsonschema.Draft7Validator(schema).iter_errors(typo))),
        "the schema refuses an unknown key (digitalocean.existingSecrets)",
    )


def validate_built_ins(manifests: dict[str, str], workdir: pathlib.Path) -> None:
    step("kubernetes-validate -k 1.33.0 --strict on the rendered built-in kinds")
    files = []
    for name, manifest in manifests.items():
        built_ins = [d for d in documents(manifest) if d.get("apiVersion") in BUILT_IN_GROUPS]
        path = workdir / f"rendered-{name}.yaml"
        path.write_text(yaml.safe_dump_all(built_ins, sort_keys=False))
        files.append(str(path))
        print(f"     {name}: {len(built_ins)} objects: {sorted({d['kind'] for d in built_ins})}")
    validator = ROOT / ".venv" / "bin" / "kubernetes-validate"
    result = subprocess.run(
        [str(validator), "-k", "1.33.0", "--strict", "--quiet", "--no-warn", *files],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        print(result.stdout + result.stderr)
    check(result.returncode == 0, "the rendered built-in objects are valid Kubernetes 1.33 objects")


def crds_equal_repository(manifest: str) -> None:
    step("the chart's CRDs are crds/ plus the keep annotation")
    rendered = {d["metadata"]["name"]: d for d in documents(manifest) if d["kind"] == "CustomResourceDefinition"}
    expected = {}
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        expected[crd["metadata"]["name"]] = crd
    check(sorted(rendered) == sorted(expected), f"the chart renders every CRD in crds/ {sorted(rendered)}")
    for name, crd in rendered.items():
        crd = copy.deepcopy(crd)
        annotations = crd["metadata"].pop("annotations", {})
        check(annotations == KEEP, f"{name} carries only helm.sh/resource-policy: keep")
        check(crd == expected.get(name), f"{name} equals crds/{name}.yaml")


def rules_of(docs: list[dict], kind: str) -> list[tuple[dict, dict]]:
    return [(d, rule) for d in docs if d["kind"] == kind for rule in d.get("rules", [])]


def rbac_and_pod(renders: list[tuple[str, str, str]], watch_ns: str) -> None:
    """Checks each (name, manifest, release namespace); the last one is the namespaced install."""
    step("RBAC and pod security of the rendered objects")
    for name, manifest, release_ns in renders:
        docs = documents(manifest)
        all_rules = rules_of(docs, "Role") + rules_of(docs, "ClusterRole")
        check(bool(all_rules), f"{name}: renders RBAC rules")
        wildcards = [
            r for _, r in all_rules
            if "*" in r.get("verbs", []) + r.get("resources", []) + r.get("apiGroups", [])
        ]
        check(not wildcards, f"{name}: no wildcard verbs, resources or groups")
        check(
            not any("customresourcedefinitions" in r.get("resources", []) for _, r in all_rules),
            f"{name}: no CRD permission (the chart installs the CRDs)",
        )
        lease_holders = [
            (d["kind"], d["metadata"].get("namespace"))
            for d, r in all_rules
            if "leases" in r.get("resources", [])
        ]
        check(lease_holders == [("Role", release_ns)], f"{name}: Lease rules only in a Role in {release_ns}: {lease_holders}")
        deployment = next(d for d in docs if d["kind"] == "Deployment")
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        context = container["securityContext"]
        check(
            all(context.get(k) == v for k, v in RESTRICTED.items()),
            f"{name}: the container's security context is restricted",
        )
        check(pod["securityContext"].get("runAsNonRoot") is True, f"{name}: the pod runs as non-root")
        check(deployment["spec"]["replicas"] == 2, f"{name}: two replicas")
        env = {e["name"]: e.get("value") for e in container["env"]}
        check(env.get("MCP_LEADER_ELECTION") == "true", f"{name}: leader election on")
        check(
            container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            and container["readinessProbe"]["httpGet"]["path"] == "/readyz",
            f"{name}: liveness /healthz and readiness /readyz on the admin port",
        )
        check(bool(container.get("resources", {}).get("requests")), f"{name}: resource requests set")
        kinds = {d["kind"] for d in docs}
        for kind in ["ServiceAccount", "Service", "PodDisruptionBudget"]:
            check(kind in kinds, f"{name}: renders a {kind}")
    _, namespaced, release_ns = renders[-1]
    docs = documents(namespaced)
    cluster_rules = [r for _, r in rules_of(docs, "ClusterRole")]
    check(
        all(r["resources"][0].startswith("mcptemplates") for r in cluster_rules)
        and all(set(r["verbs"]) <= {"get", "list", "watch", "patch"} for r in cluster_rules),
        "namespaced: the only ClusterRole reads MCPTemplates (and patches their status)",
    )
    roles = {d["metadata"]["namespace"] for d in docs if d["kind"] == "Role"}
    check(
        roles == {release_ns, watch_ns, "default"},
        f"namespaced: Roles in {release_ns}, {watch_ns} and default (template events): {roles}",
    )
    default_rules = [r for d, r in rules_of(docs, "Role") if d["metadata"]["namespace"] == "default"]
    check(
        all(r["resources"] == ["events"] for r in default_rules),
        "namespaced: the Role in default only writes events",
    )
    check({"NetworkPolicy", "ServiceMonitor"} <= {d["kind"] for d in docs}, "namespaced: optional NetworkPolicy and ServiceMonitor render")


RBAC_KINDS = ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]
FIXTURE_HEADER = """\
# The chart's rendered RBAC: {what}.
# Written by scripts/lint-charts, which fails when it differs from what the chart renders
# (MCP_UPDATE_CHART_FIXTURES=1 scripts/lint-charts rewrites it). Labels are left out.
# Tests run the operator under exactly these documents in kube-sim (testing::OperatorRbac):
# service account {account} in namespace {namespace}.
"""


def rbac_fixture(name: str, manifest: str, what: str, namespace: str) -> None:
    docs = [d for d in documents(manifest) if d["kind"] in RBAC_KINDS]
    docs.sort(key=lambda d: (RBAC_KINDS.index(d["kind"]), d["metadata"].get("namespace", ""), d["metadata"]["name"]))
    for doc in docs:
        doc["metadata"].pop("labels", None)
    account = next(d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount")
    text = FIXTURE_HEADER.format(what=what, account=account, namespace=namespace) + yaml.safe_dump_all(
        docs, sort_keys=False, explicit_start=True
    )
    path = ROOT / "tests" / "fixtures" / "chart" / f"rbac-{name}.yaml"
    if os.environ.get("MCP_UPDATE_CHART_FIXTURES") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    current = path.read_text() if path.exists() else ""
    check(
        current == text,
        f"{path.relative_to(ROOT)} is what the chart renders (else: MCP_UPDATE_CHART_FIXTURES=1 scripts/lint-charts)",
    )


def template_with_field(field: str) -> dict:
    template = yaml.safe_load((ROOT / "examples/catalog/time.yaml").read_text())
    template["metadata"] = {"name": "upgrade-check"}
    template["spec"][field] = "added by the chart upgrade"
    return template


def upgrade_adds_a_field(config: helm.Configuration, sim: KubeSim, workdir: pathlib.Path) -> None:
    step("upgrade to a chart whose MCPTemplate CRD has one more field")
    field = "upgradeCheck"
    path = "/apis/mcp.agentopia.io/v1alpha1/mcptemplates?fieldValidation=Strict"
    code, answer = sim.request("POST", path, template_with_field(field))
    check(code == 400 and field in json.dumps(answer), f"before: the unknown field is refused ({code})")

    chart = workdir / "chart-next"
    shutil.copytree(CHART, chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["version"] = "0.1.1-upgrade-check"
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    crd_file = "mcptemplates.mcp.agentopia.io.yaml"
    crd = yaml.safe_load((ROOT / "crds" / crd_file).read_text())
    crd["metadata"]["annotations"] = dict(KEEP)
    for version in crd["spec"]["versions"]:
        spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        spec["properties"][field] = {"type": "string", "description": "A field the next chart version adds."}
    (chart / "templates" / "crds" / crd_file).write_text(
        "{{- if .Values.crds.install }}\n" + yaml.safe_dump(crd, sort_keys=False) + "{{- end }}\n"
    )
    result = asyncio.run(helm.Upgrade(config).run(RELEASE, str(chart), wait=False, timeout=120))
    check(result.get("version") == 2, f"the release is at revision 2 ({result.get('version')})")

    code, answer = sim.request("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/mcptemplates.mcp.agentopia.io")
    props = answer["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    check(field in props, "after: the CRD in the cluster has the new field")
    code, answer = sim.request("POST", path, template_with_field(field))
    check(code == 201, f"after: an MCPTemplate using the new field is accepted ({code}: {answer.get('message', '')})")
    code, answer = sim.request("GET", "/apis/mcp.agentopia.io/v1alpha1/mcptemplates/upgrade-check")
    check(answer.get("spec", {}).get(field) == "added by the chart upgrade", "after: the field is stored, not pruned")


def uninstall_keeps_crds(config: helm.Configuration, sim: KubeSim) -> None:
    step("uninstall keeps the CRDs")
    asyncio.run(helm.Uninstall(config).run(RELEASE, wait=False, timeout=120))
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        name = path.name.removesuffix(".yaml")
        code, _ = sim.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        check(code == 200, f"{name} is still there")
    code, _ = sim.request("GET", "/apis/apps/v1/namespaces/mcp-system/deployments/mcp-droplet-operator")
    check(code == 404, "the operator's Deployment is gone")


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = sys.argv[1]
    release_ns, watch_ns = "mcp-system", "team-a"
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="lint-charts-"))
    sim = None
    try:
        gitops_values()
        # Lint needs a configuration but no cluster.
        lint(helm.Configuration(namespace=release_ns, kubeconfig=str(workdir / "none")))
        step("kube-sim")
        sim = KubeSim(binary, workdir)
        print(f"     {sim.server}")
        for namespace in [watch_ns, "mcp-team-a"]:
            sim.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        config = helm.Configuration(namespace=release_ns, kubeconfig=str(sim.kubeconfig))
        step("install (default values: all namespaces)")
        # `sim` applied the CRDs at start; take_ownership adopts them like an install over
        # CRDs applied from crds/ by hand (docs/upgrades.md).
        default = asyncio.run(
            helm.Install(config).run(RELEASE, str(CHART), create_namespace=True, wait=False, timeout=120, take_ownership=True)
        )
        check(default["info"]["status"] == "deployed", "default install deployed")
        check("kubectl" in default["info"].get("notes", ""), "NOTES.txt tells the next command")
        step("install (namespaced: watchNamespace=team-a, in namespace mcp-team-a)")
        namespaced_values = {
            "watchNamespace": watch_ns,
            "crds": {"install": False},
            "networkPolicy": {"enabled": True},
            "metrics": {"serviceMonitor": {"enabled": True}},
        }
        ns_config = helm.Configuration(namespace="mcp-team-a", kubeconfig=str(sim.kubeconfig))
        namespaced = asyncio.run(
            helm.Install(ns_config).run("mcp-team-a", str(CHART), values=namespaced_values, wait=False, timeout=120)
        )
        check(namespaced["info"]["status"] == "deployed", "namespaced install deployed")
        validate_built_ins({"default": default["manifest"], "namespaced": namespaced["manifest"]}, workdir)
        crds_equal_repository(default["manifest"])
        check(
            not any(d["kind"] == "CustomResourceDefinition" for d in documents(namespaced["manifest"])),
            "crds.install=false renders no CRD",
        )
        rbac_and_pod(
            [("default", default["manifest"], release_ns), ("namespaced", namespaced["manifest"], "mcp-team-a")],
            watch_ns,
        )
        step("rendered RBAC fixtures for the Rust tests")
        rbac_fixture("all-namespaces", default["manifest"], "default values, release namespace mcp-system", release_ns)
        rbac_fixture(
            "namespaced", namespaced["manifest"], "watchNamespace=team-a, release namespace mcp-team-a", "mcp-team-a"
        )
        upgrade_adds_a_field(config, sim, workdir)
        uninstall_keeps_crds(config, sim)
    finally:
        if sim is not None:
            sim.stop()
        if failures:
            print(f"kube-sim log and rendered files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if failures:
        print(f"\n{len(failures)} chart check(s) failed:")
        for failure in failures:
            print(f"  - {failure}")
        return 1
    print("chart checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
