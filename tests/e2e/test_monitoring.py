"""A real Prometheus scrapes the operator and a trainer while a job runs; every panel of the
chart's Grafana dashboard returns data from it, and the chart's alert rules evaluate
cleanly on the real series (none firing for a healthy job).

Prometheus 2.42 (Debian's) runs on the host and scrapes what the Prometheus Operator would
make of the chart's monitors: the operator through its metrics Service's endpoints (the
scrape job named after the Service, as the Operator names a ServiceMonitor's) and the
trainer pods by the PodMonitor's selector, with the PodMonitor's own relabelings (the
``finetunejob`` label the dashboard groups by). Debian builds Prometheus without Kubernetes
service discovery, so the test discovers the targets from the API server itself and hands
them over as file-based discovery, with the ``__meta_kubernetes_*`` labels Kubernetes
discovery would have set: the relabelings then run as they would in a cluster.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devenv.cluster import ControlPlane
from devenv.prometheus import PrometheusServer
from kubetune_contract.api import GROUP, PLURAL, VERSION
from tests.chart import CHART, by_kind, render
from tests.e2e.conftest import E2E, RELEASE, RELEASE_NAMESPACE, VALUES
from tests.tools.test_alerts import alert_rules

pytestmark = pytest.mark.e2e

#: Grafana's variables, as a dashboard user with "All" selected sends them.
GRAFANA = {"$__rate_interval": "2m", "$namespace": ".*", "$finetunejob": ".*"}


def _relabelings(monitor_endpoint: dict[str, Any]) -> list[dict[str, Any]]:
    """A PodMonitor endpoint's relabelings in Prometheus' own configuration syntax."""
    return [
        {"source_labels": r["sourceLabels"], "target_label": r["targetLabel"]}
        for r in monitor_endpoint.get("relabelings", [])
    ]


def _meta_label(kind: str, name: str) -> str:
    """Prometheus' discovery label for a Kubernetes label or annotation ``name``."""
    return f"__meta_kubernetes_{kind}_" + "".join(c if c.isalnum() else "_" for c in name)


def _pod_meta(pod: dict[str, Any]) -> dict[str, str]:
    """The ``__meta_kubernetes_pod_*`` labels Kubernetes discovery gives a pod."""
    meta = pod["metadata"]
    labels = {
        "__meta_kubernetes_namespace": meta["namespace"],
        "__meta_kubernetes_pod_name": meta["name"],
    }
    labels |= {_meta_label("pod_label", k): v for k, v in (meta.get("labels") or {}).items()}
    annotations = meta.get("annotations") or {}
    labels |= {_meta_label("pod_annotation", k): v for k, v in annotations.items()}
    return labels


