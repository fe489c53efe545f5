"""``kubetune-trainer local --config C``: one run on this machine, as ``kubetune run`` wants it.

The run a pod does (:func:`kubetune_trainer.run.execute` on a rendered TrainerConfig), with
a progress bar instead of log lines and a human summary at the end. SIGTERM and Ctrl-C
(SIGINT) stop it as they stop a pod (:mod:`kubetune_trainer.preemption`): a checkpoint at
the end of the step, exit code 5, and the summary says which command continues.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from kubetune_contract import exit_codes
from kubetune_contract.api.trainer_config import TrainerConfig
from kubetune_contract.termination import Summary
from kubetune_trainer.config import load
from kubetune_trainer.run import RunOptions, execute


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "local", help="run a trainer config here with a progress bar and a summary"
    )
    parser.add_argument("--config", type=Path, required=True, help="trainer config (JSON/YAML)")
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="scratch folder (default: a temporary one)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest checkpoint in the output instead of starting over",
    )
    parser.add_argument(
        "--metrics-port", type=int, default=0, help="serve Prometheus metrics here (0: off)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--resume-command",
        metavar="COMMAND",
        help="what the summary tells to run after a stop (default: this command with --resume)",
    )
    parser.set_defaults(handler=run)


def run_local(
    config: TrainerConfig | Path,
    *,
    work_dir: Path | None = None,
    progress: bool = True,
    metrics_port: int = 0,
    resume: bool = False,
) -> Summary:
    """Train ``config`` (or the config file) here and now; the summary's ``exitCode`` is the
    verdict.

    Unlike a pod, a local run starts over unless ``resume`` is set: running the quickstart
    twice should train twice, not find the first run's last checkpoint and stop at once.
    """
    callbacks: list[Any] = []
    if progress:
        from transformers.utils.logging import disable_progress_bar

        from kubetune_trainer.commands.progress import ProgressBar

        callbacks.append(ProgressBar())
        # One bar, ours: not one per weight-loading or dataset-mapping pass as well.
        disable_progress_bar()
    return execute(
        (lambda: config) if isinstance(config, TrainerConfig) else (lambda: load(config)),
        RunOptions(
            work_dir=work_dir,
            callbacks=callbacks,
            metrics_port=metrics_port,
            resume=resume,
            print_logs=False,
        ),
    )


def format_summary(summary: Summary, resume_command: str) -> str:
    """The human summary printed at the end; after a stop signal, ``resume_command``: the
    command that continues from the checkpoint."""
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
        lines.append(f"continue with: {resume_command}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    summary = run_local(
        args.config,
        work_dir=args.work_dir,
        progress=not args.no_progress,
        metrics_port=args.metrics_port,
        resume=args.resume,
    )
    resume_command = args.resume_command or shlex.join(
        ["kubetune-trainer", "local", "--config", str(args.config), "--resume"]
    )
    print(format_summary(summary, resume_command), flush=True)
    return summary.exitCode
