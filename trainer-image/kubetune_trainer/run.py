"""One trainer run: config -> model -> data -> method -> train -> results.

:func:`execute` is what both entry points call (the container's ``kubetune-trainer`` and
``kubetune run``): it never raises for expected failures but returns a
:class:`~kubetune_contract.termination.Summary` whose ``exitCode`` says what happened.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubetune_contract import exit_codes
from kubetune_contract.pod import WORK_DIR_ENV
from kubetune_contract.termination import Summary
from kubetune_trainer.errors import StopRequested, TrainerError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, Trainer, TrainerCallback

    from kubetune_contract.api.trainer_config import TrainerConfig
    from kubetune_trainer.adapters import LoadedModel
    from kubetune_trainer.batch_sizing import BatchSize
    from kubetune_trainer.callbacks import TelemetryCallback
    from kubetune_trainer.checkpoints import CheckpointStore
    from kubetune_trainer.data import PreparedData
    from kubetune_trainer.evaluation.examples import Example
    from kubetune_trainer.metrics import TrainerMetrics
    from kubetune_trainer.monitoring import EarlyStopping
    from kubetune_trainer.preemption import PreemptionCallback
    from kubetune_trainer.resume import ResumePoint
    from kubetune_trainer.uploads import CheckpointUploadCallback

log = logging.getLogger(__name__)

#: The result folder under the work dir: what is uploaded, and what evaluation loads.
FINAL_DIR = "final"


@dataclass
class RunOptions:
    """How to run, beyond the config: where to work, extra callbacks, metrics port."""

    work_dir: Path | None = None
    callbacks: list[TrainerCallback] = field(default_factory=list)
    metrics_port: int | None = None
    """``None``: from ``$KUBETUNE_METRICS_PORT`` (default 9090); ``0``: no server."""
    resume: bool = True
    """Resume from the newest complete checkpoint in the output store (the pod default);
    ``False`` discards those checkpoints and starts over."""
    print_logs: bool = True
    """Print each log record (pod logs); off when a progress bar shows them instead."""


def execute(load_config: Callable[[], TrainerConfig], options: RunOptions) -> Summary:
    """Load the config and run; map every failure to a summary with its exit code."""
    try:
        return train(load_config(), options)
    except TrainerError as exc:
        log.error("%s: %s", exc.reason, exc)
        return Summary("Failed", exc.reason, str(exc), exc.exit_code)
    except StopRequested as stop:
        log.warning("%s", stop)
        return Summary("Interrupted", stop.reason, str(stop), stop.exit_code)
    except Exception as exc:  # a bug or an exhausted resource: report it, never hide it
        log.error("unexpected error\n%s", traceback.format_exc())
        reason, message = "InternalError", f"{type(exc).__name__}: {exc}"
        if type(exc).__name__ == "OutOfMemoryError":
            reason = "OutOfMemory"
            message += (
                " (reduce training.batchSize or dataset.maxLength, enable "
                "training.gradientCheckpointing, or use adapter.type qlora)"
            )
        return Summary("Failed", reason, message, exit_codes.INTERNAL_ERROR)


@dataclass
class _Session:
    """What the phases of a run share once the trainer is built."""

    config: TrainerConfig
    work: Path
    model_dir: Path
    tokenizer: PreTrainedTokenizerBase
    prepared: PreparedData
    loaded: LoadedModel
    trainer: Trainer
    store: CheckpointStore
    uploader: CheckpointUploadCallback
    telemetry: TelemetryCallback
    preemption: PreemptionCallback
    batch: BatchSize
    early_stopping: EarlyStopping | None = None
    stages: list[Any] = field(default_factory=list)
    """Stages before training with something to say in the result (``Reporting``)."""
    evaluation: list[Example] | None = None
    """The prompts ``spec.evaluation`` answers after training, read and checked up front."""
    started: float = field(default_factory=time.time)
    tensorboard_logs: Path | None = None
    """TensorBoard's local event files, for an object-store ``tracking.uri``."""


