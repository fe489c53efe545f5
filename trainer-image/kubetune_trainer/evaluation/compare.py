"""Answer every prompt with the base model and the tuned model, score both, compare.

Both models get the same prompts, formatted the same way, with the same generation
settings (and, when sampling, the same seed), one model in memory at a time; the
reward-model judge, when asked for, loads after both have answered. Everything reported
comes from the per-example records built here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubetune_contract.evaluation.records import (
    MODELS,
    Comparison,
    GateOutcome,
    aggregate,
    check_gate,
    headline,
    headline_metric,
)
from kubetune_trainer import generation
from kubetune_trainer.evaluation import models, scoring
from kubetune_trainer.evaluation.examples import Example, model_input

if TYPE_CHECKING:
    from kubetune_contract.api.evaluation import EvaluationSpec
    from kubetune_contract.api.resolved import ResolvedSpec
    from kubetune_contract.api.spec import FineTuneJobSpec
    from kubetune_trainer.metrics import TrainerMetrics

log = logging.getLogger(__name__)

#: Called after every batch with (model, answers done, answers planned); may raise to stop.
Progress = Callable[[str, int, int], None]


@dataclass
class Evaluation:
    """The outcome: per-example records, the means, the gate and the headline."""

    records: list[dict[str, Any]]
    comparisons: dict[str, Comparison]
    headline: str
    gate: GateOutcome | None
    seconds: float

    def sentence(self) -> str:
        """For the termination message: ``evaluation of 48 prompts: exact match ...``."""
        verdict = ""
        if self.gate is not None:
            verdict = (
                "; gate passed"
                if self.gate.passed
                else "; gate failed: " + "; ".join(self.gate.failures)
            )
        return f"evaluation of {len(self.records)} prompts: {self.headline}{verdict}"

    def scores(self) -> dict[str, dict[str, float]]:
        return {m: {"base": c.base, "tuned": c.tuned} for m, c in self.comparisons.items()}


def sampling_of(spec: EvaluationSpec) -> generation.Sampling:
    settings = spec.generation
    return generation.Sampling(
        max_new_tokens=settings.maxNewTokens,
        temperature=float(settings.temperature),
        top_p=float(settings.topP),
        batch_size=settings.batchSize,
    )


def _answers(
    loaded: models.InferenceModel,
    examples: list[Example],
    sampling: generation.Sampling,
    seed: int,
    report: Callable[[int], None],
) -> list[str]:
    from transformers import set_seed

    texts = [model_input(e.prompt, loaded.tokenizer) for e in examples]
    set_seed(seed)  # the same random stream for both models when sampling
    return generation.generate(loaded.model, loaded.tokenizer, texts, sampling, after_batch=report)


def _scores(
    spec: FineTuneJobSpec, examples: list[Example], answers: dict[str, list[str]]
) -> dict[str, dict[str, list[float]]]:
    """model -> metric -> per-example scores, in the order of ``evaluation.metrics``."""
    evaluation = spec.evaluation
    assert evaluation is not None
    references = [e.reference for e in examples]
    found: dict[str, dict[str, list[float]]] = {model: {} for model in MODELS}
    for metric, function in scoring.text_metrics(evaluation).items():
        for model in MODELS:
            found[model][metric] = function(answers[model], references)
    if spec.reward is not None and spec.reward.model is not None:
        wanted = [m for m in evaluation.metrics if m in ("rewardScore", "winRate")]
        if wanted:
            judge = scoring.RewardJudge(
                spec.reward.model, spec.training, evaluation.generation.batchSize
            )
            prompts = [e.prompt for e in examples]
            rewards = {model: judge.scores(prompts, answers[model]) for model in MODELS}
            if "rewardScore" in wanted:
                for model in MODELS:
                    found[model]["rewardScore"] = rewards[model]
            if "winRate" in wanted:
                tuned = scoring.win_rates(rewards["tuned"], rewards["base"])
                found["tuned"]["winRate"] = tuned
                found["base"]["winRate"] = [1.0 - t for t in tuned]
    return {model: {m: found[model][m] for m in evaluation.metrics} for model in MODELS}


def records_of(
    examples: list[Example],
    answers: dict[str, list[str]],
    scores: dict[str, dict[str, list[float]]],
) -> list[dict[str, Any]]:
    """The lines of ``evaluation.jsonl`` (see :mod:`kubetune_contract.evaluation.records`)."""
    return [
        {
            "index": index,
            "source": example.source,
            "prompt": example.prompt,
            "reference": example.reference,
            **{
                model: {
                    "answer": answers[model][index],
                    "scores": {m: values[index] for m, values in scores[model].items()},
                }
                for model in MODELS
            },
        }
        for index, example in enumerate(examples)
    ]


def evaluate(
    spec: ResolvedSpec,
    examples: list[Example],
    model_dir: Path,
    result_dir: Path,
    progress: Progress | None = None,
) -> Evaluation:
    """Compare the base model in ``model_dir`` with the result in ``result_dir``."""
    evaluation = spec.evaluation
    assert evaluation is not None
    started = time.monotonic()
    sampling = sampling_of(evaluation)
    loaders = {
        "base": lambda: models.load_base(model_dir, spec),
        "tuned": lambda: models.load_tuned(model_dir, result_dir, spec),
    }
    answers: dict[str, list[str]] = {}
    for model in MODELS:
        log.info("evaluation: %s model answering %d prompts", model, len(examples))
        loaded: models.InferenceModel | None = loaders[model]()
        assert loaded is not None

        def report(done: int, model: str = model) -> None:
            if progress is not None:
                progress(model, done, len(examples))

        answers[model] = _answers(loaded, examples, sampling, spec.training.seed, report)
        loaded = None
        models.free_memory()
    scores = _scores(spec, examples, answers)
    records = records_of(examples, answers, scores)
    comparisons = aggregate(records, evaluation.metrics)
    gate = check_gate(evaluation.gate, comparisons) if evaluation.gate else None
    result = Evaluation(
        records,
        comparisons,
        headline(comparisons, headline_metric(evaluation.metrics, evaluation.gate)),
        gate,
        time.monotonic() - started,
    )
    log.info("%s (%.1f s)", result.sentence(), result.seconds)
    return result


def progress_gauges(metrics: TrainerMetrics) -> Progress:
    """Progress that shows in ``kubetune_trainer_evaluation_answers{model=...}``."""

    def update(model: str, done: int, planned: int) -> None:
        metrics.set_labelled("evaluation_answers", {"model": model}, done)

    return update


def publish_gauges(metrics: TrainerMetrics, spec: EvaluationSpec, result: Evaluation) -> None:
    """``kubetune_trainer_evaluation_score{metric, model}`` and the gate verdict per metric."""
    for metric, comparison in result.comparisons.items():
        for model in MODELS:
            metrics.set_labelled(
                "evaluation_score", {"metric": metric, "model": model}, getattr(comparison, model)
            )
    if result.gate is not None:
        for threshold in spec.gate:
            met = result.gate.met(threshold.metric)
            metrics.set_labelled("evaluation_gate_passed", {"metric": threshold.metric}, float(met))