def trainer_targets(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """File-discovery groups for the pods' named container ports (role ``pod``)."""
    groups = []
    for pod in pods:
        ip = pod["status"].get("podIP")
        for container in pod["spec"]["containers"] if ip else []:
            for port in container.get("ports", []):
                labels = _pod_meta(pod) | {
                    "__meta_kubernetes_pod_container_port_name": port.get("name", "")
                }
                groups.append({"targets": [f"{ip}:{port['containerPort']}"], "labels": labels})
    return groups


def operator_targets(cp: ControlPlane, service: str) -> list[dict[str, Any]]:
    """File-discovery groups for the metrics Service's endpoints (role ``endpoints``)."""
    endpoints = cp.request("GET", f"/api/v1/namespaces/{RELEASE_NAMESPACE}/endpoints/{service}")
    groups = []
    for subset in endpoints.get("subsets", []):
        for address in subset.get("addresses", []):
            for port in subset.get("ports", []):
                labels = {
                    "__meta_kubernetes_namespace": RELEASE_NAMESPACE,
                    "__meta_kubernetes_service_name": service,
                    "__meta_kubernetes_endpoint_port_name": port.get("name", ""),
                    "__meta_kubernetes_pod_name": address.get("targetRef", {}).get("name", ""),
                }
                target = f"{address['ip']}:{port['port']}"
                groups.append({"targets": [target], "labels": labels})
    return groups


def _write_targets(path: Path, groups: list[dict[str, Any]]) -> None:
    """Replace a discovery file at once (Prometheus watches it)."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(groups))
    partial.replace(path)


def scrape_configs(directory: Path) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    """What the Prometheus Operator would make of the chart's ServiceMonitor and
    PodMonitor (rendered with the e2e release's values), fed by discovery files; returns
    the configs and each job's discovery file."""
    values = {**VALUES, "serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}}
    docs = render(values, directory)
    (service_monitor,) = by_kind(docs, "ServiceMonitor")
    (pod_monitor,) = by_kind(docs, "PodMonitor")
    (service,) = by_kind(docs, "Service")
    files = {"operator": directory / "operator.json", "trainers": directory / "trainers.json"}
    for path in files.values():
        _write_targets(path, [])
    keep_pod_labels = [
        {"source_labels": [_meta_label("pod_label", k)], "regex": v, "action": "keep"}
        for k, v in pod_monitor["spec"]["selector"]["matchLabels"].items()
    ]
    endpoint = pod_monitor["spec"]["podMetricsEndpoints"][0]
    configs = [
        {
            "job_name": service["metadata"]["name"],
            "scrape_interval": "1s",
            "file_sd_configs": [{"files": [str(files["operator"])]}],
            "relabel_configs": [
                {
                    "source_labels": ["__meta_kubernetes_service_name"],
                    "regex": service["metadata"]["name"],
                    "action": "keep",
                },
                {
                    "source_labels": ["__meta_kubernetes_endpoint_port_name"],
                    "regex": service_monitor["spec"]["endpoints"][0]["port"],
                    "action": "keep",
                },
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job"},
            ],
        },
        {
            "job_name": f"{RELEASE_NAMESPACE}/{pod_monitor['metadata']['name']}",
            "scrape_interval": "1s",
            "file_sd_configs": [{"files": [str(files["trainers"])]}],
            "relabel_configs": [
                *keep_pod_labels,
                {
                    "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                    "regex": endpoint["port"],
                    "action": "keep",
                },
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                *_relabelings(endpoint),
            ],
        },
    ]
    return configs, files


def _panels() -> list[tuple[str, list[str]]]:
    """(title, queries with Grafana's variables filled in) of every dashboard panel."""
    dashboard = json.loads((CHART / "dashboards" / "kubetune.json").read_text())
    panels = []
    for panel in dashboard["panels"]:
        exprs = []
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA.items():
                expr = expr.replace(variable, value)
            exprs.append(expr)
        if exprs:
            panels.append((panel["title"], exprs))
    return panels


def _answered(prom: PrometheusServer, exprs: list[str]) -> bool:
    """Whether any of a panel's queries returns a series with a number."""
    return any(
        series["value"][1] not in ("NaN", "+Inf", "-Inf") for e in exprs for series in prom.query(e)
    )


def test_prometheus_scrapes_operator_and_trainer_and_every_dashboard_panel_has_data(
    e2e: E2E,
    control_plane: ControlPlane,
    prometheus_server: Callable[..., PrometheusServer],
    tmp_path: Path,
) -> None:
    configs, files = scrape_configs(tmp_path)
    prom = prometheus_server([], scrape_configs=configs, rule_files=[alert_rules(tmp_path)])
    operator_job = f"{RELEASE}-metrics"
    _write_targets(files["operator"], operator_targets(control_plane, operator_job))
    prom.wait_for_series(f'up{{job="{operator_job}", namespace="{RELEASE_NAMESPACE}"}} == 1')

    # A job that trains until it is deleted: Prometheus' file discovery takes seconds to
    # pick a target up, longer than the tiny model needs for a few hundred steps.
    e2e.create(e2e.manifest("watched", maxSteps=1_000_000))
    running = e2e.wait(
        lambda: [p for p in e2e.pods("watched") if p["status"].get("phase") == "Running"] or None,
        "the trainer pod runs",
    )
    _write_targets(files["trainers"], trainer_targets(running))
    try:
        step = prom.wait_for_series('kubetune_trainer_step{finetunejob="watched"} > 3', timeout=240)
    except Exception as e:
        discovered = files["trainers"].read_text()
        raise AssertionError(
            f"{e}\ntargets: {prom.api('targets')}\ntrainer discovery file: {discovered}"
        ) from e
    assert step[0]["metric"]["namespace"] == e2e.namespace
    assert step[0]["metric"]["pod"] == running[0]["metadata"]["name"]

    panels = _panels()
    assert len(panels) >= 10
    # Queue time was observed when the job started; the rate window covers it.
    unanswered = {title for title, exprs in panels if not _answered(prom, exprs)}
    e2e.custom.delete_namespaced_custom_object(GROUP, VERSION, e2e.namespace, PLURAL, "watched")

    # The durations of finished jobs: a series that exists once a job finished, whose
    # rate() needs a second one to finish after it.
    durations = f'kubetune_operator_job_duration_seconds_count{{job="{operator_job}"}}'
    for count, name in enumerate(("short", "shorter"), start=1):
        e2e.create(e2e.manifest(name, maxSteps=5))
        e2e.wait_state(name, "Succeeded", "Failed", timeout=300)
        prom.wait_for_series(f"{durations} >= {count}")
    unanswered = {t for t, exprs in panels if t in unanswered and not _answered(prom, exprs)}
    assert not unanswered, f"dashboard panels without data: {sorted(unanswered)}"

    # The alert rules ran on these series without an error, and a healthy job fires none.
    groups = prom.api("rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == 6 and all(r["health"] == "ok" for r in rules), rules
    assert prom.query('ALERTS{alertstate="firing"}') == []
