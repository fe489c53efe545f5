"""``kubetune crd``: print a generated CustomResourceDefinition (or the admission rules).

kubetune crd > crds/finetunejob.yaml
kubetune crd --kind FineTuneJobPolicy > crds/finetunejobpolicy.yaml
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
    output.add_argument(
        "--admission-rules",
        action="store_true",
        help="print the FineTuneJobPolicy's ValidatingAdmissionPolicy variables and validations",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from kubetune_contract.api.crd import render_admission_rules_yaml, render_crd_yaml

    sys.stdout.write(
        render_admission_rules_yaml() if args.admission_rules else render_crd_yaml(args.kind)
    )
    return 0
