"""``kubetune estimate FILE``: GPU memory, fit, time and cost before anything runs.

Exits 1 when the manifest's requested ``resources.gpuType`` can't hold the job, so it can
gate a CI pipeline.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from kubetune_contract.api import InvalidManifest, parse_finetunejob
from kubetune_contract.api.loading import read_documents


def _price(text: str) -> tuple[str, float]:
    product, _, usd = text.partition("=")
    try:
        return product, float(usd)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected PRODUCT=USD_PER_GPU_HOUR, e.g. NVIDIA-H100-80GB-HBM3=4.5, got {text!r}"
        ) from None


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "estimate", help="estimate GPU memory, time and cost of a FineTuneJob"
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="a FineTuneJob manifest")
    parser.add_argument(
        "--model-config", type=Path, help="config.json of the base model (default: catalog)"
    )
    parser.add_argument(
        "--dataset-tokens",
        type=int,
        help="tokens in the training data (default: from a local file)",
    )
    parser.add_argument(
        "--price",
        type=_price,
        action="append",
        default=[],
        metavar="PRODUCT=USD",
        help="price per GPU-hour of a GPU product (repeatable)",
    )
    parser.add_argument("--prices", type=Path, help="YAML mapping of GPU product to USD/GPU-hour")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from kubetune.estimate.report import dataset_tokens_from_file, estimate, render
    from kubetune.estimate.shapes import load_shape
    from kubetune.render.trainer_config import render_trainer_config

    try:
        documents = list(read_documents(args.file.read_text()))
        if len(documents) != 1:
            raise InvalidManifest([])
        job = parse_finetunejob(documents[0].content)
    except (OSError, yaml.YAMLError, InvalidManifest) as error:
        print(f"{args.file}: not a valid single FineTuneJob: {error} (see `kubetune validate`)")
        return 2
    spec = render_trainer_config(job, base_dir=args.file.resolve().parent).spec
    try:
        shape = load_shape(spec.model.uri, args.model_config)
    except LookupError as error:
        print(str(error))
        return 2
    prices = dict(yaml.safe_load(args.prices.read_text()) or {}) if args.prices else {}
    prices.update(dict(args.price))
    tokens = args.dataset_tokens
    if tokens is None and spec.dataset and spec.dataset.train.uri.startswith("file://"):
        local = Path(spec.dataset.train.uri.removeprefix("file://"))
        tokens = dataset_tokens_from_file(local) if local.exists() else None
    result = estimate(shape, spec, dataset_tokens=tokens, prices=prices)
    print(render(result, spec.model.uri))
    return 1 if result.requested_fits is False else 0
