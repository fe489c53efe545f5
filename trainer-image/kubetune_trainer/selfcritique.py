"""Constitutional self-critique (``selfCritique``): the model writes its own training data.

For every prompt the model being trained (before any training) drafts an answer, then for
each principle in turn critiques its current answer against that principle and revises
it. The result is two datasets, written as JSONL to ``<output.uri>/self-critique/``:

- ``sft.jsonl``: ``prompt`` -> ``completion`` (the final revision), for method sft;
- ``preference.jsonl``: ``prompt``, ``chosen`` (final revision), ``rejected`` (draft),
  and ``critiques`` (principle, critique and revision of every step), for method dpo.
  Pairs whose revision equals the draft teach nothing and are left out.

Generation runs in batches (:mod:`kubetune_trainer.generation`) with the spec's sampling
settings. A revision that comes back empty keeps the previous answer and does not count
as a revision of that principle. ``stage.json``, written last, lets a restarted attempt
of the job reuse the data instead of sampling again (its checkpoints were trained on
exactly that data).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubetune_contract.api.dataset import DatasetSpec
from kubetune_contract.api.sources import DataSource
from kubetune_trainer import distributed, generation, storage
from kubetune_trainer.data.readers import read_source
from kubetune_trainer.errors import InvalidConfigError, InvalidDataError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from kubetune_contract.api.methods import SelfCritiqueSpec
    from kubetune_contract.api.spec import FineTuneJobSpec
    from kubetune_contract.api.trainer_config import TrainerConfig

log = logging.getLogger(__name__)

FOLDER = "self-critique"
SFT_FILE = "sft.jsonl"
PREFERENCE_FILE = "preference.jsonl"
#: Written last: the stage's outcome and the fingerprint of what it was generated from.
STAGE_FILE = "stage.json"
#: Prompts generated for at once.
BATCH = 8

Prompt = str | list[dict[str, Any]]


@dataclass
class Generated:
    """Where the generated datasets are and what the stage did."""

    sftUri: str
    preferenceUri: str
    prompts: int
    answers: int
    pairs: int
    revisionsPerPrinciple: dict[str, int] = field(default_factory=dict)
    reused: bool = False
    """True when an earlier attempt of the job generated the data (see :func:`_earlier`)."""

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    def result_notes(self) -> tuple[list[str], dict[str, Any]]:
        """For the result of the training that follows the stage (see ``Reporting``)."""
        return [self.summary()], {"selfCritique": self.as_dict()}

    def summary(self) -> str:
        counts = ", ".join(f"{n} for {p[:40]!r}" for p, n in self.revisionsPerPrinciple.items())
        return (
            f"self-critique{' (data reused from an earlier attempt)' if self.reused else ''}: "
            f"{self.prompts} prompts, {self.pairs} preference pairs, "
            f"revisions {counts}; data in {self.sftUri.rsplit('/', 1)[0]}"
        )

    def dataset(self, method: str) -> DatasetSpec:
        """The data the job trains on: revisions for sft, pairs for dpo."""
        if method == "sft":
            return DatasetSpec(train=DataSource(uri=self.sftUri, format="promptCompletion"))
        return DatasetSpec(train=DataSource(uri=self.preferenceUri, format="preference"))


def _prompt(row: dict[str, Any], where: str) -> Prompt:
    """A string ``prompt``, a ``prompt`` message list, or ``messages`` without the answer."""
    value = row.get("prompt")
    if value is None and isinstance(row.get("messages"), list):
        value = list(row["messages"])
        while value and isinstance(value[-1], dict) and value[-1].get("role") == "assistant":
            value.pop()
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        return value
    raise InvalidDataError(
        f"{where}: needs a non-empty 'prompt' (text or messages) or 'messages' column"
    )


def read_prompts(spec: SelfCritiqueSpec) -> list[Prompt]:
    prompts: list[Prompt] = []
    for file in read_source(spec.prompts.uri, split=spec.prompts.split):
        for number, row in enumerate(file.rows, start=1):
            prompts.append(_prompt(row, f"{file.uri}, row {number}"))
            if spec.maxPrompts is not None and len(prompts) >= spec.maxPrompts:
                return prompts
    return prompts


def _text(prompt: Prompt) -> str:
    """The prompt as plain text, for the critique and revision templates."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(str(m.get("content", "")) for m in prompt)