def _build(config: TrainerConfig, options: RunOptions, preemption: PreemptionCallback) -> _Session:
    """Model, data, adapter, callbacks and the method's TRL trainer."""
    import datasets
    import torch
    from transformers import AutoTokenizer, PrinterCallback, set_seed
    from trl.data_utils import is_conversational

    from kubetune_contract.api.resolved import MultitaskJobSpec
    from kubetune_trainer import (
        adapters,
        artifacts,
        batch_sizing,
        data,
        distributed,
        methods,
        selfcritique,
        tracking,
    )
    from kubetune_trainer.callbacks import TelemetryCallback
    from kubetune_trainer.checkpoints import CheckpointStore
    from kubetune_trainer.data import tasks
    from kubetune_trainer.errors import InvalidConfigError
    from kubetune_trainer.evaluation import examples as evaluation
    from kubetune_trainer.history import HistoryCallback
    from kubetune_trainer.metrics import TrainerMetrics
    from kubetune_trainer.monitoring import EarlyStopping, PerplexityCallback
    from kubetune_trainer.sources import resolve_model
    from kubetune_trainer.uploads import CheckpointUploadCallback

    spec = config.spec
    datasets.disable_progress_bars()
    # The schema guarantees the method and its data; the tracking backend's package is
    # what only this image can tell.
    tracking.check_installed(spec)
    work = options.work_dir or Path(
        os.environ.get(WORK_DIR_ENV) or tempfile.mkdtemp(prefix="kubetune-")
    )
    work.mkdir(parents=True, exist_ok=True)
    tensorboard_logs = tracking.configure(spec, work)
    telemetry_metrics = TrainerMetrics()
    telemetry_metrics.serve(options.metrics_port)

    classifier = spec.method in methods.CLASSIFIER_METHODS
    model_dir = resolve_model(spec.model.uri, spec.model.revision, classifier=classifier)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    adapters.ensure_tokenizer_ready(tokenizer, model_dir)
    stages: list[Any] = []
    loaded: LoadedModel | None = None
    if isinstance(spec, MultitaskJobSpec):
        prepared = tasks.prepare(list(spec.multitask.tasks), tokenizer, spec.training.seed)
    elif spec.selfCritique is not None:
        # The stage samples from the model about to be trained, so the model comes first.
        set_seed(spec.training.seed)
        loaded = adapters.load(model_dir, spec.adapter, spec.training, tokenizer)
        generated = selfcritique.generate(spec, loaded.model, tokenizer)
        stages.append(generated)
        # From here on the job trains as if the generated data were its dataset.
        spec = spec.model_copy(update={"dataset": generated.dataset(spec.method)})
        assert spec.dataset is not None
        prepared = data.prepare(spec.dataset, spec.method, spec.training.seed)
    else:
        assert spec.dataset is not None  # the schema: every other method has a dataset
        prepared = data.prepare(spec.dataset, spec.method, spec.training.seed)
    if is_conversational(prepared.train[0]) and tokenizer.chat_template is None:
        raise InvalidConfigError(
            f"the data is conversational but the model {spec.model.uri} has no chat template; "
            "use a chat (instruct) model or plain-text data (format text, or promptCompletion "
            "with string prompts)"
        )
    log.info(
        "data: %d training rows, %d validation rows",
        prepared.report.trainRows,
        prepared.report.evalRows,
    )
    # Bad evaluation data fails the job now, not after training.
    examples = evaluation.load(spec.evaluation, prepared.eval) if spec.evaluation else None

    set_seed(spec.training.seed)
    if loaded is None:
        loaded = adapters.load(
            model_dir, spec.adapter, spec.training, tokenizer, classifier=classifier
        )
    world = distributed.world_size()
    if world > 1:
        log.info(
            "distributed: rank %s of %d, rendezvous %s:%s",
            os.environ.get("RANK", "0"),
            world,
            os.environ.get("MASTER_ADDR", "?"),
            os.environ.get("MASTER_PORT", "?"),
        )
    batch = batch_sizing.batch_size(
        spec.training, on_gpu=torch.cuda.is_available(), train_rows=len(prepared.train)
    )
    if batch.note:
        log.info("%s", batch.note)
    telemetry = TelemetryCallback(
        telemetry_metrics,
        work / artifacts.METRICS,
        batch.size * spec.training.gradientAccumulationSteps * world,
    )
    store = CheckpointStore(spec.output.uri, spec.checkpoints.keep)
    uploader = CheckpointUploadCallback(store, telemetry_metrics, work / "checkpoints")
    early = spec.training.earlyStopping
    early_stopping = EarlyStopping(early) if early is not None else None
    ctx = methods.MethodContext(
        spec=spec,
        model=loaded.model,
        tokenizer=tokenizer,
        peft_config=loaded.peft_config,
        data=prepared,
        output_dir=work / "checkpoints",
        batch=batch,
        # Perplexity (exp of a token NLL: sft's eval loss only) first: it adds to the log
        # record the later callbacks keep.
        callbacks=[
            *([PerplexityCallback()] if spec.method == "sft" else []),
            telemetry,
            preemption,
            HistoryCallback(work / artifacts.METRICS, work / "checkpoints"),
            uploader,
            *([early_stopping] if early_stopping else []),
            *([batch_sizing.EvalBatchFollowsTraining()] if batch.probe else []),
            *options.callbacks,
        ],
    )
    trainer = methods.build(ctx)
    if not options.print_logs:
        trainer.remove_callback(PrinterCallback)
    return _Session(
        config,
        work,
        model_dir,
        tokenizer,
        prepared,
        loaded,
        trainer,
        store,
        uploader,
        telemetry,
        preemption,
        batch,
        early_stopping,
        stages,
        examples,
        tensorboard_logs=tensorboard_logs,
    )


