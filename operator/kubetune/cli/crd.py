"""``kubetune crd``: print the generated CustomResourceDefinition."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "crd", help="print the FineTuneJob CRD (YAML) generated from the API models"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from kubetune.api.crd import render_crd_yaml

    sys.stdout.write(render_crd_yaml())
    return 0
