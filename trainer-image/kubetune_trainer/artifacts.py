"""Results: the trained weights, tokenizer, ``metrics.jsonl`` and ``manifest.json``.

Upload order is the contract with readers: every file first, ``manifest.json`` last, so
whoever sees a manifest sees a whole result (a stage after publishing, the evaluation,
uploads its files, then rewrites the manifest whole with its entries added). The
manifest records what is needed to trust and reproduce the result: the spec digest and
resolved config, library versions, the SHA-256 and row count of every data file, and
the final metrics.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubetune_trainer import storage

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, Trainer

    from kubetune_contract.api.trainer_config import TrainerConfig
    from kubetune_trainer.data import DataReport

MANIFEST = "manifest.json"
METRICS = "metrics.jsonl"
MERGED = "merged"
LIBRARIES = (
    "kubetune",
    "torch",
    "transformers",
    "trl",
    "peft",
    "datasets",
    "accelerate",
    "bitsandbytes",
    "tokenizers",
)


@dataclass
class ResultUris:
    adapterUri: str
    manifestUri: str
    mergedUri: str | None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "adapterUri": self.adapterUri,
            "manifestUri": self.manifestUri,
            "mergedUri": self.mergedUri,
        }


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def save_final(trainer: Trainer, tokenizer: PreTrainedTokenizerBase, folder: Path) -> None:
    """The adapter (or full weights) and the tokenizer, as ``from_pretrained`` reads them."""
    trainer.save_model(str(folder))
    tokenizer.save_pretrained(folder)


def save_merged(
    model_dir: Path,
    adapter_dir: Path,
    tokenizer: PreTrainedTokenizerBase,
    folder: Path,
    dtype: Any,
    *,
    classifier: bool = False,
) -> None:
    """Base model + adapter merged into plain weights, loaded unquantized so qlora merges too.

    ``classifier``: the reward method's sequence classifier (its trained score head is
    part of the adapter and is merged with it).
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    if classifier:
        base = AutoModelForSequenceClassification.from_pretrained(
            model_dir, dtype=dtype, num_labels=1
        )
        base.config.pad_token_id = tokenizer.pad_token_id
    else:
        base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    if base.get_input_embeddings().num_embeddings != len(tokenizer):
        base.resize_token_embeddings(len(tokenizer))
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    merged.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def manifest(
    config: TrainerConfig,
    data: DataReport,
    metrics: dict[str, float],
    files: list[str],
    parameters: tuple[int, int],
    started: float,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``extra``: what optional stages add (early stopping, generated data), by key."""
    spec = config.spec
    return {
        **(extra or {}),
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "FineTuneResult",
        "job": config.job.model_dump(mode="json"),
        "specDigest": config.specDigest,
        "config": config.model_dump(mode="json", exclude_none=True),
        "method": spec.method,
        "adapterType": spec.adapter.type,
        "baseModel": {"uri": spec.model.uri, "revision": spec.model.revision},
        "versions": library_versions(),
        "data": data.as_dict(),
        "metrics": metrics,
        "parameters": {"trainable": parameters[0], "total": parameters[1]},
        "files": files,
        "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "durationSeconds": round(time.time() - started, 3),
    }


def publish(
    output_uri: str,
    final_dir: Path,
    merged_dir: Path | None,
    metrics_file: Path,
    build_manifest: Callable[[list[str]], dict[str, Any]],
) -> ResultUris:
    """Upload everything, then the manifest built from the list of uploaded files."""
    files = storage.upload_dir(final_dir, output_uri)
    merged_uri = None
    if merged_dir is not None:
        merged_uri = storage.join(output_uri, MERGED)
        files += storage.upload_dir(merged_dir, merged_uri)
    if metrics_file.exists():
        target = storage.join(output_uri, METRICS)
        storage.upload_file(metrics_file, target)
        files.append(target)
    manifest_uri = storage.join(output_uri, MANIFEST)
    _write_manifest(manifest_uri, build_manifest(files))
    return ResultUris(output_uri, manifest_uri, merged_uri)


def _write_manifest(uri: str, document: dict[str, Any]) -> None:
    storage.write_bytes(uri, json.dumps(document, indent=2, sort_keys=True).encode())


def amend_manifest(manifest_uri: str, entries: dict[str, Any], files: list[str]) -> None:
    """Add ``entries`` and the (already uploaded) ``files`` to the published manifest."""
    document = json.loads(storage.read_bytes(manifest_uri))
    document.update(entries)
    document["files"] = [*document.get("files", []), *files]
    _write_manifest(manifest_uri, document)
