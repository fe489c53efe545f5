"""A job's evaluation on a result published earlier (``kubetune eval FILE --adapter URI``).

The same prompts (``spec.evaluation.dataset``, or the held-out validation rows, which the
job's seed splits off the same way), the same models (the base from ``spec.model``, the
tuned one from the adapter URI) and the same scoring as the stage after training, so a
result evaluated later gets the numbers its job would have reported. For results trained
before the job had an evaluation, after one that failed, or with new metrics.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from kubetune_contract.api.trainer_config import TrainerConfig
from kubetune_trainer import data, storage
from kubetune_trainer.errors import InvalidConfigError
from kubetune_trainer.evaluation import compare, examples, report
from kubetune_trainer.sources import resolve_model


@dataclass
class LocalEvaluation:
    result: compare.Evaluation
    files: list[str]
    """Where the report files were written (paths or URIs)."""


def _result_dir(uri: str, scratch: Path) -> Path:
    """A local folder with the published result (downloaded from a remote store)."""
    if storage.is_remote(uri):
        return storage.download_dir(uri, scratch / "result")
    folder = storage.local_path(uri)
    if not folder.is_dir():
        raise InvalidConfigError(f"--adapter {uri}: no such folder")
    return folder


def evaluate_result(
    config: TrainerConfig, adapter_uri: str, output: str, *, max_prompts: int | None = None
) -> LocalEvaluation:
    """Evaluate the result at ``adapter_uri`` with the job's ``config``; write the report to
    ``output`` (a folder or a storage URI)."""
    spec = config.spec
    if spec.evaluation is None:
        raise InvalidConfigError(
            f"job {config.job.name}: no spec.evaluation, so nothing says what to evaluate; "
            "add one (docs/evaluation.md)"
        )
    if max_prompts is not None:
        evaluation = spec.evaluation.model_copy(update={"maxPrompts": max_prompts})
        spec = spec.model_copy(update={"evaluation": evaluation})
    assert spec.evaluation is not None
    with tempfile.TemporaryDirectory(prefix="kubetune-eval-") as scratch:
        result_dir = _result_dir(adapter_uri, Path(scratch))
        held_out = None
        if spec.evaluation.dataset is None and spec.dataset is not None:
            held_out = data.prepare(spec.dataset, spec.method, spec.training.seed).eval
        prompts = examples.load(spec.evaluation, held_out)
        model_dir = resolve_model(spec.model.uri, spec.model.revision)
        result = compare.evaluate(spec, prompts, model_dir, result_dir)
        remote = storage.is_remote(output)
        folder = Path(scratch) / "report" if remote else storage.local_path(output)
        written = report.write(folder, spec, result, title=config.job.name, tuned_uri=adapter_uri)
        files = report.upload(written, output) if remote else [str(p) for p in written]
    return LocalEvaluation(result, files)
