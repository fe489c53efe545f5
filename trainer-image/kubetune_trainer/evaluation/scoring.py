"""Per-example scores of answers against references, and the reward-model judge.

Every metric gives one number per example, in [0, 1] except the reward model's score;
the job reports their means (:func:`kubetune_contract.evaluation.records.aggregate`).

- ``exactMatch`` and ``regexMatch`` are the grpo/rloo reward functions of
  :mod:`kubetune_trainer.rewards` (stripped equality; ``re.search`` with DOTALL), so a job
  rewarded with one is evaluated with the same definition.
- ``normalizedExactMatch``, ``contains`` and ``tokenF1`` compare normalized text: lower
  case, punctuation and the articles a/an/the dropped, whitespace collapsed (the
  normalization of the SQuAD evaluation script, which most QA numbers use).
- ``rougeL`` is torchmetrics' ROUGE-L F-measure (a port of Google's rouge-score, which
  ships only a source archive and so can't be installed wheels-only like the image).
- ``rewardScore`` is the reward model's score of prompt + answer, formatted as the
  grpo/rloo trainers format it for a reward model; ``winRate`` is 1 where the tuned
  answer scores higher than the base answer on the same prompt, 0.5 on a tie, 0 below
  (and the base model's win rate is 1 minus that).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from kubetune_trainer import rewards
from kubetune_trainer.evaluation.examples import Prompt

if TYPE_CHECKING:
    from kubetune_contract.api.evaluation import EvaluationSpec
    from kubetune_contract.api.sources import ModelSource
    from kubetune_contract.api.training import TrainingSpec

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)

TextMetric = Callable[[Sequence[str], Sequence[str]], list[float]]


def normalize(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION))
    return " ".join(text.split())


def normalized_exact_match(answers: Sequence[str], references: Sequence[str]) -> list[float]:
    return [float(normalize(a) == normalize(r)) for a, r in zip(answers, references, strict=True)]


def contains(answers: Sequence[str], references: Sequence[str]) -> list[float]:
    """1 when the normalized reference occurs in the normalized answer as whole words."""
    return [
        float(f" {normalize(r)} " in f" {normalize(a)} ")
        for a, r in zip(answers, references, strict=True)
    ]


def _f1(answer: str, reference: str) -> float:
    predicted, expected = normalize(answer).split(), normalize(reference).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def token_f1(answers: Sequence[str], references: Sequence[str]) -> list[float]:
    return [_f1(a, r) for a, r in zip(answers, references, strict=True)]


def rouge_l(answers: Sequence[str], references: Sequence[str]) -> list[float]:
    from torchmetrics.functional.text.rouge import rouge_score

    return [
        float(rouge_score(a, r, rouge_keys="rougeL")["rougeL_fmeasure"])
        for a, r in zip(answers, references, strict=True)
    ]


def text_metrics(spec: EvaluationSpec) -> dict[str, TextMetric]:
    """The metrics of ``spec`` that compare an answer with its reference."""
    exact = rewards.exact_match("reference")
    available: dict[str, TextMetric] = {
        "exactMatch": lambda a, r: exact(completions=list(a), reference=list(r)),
        "normalizedExactMatch": normalized_exact_match,
        "contains": contains,
        "tokenF1": token_f1,
        "rougeL": rouge_l,
    }
    if spec.pattern is not None:
        regex = rewards.format_regex(spec.pattern)
        available["regexMatch"] = lambda a, _: regex(completions=list(a))
    return {m: available[m] for m in spec.metrics if m in available}


def win_rates(tuned: Sequence[float], base: Sequence[float]) -> list[float]:
    """Per prompt: 1 when the tuned answer's reward is higher, 0.5 on a tie, else 0."""
    return [1.0 if t > b else 0.5 if t == b else 0.0 for t, b in zip(tuned, base, strict=True)]


class RewardJudge:
    """The job's reward model, scoring (prompt, answer) pairs in batches."""

    def __init__(self, source: ModelSource, training: TrainingSpec, batch_size: int) -> None:
        self.model, self.tokenizer = rewards.load_reward_model(source, training)
        self.batch_size = batch_size

    def _text(self, prompt: Prompt, answer: str) -> str:
        if isinstance(prompt, str):
            return prompt + answer
        messages = [*prompt, {"role": "assistant", "content": answer}]
        return str(self.tokenizer.apply_chat_template(messages, tokenize=False))

    def scores(self, prompts: Sequence[Prompt], answers: Sequence[str]) -> list[float]:
        import torch

        texts = [self._text(p, a) for p, a in zip(prompts, answers, strict=True)]
        out: list[float] = []
        self.model.eval()
        for start in range(0, len(texts), self.batch_size):
            batch: Any = self.tokenizer(
                texts[start : start + self.batch_size],
                return_tensors="pt",
                padding=True,
                padding_side="right",
                add_special_tokens=False,
            ).to(self.model.device)
            with torch.no_grad():
                logits = self.model(**batch).logits[:, 0]
            out.extend(float(x) for x in logits.float().cpu())
        return out
