"""``kubetune run FILE``: the same FineTuneJob manifest, trained in this process.

Same validation as the API server and the operator (the pydantic models), the same
render of the trainer config (relative ``file://`` URIs resolve against the manifest's
folder), then :func:`kubetune_trainer.run.execute` with a progress bar. SIGTERM and
Ctrl-C (SIGINT) stop it as they stop a pod (:mod:`kubetune_trainer.preemption`): a
checkpoint at the end of the step, exit code 5, and ``kubetune run --resume FILE``
continues.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

import yaml
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.utils.logging import disable_progress_bar

from kubetune.render.trainer_config import render_trainer_config
from kubetune_contract import exit_codes
from kubetune_contract.api.errors import InvalidManifest
from kubetune_contract.api.loading import parse_finetunejob, read_documents
from kubetune_contract.api.trainer_config import TrainerConfig
from kubetune_contract.termination import Summary
from kubetune_trainer.errors import InvalidConfigError
from kubetune_trainer.run import RunOptions, execute


class ProgressBar(TrainerCallback):
    """A tqdm bar over optimizer steps with the latest loss and eval loss."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.bar: Any = None
        self.postfix: dict[str, str] = {}

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=state.max_steps,
            initial=state.global_step,
            unit="step",
            file=self.stream,
            dynamic_ncols=True,
        )

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        for key, label in (("loss", "loss"), ("eval_loss", "eval")):
            if logs and key in logs:
                self.postfix[label] = f"{logs[key]:.3f}"
        if self.bar is not None:
            self.bar.set_postfix(self.postfix)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        if self.bar is not None:
            self.bar.close()


def load_manifest(path: Path) -> TrainerConfig:
    """Validate the (single) FineTuneJob in ``path`` and render its trainer config."""
    try:
        documents = list(read_documents(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidConfigError(f"cannot read {path}: {exc}") from exc
    if len(documents) != 1:
        raise InvalidConfigError(
            f"{path}: expected one FineTuneJob, found {len(documents)} documents"
        )
    try:
        job = parse_finetunejob(documents[0].content)
    except InvalidManifest as exc:
        raise InvalidConfigError(f"{path}: {exc}") from None
    return render_trainer_config(job, base_dir=path.resolve().parent)


def run_manifest(
    path: Path,
    *,
    work_dir: Path | None = None,
    progress: bool = True,
    metrics_port: int = 0,
    resume: bool = False,
) -> Summary:
    """Train the FineTuneJob in ``path`` here and now; the summary's ``exitCode`` is the verdict.

    Unlike a pod, a local run starts over unless ``resume`` is set: running the quickstart
    twice should train twice, not find the first run's last checkpoint and stop at once.
    """
    callbacks: list[TrainerCallback] = [ProgressBar()] if progress else []
    if progress:
        # One bar, ours: not one per weight-loading or dataset-mapping pass as well.
        disable_progress_bar()
    return execute(
        lambda: load_manifest(path),
        RunOptions(
            work_dir=work_dir,
            callbacks=callbacks,
            metrics_port=metrics_port,
            resume=resume,
            print_logs=False,
        ),
    )


def format_summary(summary: Summary, manifest: Path) -> str:
    """The human summary ``kubetune run`` prints at the end; after a stop signal, the
    command that continues from the checkpoint (``manifest``: the file that was run)."""
    lines = [f"{summary.outcome}: {summary.message}"]
    if summary.totalSteps:
        lines.append(f"  steps: {summary.step}/{summary.totalSteps}")
    for key in ("initialEvalLoss", "evalLoss", "loss", "trainRuntimeSeconds"):
        if key in summary.metrics:
            lines.append(f"  {key}: {summary.metrics[key]:.4f}")
    for key, value in summary.result.items():
        if value:
            lines.append(f"  {key}: {value}")
    for metric, score in (summary.evaluation.get("metrics") or {}).items():
        lines.append(f"  evaluation {metric}: base {score['base']:.4f}, tuned {score['tuned']:.4f}")
    if summary.exitCode == exit_codes.INTERRUPTED:
        lines.append(f"continue with: kubetune run --resume {manifest}")
    return "\n".join(lines)