def _publish(session: _Session, metrics: dict[str, float], resumed_at: list[int]) -> Summary:
    """Save the result, optionally merge, upload it with the manifest last.

    ``resumed_at``: the step each resume of the run started at (from its history).
    """
    from kubetune_trainer import adapters, artifacts, reports
    from kubetune_trainer.methods import CLASSIFIER_METHODS

    spec, trainer, state = session.config.spec, session.trainer, session.trainer.state
    base: dict[str, Any] = {
        "step": state.global_step,
        "totalSteps": state.max_steps,
        "metrics": metrics,
        "resumes": session.uploader.resumes,
    }
    final_dir = session.work / FINAL_DIR
    artifacts.save_final(trainer, session.tokenizer, final_dir)
    if not trainer.is_world_process_zero():
        # Under torchrun every rank takes part in saving; only rank 0 publishes.
        return Summary(
            "Succeeded",
            "Succeeded",
            f"rank finished {state.global_step} steps",
            exit_codes.SUCCESS,
            **base,
        )
    notes = reports.save(
        session.prepared.report,
        session.work / artifacts.METRICS,
        final_dir,
        [*session.stages, *trainer.callback_handler.callbacks],
        title=session.config.job.name,
        batch=session.batch,
        # What auto_find_batch_size settled on after any out-of-memory halving.
        trained_batch=getattr(trainer, "_train_batch_size", None),
    )
    merged_dir = None
    if spec.output.merge and session.loaded.peft_config is not None:
        merged_dir = session.work / artifacts.MERGED
        artifacts.save_merged(
            session.model_dir,
            final_dir,
            session.tokenizer,
            merged_dir,
            adapters.compute_dtype(spec.training.precision),
            classifier=spec.method in CLASSIFIER_METHODS,
        )
    # The model object TRL trained: PEFT injects its layers into it in place.
    parameters = adapters.trainable_parameters(session.loaded.model)
    uris = artifacts.publish(
        spec.output.uri,
        final_dir,
        merged_dir,
        session.work / artifacts.METRICS,
        lambda files: artifacts.manifest(
            session.config,
            session.prepared.report,
            metrics,
            files,
            parameters,
            session.started,
            {**notes.manifest, "resumes": session.uploader.resumes, "resumedAtSteps": resumed_at},
        ),
    )
    return Summary(
        "Succeeded",
        "Succeeded",
        "; ".join(
            [f"trained {state.global_step} steps", *notes.messages, f"result in {uris.adapterUri}"]
        ),
        exit_codes.SUCCESS,
        result=uris.as_dict(),
        checkpoints=[c.as_dict() for c in session.store.complete()],
        **base,
    )


def _generate_only(config: TrainerConfig) -> Summary:
    """``selfCritique.generateOnly``: write the generated datasets and their manifest."""
    from transformers import AutoTokenizer, set_seed

    from kubetune_trainer import adapters, selfcritique
    from kubetune_trainer.sources import resolve_model

    spec = config.spec
    model_dir = resolve_model(spec.model.uri, spec.model.revision, classifier=False)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    adapters.ensure_tokenizer_ready(tokenizer, model_dir)
    set_seed(spec.training.seed)
    loaded = adapters.load(model_dir, spec.adapter, spec.training, tokenizer)
    generated = selfcritique.generate(spec, loaded.model, tokenizer)
    manifest_uri = selfcritique.publish_generated(config, generated)
    return Summary(
        "Succeeded",
        "Succeeded",
        f"{generated.summary()}; generateOnly, nothing trained",
        exit_codes.SUCCESS,
        result={"adapterUri": None, "manifestUri": manifest_uri, "mergedUri": None},
    )


