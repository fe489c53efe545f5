"""``kubetune crd``: print a generated CustomResourceDefinition (or the admission rules).

kubetune crd > crds/finetunejob.yaml
kubetune crd --kind FineTuneJobPolicy > crds/finetunejobpolicy.yaml
kubetune crd --chart-template > charts/kubetune/templates/crds/finetunejob.yaml
kubetune crd --admission-rules > charts/kubetune/admission/rules.yaml
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    from kubetune_contract.api.crd import CRDS
    from kubetune_contract.api.job import KIND

    parser = subparsers.add_parser(
        "crd", help="print the FineTuneJob CRD (YAML) generated from the API models"
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--kind", choices=sorted(CRDS), default=KIND, help="which CRD (default %(default)s)"
    )
    parser.add_argument(
        "--chart-template",
        action="store_true",
        help="print the CRD as the Helm chart's template (guarded by crds.enabled, "
        "kept on uninstall with crds.keep)",
    )
    output.add_argument(
        "--admission-rules",
        action="store_true",
        help="print the FineTuneJobPolicy's ValidatingAdmissionPolicy variables and validations",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from kubetune_contract.api.crd import (
        render_admission_rules_yaml,
        render_chart_template,
        render_crd_yaml,
    )

    if args.admission_rules:
        sys.stdout.write(render_admission_rules_yaml())
    elif args.chart_template:
        sys.stdout.write(render_chart_template(args.kind))
    else:
        sys.stdout.write(render_crd_yaml(args.kind))
    return 0
