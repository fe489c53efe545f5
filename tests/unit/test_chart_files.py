"""The chart's files checked without helm: the CRD templates and admission rules are the
generated ones, every value is documented, camelCase and in the schema, and the
dashboard queries only metrics the operator and the trainer export. What needs the
pinned helm (rendering, lint, packaging) is in tests/tools/test_chart.py."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from kubetune_contract.api.crd import CRDS, render_chart_template
from tests.chart import CHART, ROOT


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_chart_crd_template_is_the_generated_crd(kind: str) -> None:
    """templates/crds/ is crds/ plus the Helm lines (the guard and the keep annotation)."""
    name = CRDS[kind][1]
    template = (CHART / "templates" / "crds" / name).read_text()
    assert template == render_chart_template(kind), "stale: run `make crd`"
    helm_lines = ("{{", "helm.sh/resource-policy", "helm uninstall leaves")
    plain = [
        line
        for line in template.splitlines(keepends=True)
        if not any(mark in line for mark in helm_lines)
    ]
    assert "".join(plain) == (ROOT / "crds" / name).read_text()


def test_chart_crds_directory_holds_only_kopfs_peering_crds() -> None:
    """Helm installs crds/ once and never upgrades it: a copy of our CRDs there would
    shadow the upgradable templates/crds/ on first install and go stale after."""
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == ["kopf-peering.yaml"]


def test_admission_rules_are_the_generated_rules() -> None:
    from kubetune_contract.api.crd import render_admission_rules_yaml

    committed = (CHART / "admission" / "rules.yaml").read_text()
    assert committed == render_admission_rules_yaml(), "stale: run `make crd`"


def _documented_keys(text: str) -> list[tuple[str, bool]]:
    """(dotted key, has a comment right above) for every mapping key in values.yaml
    outside free-form maps (resources, security contexts, labels...)."""
    keys: list[tuple[str, bool]] = []
    stack: list[tuple[int, str]] = []
    previous = ""
    for line in text.splitlines():
        match = re.match(r"^( *)([A-Za-z_][\w.-]*):", line)
        if match and not line.lstrip().startswith("-"):
            indent, key = len(match.group(1)), match.group(2)
            while stack and stack[-1][0] >= indent:
                stack.pop()
            path = ".".join([k for _, k in stack] + [key])
            keys.append((path, previous.lstrip().startswith("#")))
            stack.append((indent, key))
        if line.strip():
            previous = line
    return keys


def _schema_paths(schema: dict[str, Any], prefix: str = "") -> set[str]:
    paths = set()
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        paths.add(path)
        paths |= _schema_paths(sub, path + ".")
    return paths


def test_every_value_is_documented_camel_case_and_in_the_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    declared = _schema_paths(schema)
    keys = [
        (k, c) for k, c in _documented_keys((CHART / "values.yaml").read_text()) if k in declared
    ]
    assert {k for k, _ in keys} == declared, "schema and values.yaml disagree"
    undocumented = [k for k, commented in keys if not commented]
    assert not undocumented, f"values without a comment: {undocumented}"
    for key in declared:
        assert re.fullmatch(r"[a-z][a-zA-Z0-9]*", key.rsplit(".", 1)[-1]), key


def _metric_names() -> set[str]:
    """Every series name the operator and the trainer export."""
    from prometheus_client import CollectorRegistry

    from kubetune import metrics as operator_metrics
    from kubetune_trainer.metrics import TrainerMetrics

    # Labelled metrics without observations expose no samples yet, so series names are
    # derived from each family's type as the exposition format names them.
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "gauge": ("",),
        "summary": ("", "_sum", "_count"),
    }
    names: set[str] = set()
    registry = CollectorRegistry()
    registry.register(operator_metrics.JobsByState(dict))
    families = [
        *operator_metrics.REGISTRY.collect(),
        *TrainerMetrics().registry.collect(),
        *registry.collect(),
    ]
    for family in families:
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
    return names


def test_dashboard_queries_only_exported_metrics() -> None:
    dashboard = json.loads((CHART / "dashboards" / "kubetune.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    used = {m for e in exprs for m in re.findall(r"\b(kubetune_[a-z_]+)", e)}
    missing = used - _metric_names()
    assert not missing, f"dashboard queries metrics nobody exports: {missing}"
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("state", "queue", "loss", "tokens per second", "gpu memory"):
        assert topic in titles
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