def train(config: TrainerConfig, options: RunOptions) -> Summary:
    """The run itself; raises :class:`TrainerError` for expected failures and
    :class:`StopRequested` for a stop signal outside the training loop."""
    from kubetune_trainer.preemption import PreemptionCallback

    preemption = PreemptionCallback()
    with preemption.handling_signals():
        if config.spec.selfCritique is not None and config.spec.selfCritique.generateOnly:
            return _generate_only(config)
        session = _build(config, options, preemption)
        summary = _train(session, options)
        examples = session.evaluation
        if (
            examples is None
            or summary.outcome != "Succeeded"
            or not session.trainer.is_world_process_zero()
        ):
            return summary
        model_dir, work, metrics = session.model_dir, session.work, session.uploader.metrics
        # Evaluation loads the published weights: the trainer, its model and optimizer go first.
        del session
        return _evaluate(config, examples, model_dir, work, metrics, summary)


def _evaluate(
    config: TrainerConfig,
    examples: list[Example],
    model_dir: Path,
    work: Path,
    metrics: TrainerMetrics,
    summary: Summary,
) -> Summary:
    """Run ``spec.evaluation`` on the published result; its outcome joins the summary."""
    from kubetune_trainer.evaluation import models, stage

    models.free_memory()
    manifest_uri = summary.result["manifestUri"]
    assert manifest_uri is not None
    outcome = stage.run(
        stage.Inputs(config, examples, model_dir, work / FINAL_DIR, manifest_uri, metrics, work)
    )
    summary.evaluation = outcome.summary
    summary.message = f"{summary.message}; {outcome.sentence}"
    return summary


def _start(session: _Session, options: RunOptions) -> ResumePoint:
    """Train from the start or the newest complete checkpoint; from a checkpoint at the
    last step, only load it (:func:`kubetune_trainer.resume.finished`)."""
    from kubetune_trainer import artifacts, history
    from kubetune_trainer.resume import finished, load_finished, resume_point, saved_state

    trainer = session.trainer
    if not options.resume:
        session.store.clear()
    start = resume_point(session.store, session.work / "checkpoints")
    session.uploader.resumed_from(start.checkpoint, start.resumes)
    if trainer.is_world_process_zero():  # the process that writes the history
        history.begin(session.work / artifacts.METRICS, start.folder, start.step, start.resumes)
    if start.folder is None:
        if session.prepared.eval is not None:
            trainer.evaluate()  # the history's step 0: initialEvalLoss
        trainer.train()
    elif finished(trainer.args, saved_state(start.folder)):
        log.info("checkpoint %d is the last step: publishing it, no training", start.step)
        load_finished(trainer, start.folder)
    else:
        trainer.train(resume_from_checkpoint=str(start.folder))
    return start


def _train(session: _Session, options: RunOptions) -> Summary:
    """Resume or start, train, and publish the result."""
    from kubetune_trainer import artifacts, history, tracking
    from kubetune_trainer.errors import InfrastructureError

    start = _start(session, options)
    trainer, state = session.trainer, session.trainer.state
    if state.is_world_process_zero:
        tracking.upload_logs(session.config.spec, session.tensorboard_logs)
    metrics_file = session.work / artifacts.METRICS

    early_stop = session.early_stopping is not None and session.early_stopping.reason
    if state.global_step < state.max_steps and not early_stop:
        # Stopped by a signal after saving; a grace period leaves no time to wait out an
        # outage: without the checkpoint in the store, this is an infrastructure failure.
        stopped_by = session.preemption.signal_name
        if state.is_world_process_zero and not session.uploader.upload(state):
            raise InfrastructureError(
                f"stopped by {stopped_by} at step {state.global_step}, but the output store "
                "is unreachable: the checkpoint was not saved"
            )
        return Summary(
            "Interrupted",
            "Interrupted",
            f"stopped by {stopped_by} at step {state.global_step} of {state.max_steps}; "
            "a checkpoint was saved and the next run resumes from it",
            exit_codes.INTERRUPTED,
            step=state.global_step,
            totalSteps=state.max_steps,
            metrics=history.final_metrics(
                history.read(metrics_file), session.telemetry.samples_per_step
            ),
            checkpoints=[c.as_dict() for c in session.uploader.uploaded],
            resumes=start.resumes,
        )
    evaluated = any(
        "eval_loss" in e and e.get("step") == state.global_step for e in state.log_history
    )
    # Early stopping put the best weights back: the final metrics must describe them.
    early = session.early_stopping
    restored = early is not None and early.restored_step is not None
    if session.prepared.eval is not None and (not evaluated or restored):
        trainer.evaluate()
    if state.is_world_process_zero:
        session.uploader.flush(state)  # waits out a store outage, within its bound
    records = history.read(metrics_file)
    metrics = history.final_metrics(records, session.telemetry.samples_per_step)
    return _publish(session, metrics, history.resume_steps(records))
