"""The Helm chart, rendered by the pinned helm without a cluster.

Covers what review alone misses: ``helm lint --strict`` is clean for every value set,
the schema refuses bad values, the RBAC is least-privilege by construction, the
operator pod meets the "restricted" Pod Security Standard, its arguments are ones
``kubetune operator`` accepts, the dashboard's queries parse (promtool) and the packaged
chart ships what it must. The same renders are applied to a real API server in
tests/cluster/test_chart.py; the chart's files alone are checked in
tests/unit/test_chart_files.py.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart import CHART, VALUE_SETS, by_kind, helm, render, values_file

pytestmark = pytest.mark.tools

IDS = list(VALUE_SETS)


@pytest.fixture(scope="module", params=IDS)
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    values = VALUE_SETS[request.param]
    return request.param, values, render(values, tmp_path_factory.mktemp(request.param))


@pytest.mark.parametrize("name", IDS)
def test_lint_strict_is_clean(name: str, tmp_path: Path) -> None:
    proc = helm(
        "lint", "--strict", str(CHART), "--values", str(values_file(VALUE_SETS[name], tmp_path))
    )
    assert "0 chart(s) failed" in proc.stdout
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "replicaCount=2", "--set", "peering.enabled=false"], "peering"),
        (["--set", "watch.namespaces[0]=Team_A"], "namespaces"),
        (["--set", "logLevel=verbose"], "logLevel"),
        (["--set", "metrics.port=70000"], "port"),
        (["--set", "image.digest=latest"], "digest"),
        (["--set", "unknownKey=1"], "unknownKey"),
        (
            ["--set", "serviceMonitor.enabled=true", "--set", "metrics.enabled=false"],
            "serviceMonitor.enabled needs metrics.enabled",
        ),
        (["--set", "serviceAccount.create=false"], "serviceAccount.name is required"),
        (["--set", "policy.storageSchemes={ftp}"], "storageSchemes"),
        (["--set", "policy.env={HF_ENDPOINT;}"], "env"),
    ],
)
def test_bad_values_are_refused(args: list[str], message: str) -> None:
    proc = helm("template", "t", str(CHART), *args, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr


def _rules(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for d in docs if d["kind"] in ("ClusterRole", "Role") for rule in d["rules"]]


def test_rbac_is_least_privilege(rendered: Any) -> None:
    _, _, docs = rendered
    rules = _rules(docs)
    assert rules
    for rule in rules:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], rule
        assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"])
        assert "secrets" not in rule["resources"], "the operator must not touch Secrets"
        assert not {
            "nodes",
            "serviceaccounts",
            "roles",
            "clusterroles",
            "rolebindings",
            "clusterrolebindings",
        } & set(rule["resources"]), rule
    for binding in by_kind(docs, "ClusterRoleBinding") + by_kind(docs, "RoleBinding"):
        assert binding["roleRef"]["name"] not in ("cluster-admin", "admin", "edit")
        assert [s["kind"] for s in binding["subjects"]] == ["ServiceAccount"]


def test_namespaced_mode_grants_nothing_namespaced_cluster_wide(tmp_path: Path) -> None:
    docs = render(VALUE_SETS["everything-namespaced"], tmp_path)
    (cluster_role,) = by_kind(docs, "ClusterRole")
    assert [r["resources"] for r in cluster_role["rules"]] == [
        ["customresourcedefinitions"],
        ["finetunejobpolicies"],
        ["namespaces"],
    ]
    assert all(set(r["verbs"]) <= {"get", "list", "watch"} for r in cluster_role["rules"])
    roles = by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert sorted(b["metadata"]["namespace"] for b in by_kind(docs, "RoleBinding")) == [
        "team-a",
        "team-b",
    ]
    assert sorted(p["metadata"]["namespace"] for p in by_kind(docs, "KopfPeering")) == [
        "team-a",
        "team-b",
    ]
    (deployment,) = by_kind(docs, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args
    assert "--all-namespaces" not in args


def test_operator_pod_meets_the_restricted_pod_security_standard(rendered: Any) -> None:
    _, _, docs = rendered
    (deployment,) = by_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert sc.get("privileged", False) is False
        assert sc["readOnlyRootFilesystem"] is True
        assert "hostPort" not in json.dumps(container["ports"])
        assert container["resources"]["requests"] and container["resources"]["limits"]
    for volume in pod["volumes"]:
        assert set(volume) - {"name"} <= {"emptyDir", "configMap", "secret", "projected"}


def test_probes_hit_the_endpoint_kopf_serves(rendered: Any) -> None:
    _, values, docs = rendered
    (deployment,) = by_kind(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    liveness = next(a for a in container["args"] if a.startswith("--liveness="))
    assert liveness == f"--liveness=http://0.0.0.0:{ports['healthz']}/healthz"
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    if values.get("metrics", {}).get("enabled", True):
        assert f"--metrics-port={ports['metrics']}" in container["args"]
    else:
        assert "--metrics-port=0" in container["args"] and "metrics" not in ports


def test_operator_args_are_accepted_by_kubetune_operator(rendered: Any) -> None:
    """The rendered command line parses with the real CLI parser: no flag drift."""
    from kubetune.cli import build_parser

    _, _, docs = rendered
    (deployment,) = by_kind(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(container["args"])
    assert args.command == "operator"
    assert args.trainer_image.startswith("ghcr.io/kubetune/trainer")


def test_replicas_and_peering(rendered: Any) -> None:
    _, values, docs = rendered
    (deployment,) = by_kind(docs, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    replicas = deployment["spec"]["replicas"]
    assert replicas == values.get("replicaCount", 1)
    if values.get("peering", {}).get("enabled", True):
        peering = next(a for a in args if a.startswith("--peering="))
        objects = by_kind(docs, "ClusterKopfPeering") + by_kind(docs, "KopfPeering")
        assert objects and {o["metadata"]["name"] for o in objects} == {peering.split("=", 1)[1]}
    else:
        assert replicas == 1 and "--standalone" in args


def test_everything_toggled_renders_every_optional_resource(tmp_path: Path) -> None:
    docs = render(VALUE_SETS["everything-cluster-wide"], tmp_path)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Service",
            "Deployment",
            "ClusterKopfPeering",
            "ServiceMonitor",
            "PodMonitor",
            "PrometheusRule",
            "ConfigMap",
            "FineTuneJobPolicy",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
            "NetworkPolicy",
            "NetworkPolicy",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
        ]
    )
    # The CRDs are the generated ones byte for byte (tests/unit/test_chart_files.py),
    # without the chart's labels: they are the cluster's, not one release's.
    for doc in [d for d in docs if d["kind"] != "CustomResourceDefinition"]:
        assert doc["metadata"]["labels"]["team"] == "ml-platform"
        assert doc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    (deployment,) = by_kind(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "ghcr.io/kubetune/operator@sha256:" + "a" * 64
    assert "--trainer-image=ghcr.io/kubetune/trainer:9.9.9" in container["args"]
    assert "--pod-annotation=karpenter.sh/do-not-disrupt=true" in container["args"]
    (pod_monitor,) = by_kind(docs, "PodMonitor")
    assert pod_monitor["spec"]["namespaceSelector"] == {"any": True}
    assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"


def test_pod_monitor_selects_the_pods_the_operator_renders(tmp_path: Path) -> None:
    from kubetune.render.labels import child_labels
    from kubetune.render.options import RenderOptions

    docs = render(VALUE_SETS["everything-namespaced"], tmp_path)
    (pod_monitor,) = by_kind(docs, "PodMonitor")
    selector = pod_monitor["spec"]["selector"]
    labels = child_labels("demo", "trainer")
    assert selector["matchLabels"].items() <= labels.items()
    assert all(e["key"] in labels for e in selector["matchExpressions"])
    assert pod_monitor["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}
    assert (
        RenderOptions().metrics_port
        == yaml.safe_load((CHART / "values.yaml").read_text())["trainer"]["metricsPort"]
    )


def test_dashboard_configmap_carries_the_dashboard(tmp_path: Path) -> None:
    docs = render(VALUE_SETS["everything-namespaced"], tmp_path)
    (configmap,) = by_kind(docs, "ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["kubetune.json"]) == json.loads(
        (CHART / "dashboards" / "kubetune.json").read_text()
    )


def test_dashboard_queries_are_valid_promql(promtool: Path, tmp_path: Path) -> None:
    """Every panel query parses as PromQL (promtool), with Grafana's variables filled in."""
    dashboard = json.loads((CHART / "dashboards" / "kubetune.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    grafana = {"$__rate_interval": "5m", "$namespace": ".*", "$finetunejob": ".*"}
    rules = []
    for index, expr in enumerate(exprs):
        for variable, value in grafana.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"kubetune:panel_{index}", "expr": expr})
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = subprocess.run(
        [str(promtool), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(exprs)} rules found" in proc.stdout


def test_packaged_chart_ships_the_argocd_health_check_and_no_test_data(
    tmp_path: Path,
) -> None:
    helm("package", str(CHART), "--destination", str(tmp_path))
    (archive,) = tmp_path.glob("kubetune-*.tgz")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    for shipped in (
        "argocd/health.lua",
        "argocd/argocd-cm.yaml",
        "templates/crds/finetunejob.yaml",
        "crds/kopf-peering.yaml",
        "templates/crds/finetunejobpolicy.yaml",
        "admission/rules.yaml",
        "dashboards/kubetune.json",
        "values.schema.json",
        "templates/NOTES.txt",
    ):
        assert f"kubetune/{shipped}" in names
    assert not [n for n in names if "testdata" in n or n.endswith("health_test.yaml")]


def test_policy_object_parses_and_allows_the_chart_trainer_image(tmp_path: Path) -> None:
    """The rendered FineTuneJobPolicy is one the operator reads, and it allows the image
    the operator runs jobs with (the chart's default can be adopted unchanged)."""
    from kubetune_contract.api.policy import FineTuneJobPolicy
    from kubetune_contract.api.policy_rules import image_allowed

    values = {"policy": {"images": ["registry.example/ml/"], "secrets": {"team-a": ["hf"]}}}
    docs = render(values, tmp_path)
    (policy,) = by_kind(docs, "FineTuneJobPolicy")
    parsed = FineTuneJobPolicy.model_validate(policy)
    (deployment,) = by_kind(docs, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    trainer = next(a for a in args if a.startswith("--trainer-image=")).split("=", 1)[1]
    assert image_allowed(trainer, parsed.spec.images)
    assert image_allowed("registry.example/ml/trainer:2", parsed.spec.images)
    assert f"--policy={parsed.metadata.name}" in args
    assert parsed.spec.secrets == {"team-a": ["hf"]}
    assert (parsed.spec.maxGpus, parsed.spec.maxNodes) == (64, 8)
    assert parsed.spec.maxActiveDeadlineSeconds is None
    assert "file" not in parsed.spec.storageSchemes


def test_admission_policy_binds_the_policy_object(rendered: Any) -> None:
    _, values, docs = rendered
    policies = by_kind(docs, "ValidatingAdmissionPolicy")
    policy_values = values.get("policy", {})
    if not (policy_values.get("enabled", True) and policy_values.get("admission", True)):
        assert not policies
        return
    (policy,) = policies
    (binding,) = by_kind(docs, "ValidatingAdmissionPolicyBinding")
    (params,) = by_kind(docs, "FineTuneJobPolicy")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["paramRef"]["name"] == params["metadata"]["name"]
    assert binding["spec"]["paramRef"]["parameterNotFoundAction"] == "Deny"
    assert policy["spec"]["paramKind"] == {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": params["kind"],
    }
    watched = values.get("watch", {}).get("namespaces")
    selector = binding["spec"].get("matchResources", {}).get("namespaceSelector")
    if watched:
        assert selector["matchExpressions"][0]["values"] == watched
    else:
        assert selector is None


def test_network_policies_are_off_by_default_and_allow_only_what_is_needed(
    tmp_path: Path,
) -> None:
    """Rendered and checked here: no CNI in the test environment enforces NetworkPolicy."""
    from kubetune.render.labels import child_labels

    assert not by_kind(render({}, tmp_path), "NetworkPolicy")
    values = VALUE_SETS["everything-cluster-wide"]
    docs = render(values, tmp_path)
    policies = {p["metadata"]["name"]: p for p in by_kind(docs, "NetworkPolicy")}
    operator, trainers = policies["kubetune-operator"], policies["kubetune-trainers"]
    assert trainers["metadata"]["namespace"] == "team-a"
    for policy in (operator, trainers):
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]

    (deployment,) = by_kind(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert operator["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    trainer_labels = child_labels("any-job", "trainer")
    assert trainers["spec"]["podSelector"]["matchLabels"].items() <= trainer_labels.items()

    def ports(rule: dict[str, Any]) -> set[Any]:
        return {p["port"] for p in rule.get("ports", [])}

    egress = operator["spec"]["egress"]
    assert [ports(r) for r in egress] == [{53}, {6443}, {values["trainer"]["metricsPort"]}]
    assert egress[1]["to"] == [{"ipBlock": {"cidr": "10.0.0.10/32"}}]
    assert egress[2]["to"][0]["podSelector"] == trainers["spec"]["podSelector"]
    ingress = operator["spec"]["ingress"]
    assert [ports(r) for r in ingress] == [{"healthz"}, {"metrics"}]
    assert ingress[1]["from"] == values["networkPolicy"]["metricsScrapers"]

    egress = trainers["spec"]["egress"]
    assert ports(egress[0]) == {53}
    assert egress[1] == {"to": [{"podSelector": trainers["spec"]["podSelector"]}]}
    assert egress[2:] == values["networkPolicy"]["trainer"]["egress"]
    scrape, peers = trainers["spec"]["ingress"]
    assert ports(scrape) == {"metrics"}
    assert scrape["from"][0]["podSelector"] == operator["spec"]["podSelector"]
    assert scrape["from"][1:] == values["networkPolicy"]["metricsScrapers"]
    assert peers == {"from": [{"podSelector": trainers["spec"]["podSelector"]}]}
