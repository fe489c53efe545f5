"""FineTuneJob -> TrainerConfig: the one render shared by the operator and `kubetune run`.

Render resolves what the spec alone decides, once, so the trainer never does it again:
each omitted block the method or adapter type uses is filled with its model's defaults,
and ``precision: auto`` becomes bf16 or fp32 where the spec names the hardware
(:func:`kubetune.estimate.hardware.precision`). What only the machine knows (the device
behind an unknown GPU, ``batchSize: auto`` probing, the torchrun world size) stays with
the trainer.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from kubetune.estimate.hardware import precision
from kubetune_contract.api import FineTuneJob, FineTuneJobSpec, TrainerConfig
from kubetune_contract.api.references import storage_uris
from kubetune_contract.api.resolved import resolve
from kubetune_contract.api.trainer_config import JobIdentity

FILE_SCHEME = "file://"


def spec_digest(spec: FineTuneJobSpec) -> str:
    """``sha256:<hex>`` of the spec's canonical JSON (sorted keys, defaults included)."""
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _resolve_file_uris(spec: FineTuneJobSpec, base_dir: Path) -> FineTuneJobSpec:
    """A copy of ``spec`` whose relative ``file://`` storage URIs are absolute against
    ``base_dir`` (the manifest's folder); other strings stay as written, even if they
    look like a URI."""
    resolved = spec.model_copy(deep=True)
    for stored in storage_uris(resolved):
        uri = stored.uri
        if uri.startswith(FILE_SCHEME) and not uri.startswith("file:///"):
            stored.found.replace(FILE_SCHEME + str((base_dir / uri[len(FILE_SCHEME) :]).resolve()))
    return resolved


def render_trainer_config(job: FineTuneJob, *, base_dir: Path | None = None) -> TrainerConfig:
    """The trainer's input for ``job``.

    ``base_dir`` is set by ``kubetune run``: relative ``file://`` URIs in the manifest
    then mean "next to the manifest", which is what a user running a local file expects.
    """
    spec = job.spec
    if base_dir is not None:
        spec = _resolve_file_uris(spec, base_dir)
    return TrainerConfig(
        job=JobIdentity(
            name=job.metadata.name, namespace=job.metadata.namespace, uid=job.metadata.uid
        ),
        specDigest=spec_digest(spec),
        spec=resolve(spec, precision(spec)),
    )


def trainer_config_json(config: TrainerConfig) -> str:
    """The config as the JSON document the trainer reads (stable key order)."""
    return json.dumps(config.model_dump(mode="json", exclude_none=True), indent=2, sort_keys=True)