def _fill(template: str, **values: str) -> str:
    """Replace ``{name}`` placeholders only: other braces in a user's template stay."""
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template


class Generator:
    """Batched sampling from ``model`` with the spec's settings, through the chat template
    when the model has one."""

    def __init__(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, spec: SelfCritiqueSpec
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        sampling = spec.sampling
        self.sampling = generation.Sampling(
            max_new_tokens=sampling.maxNewTokens,
            temperature=float(sampling.temperature),
            top_p=float(sampling.topP),
            batch_size=BATCH,
        )

    def _input(self, request: Prompt) -> str:
        messages = [{"role": "user", "content": request}] if isinstance(request, str) else request
        if self.tokenizer.chat_template is None:
            return _text(messages) + "\n"
        return str(
            self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        )

    def __call__(self, requests: list[Prompt]) -> list[str]:
        texts = [self._input(r) for r in requests]
        return generation.generate(self.model, self.tokenizer, texts, self.sampling)


def critique_and_revise(
    spec: SelfCritiqueSpec, prompts: list[Prompt], generate: Generator
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Per prompt: the draft, and for each principle its critique and revision."""
    drafts = generate(prompts)
    current = list(drafts)
    steps: list[list[dict[str, str]]] = [[] for _ in prompts]
    counts = dict.fromkeys(spec.principles, 0)
    for principle in spec.principles:
        critiques = generate(
            [
                _fill(spec.critiqueTemplate, principle=principle, prompt=_text(p), response=r)
                for p, r in zip(prompts, current, strict=True)
            ]
        )
        revisions = generate(
            [
                _fill(
                    spec.revisionTemplate,
                    principle=principle,
                    prompt=_text(p),
                    response=r,
                    critique=c,
                )
                for p, r, c in zip(prompts, current, critiques, strict=True)
            ]
        )
        for i, (critique, revision) in enumerate(zip(critiques, revisions, strict=True)):
            revised = bool(revision) and revision != current[i]
            steps[i].append(
                {
                    "principle": principle,
                    "critique": critique,
                    "revision": revision if revised else current[i],
                }
            )
            if revised:
                counts[principle] += 1
                current[i] = revision
    records = [
        {"prompt": p, "draft": d, "final": f, "critiques": s}
        for p, d, f, s in zip(prompts, drafts, current, steps, strict=True)
    ]
    return records, counts


@dataclass(frozen=True)
class _Shape:
    """One row shape for every generated row (a dataset can't mix text and messages):
    messages when the model has a chat template (the answers were generated through it),
    plain text otherwise."""

    conversational: bool

    def prompt(self, prompt: Prompt) -> Prompt:
        if not self.conversational:
            return _text(prompt)
        return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt

    def answer(self, text: str) -> Prompt:
        return [{"role": "assistant", "content": text}] if self.conversational else text


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def _fingerprint(spec: FineTuneJobSpec, prompts: list[Prompt]) -> str:
    """What the generated data depends on: stage settings, model, seed and the prompts."""
    assert spec.selfCritique is not None
    inputs = {
        "stage": spec.selfCritique.model_dump(mode="json", exclude={"generateOnly"}),
        "model": [spec.model.uri, spec.model.revision],
        "seed": spec.training.seed,
        "prompts": prompts,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _earlier(folder: str, fingerprint: str) -> Generated | None:
    """The data an earlier attempt of this job generated with the same inputs.

    A restarted pod (preemption, node loss) must resume training on the data its
    checkpoints were trained on; sampling again could give different rows.
    """
    uri = storage.join(folder, STAGE_FILE)
    if not storage.exists(uri):
        return None
    document = json.loads(storage.read_bytes(uri))
    if document.pop("fingerprint", None) != fingerprint:
        return None
    log.info("self-critique: reusing the data generated earlier in %s", folder)
    return Generated(**{**document, "reused": True})


def _generate(
    spec: FineTuneJobSpec,
    prompts: list[Prompt],
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    folder: str,
    fingerprint: str,
) -> Generated:
    stage = spec.selfCritique
    assert stage is not None
    log.info("self-critique: %d prompts x %d principles", len(prompts), len(stage.principles))
    records, counts = critique_and_revise(stage, prompts, Generator(model, tokenizer, stage))
    shape = _Shape(conversational=tokenizer.chat_template is not None)
    sft = [
        {"prompt": shape.prompt(r["prompt"]), "completion": shape.answer(r["final"])}
        for r in records
        if r["final"]
    ]
    pairs = [
        {
            "prompt": shape.prompt(r["prompt"]),
            "chosen": shape.answer(r["final"]),
            "rejected": shape.answer(r["draft"]),
            "critiques": r["critiques"],
        }
        for r in records
        if r["final"] and r["final"] != r["draft"]
    ]
    result = Generated(
        storage.join(folder, SFT_FILE),
        storage.join(folder, PREFERENCE_FILE),
        len(prompts),
        len(sft),
        len(pairs),
        counts,
    )
    storage.write_bytes(result.sftUri, _jsonl(sft))
    storage.write_bytes(result.preferenceUri, _jsonl(pairs))
    # Last: its presence says both files are whole.
    document = {**result.as_dict(), "fingerprint": fingerprint}
    document.pop("reused")
    storage.write_bytes(storage.join(folder, STAGE_FILE), json.dumps(document).encode())
    return result


def generate(
    spec: FineTuneJobSpec, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
) -> Generated:
    """Run the stage (or reuse an earlier attempt's data) and return where the data is."""
    stage = spec.selfCritique
    if stage is None:
        raise InvalidConfigError("no selfCritique block in the spec")
    if distributed.world_size() > 1:
        raise InvalidConfigError(
            "selfCritique generates on one process; run it with resources.gpus 1 and "
            "resources.nodes 1 (generateOnly), then train on its data with a larger job"
        )
    prompts = read_prompts(stage)
    if not prompts:
        raise InvalidDataError(f"{stage.prompts.uri}: no prompts")
    folder = storage.join(spec.output.uri, FOLDER)
    fingerprint = _fingerprint(spec, prompts)
    result = _earlier(folder, fingerprint) or _generate(
        spec, prompts, model, tokenizer, folder, fingerprint
    )
    log.info("%s", result.summary())
    trains_on, what = (
        (result.answers, "answers") if spec.method == "sft" else (result.pairs, "changed revisions")
    )
    if not trains_on and not stage.generateOnly:
        raise InvalidDataError(
            f"self-critique produced no {what} to train on (data in {folder}); raise "
            "sampling.maxNewTokens or check the templates"
        )
    return result


def publish_generated(config: TrainerConfig, generated: Generated) -> str:
    """The manifest of a ``generateOnly`` run (no adapter: the data is the result)."""
    from kubetune_trainer.artifacts import MANIFEST, library_versions

    document = {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "FineTuneResult",
        "job": config.job.model_dump(mode="json"),
        "specDigest": config.specDigest,
        "method": config.spec.method,
        "baseModel": {"uri": config.spec.model.uri, "revision": config.spec.model.revision},
        "versions": library_versions(),
        "selfCritique": generated.as_dict(),
        "files": [generated.sftUri, generated.preferenceUri],
        "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    uri = storage.join(config.spec.output.uri, MANIFEST)
    storage.write_bytes(uri, json.dumps(document, indent=2, sort_keys=True).encode())
    return uri
