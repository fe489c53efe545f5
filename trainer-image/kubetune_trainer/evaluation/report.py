"""The report next to the adapter: ``evaluation.md``, ``evaluation.png``, ``evaluation.jsonl``.

The Markdown page is what a person opens first (the table of means, the gate, a few
answers that changed); the chart shows the same means; the JSONL holds every prompt with
both answers and their scores, so every number on the page can be checked (and is
computed from exactly those records).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubetune_contract.evaluation.chart import plot_comparison
from kubetune_contract.evaluation.records import CHART_FILE, EXAMPLES_FILE, LABELS, REPORT_FILE
from kubetune_trainer import storage

if TYPE_CHECKING:
    from kubetune_contract.api.spec import FineTuneJobSpec
    from kubetune_trainer.evaluation.compare import Evaluation

log = logging.getLogger(__name__)

#: Changed answers quoted on the page (the JSONL has all of them).
QUOTED = 5


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in prompt)


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" for line in (text or "(empty)").splitlines()) or "> (empty)"


def _settings(spec: FineTuneJobSpec) -> str:
    evaluation = spec.evaluation
    assert evaluation is not None
    generation = evaluation.generation
    decoding = (
        "greedy decoding"
        if float(generation.temperature) == 0
        else f"sampling at temperature {generation.temperature}, top-p {generation.topP}"
    )
    source = evaluation.dataset.uri if evaluation.dataset else "the held-out validation rows"
    return f"Prompts from {source}; {decoding}, at most {generation.maxNewTokens} new tokens."


def markdown(spec: FineTuneJobSpec, result: Evaluation, title: str, tuned_uri: str) -> str:
    """The text of ``evaluation.md``."""
    lines = [
        f"# Evaluation: {title}",
        "",
        f"Base model `{spec.model.uri}` against the tuned result `{tuned_uri}` "
        f"({spec.adapter.type}, method {spec.method}) on {len(result.records)} prompts. "
        f"{_settings(spec)}",
        "",
        f"**{result.headline}**",
        "",
        "| metric | base | tuned | delta |",
        "| --- | ---: | ---: | ---: |",
    ]
    for metric, score in result.comparisons.items():
        label = LABELS.get(metric, metric)
        lines.append(f"| {label} | {score.base:.4f} | {score.tuned:.4f} | {score.delta:+.4f} |")
    if result.gate is not None:
        lines += ["", f"**Gate: {'passed' if result.gate.passed else 'failed'}**", ""]
        lines += [f"- {'met' if c.met else 'NOT met'}: {c.sentence}" for c in result.gate.checks]
    lines += ["", f"![base against tuned]({CHART_FILE})", ""]
    changed = [r for r in result.records if r["base"]["answer"] != r["tuned"]["answer"]]
    lines.append(
        f"## Answers that changed ({len(changed)} of {len(result.records)}"
        + (f", the first {QUOTED})" if len(changed) > QUOTED else ")")
    )
    for record in changed[:QUOTED]:
        lines += [
            "",
            f"### {record['index'] + 1}. {record['source']}",
            "",
            "Prompt:",
            "",
            _quote(_prompt_text(record["prompt"])),
            "",
            "Reference:",
            "",
            _quote(record["reference"]),
            "",
        ]
        for model in ("base", "tuned"):
            scores = ", ".join(f"{m} {v:.2f}" for m, v in record[model]["scores"].items())
            lines += [f"{model.capitalize()} ({scores}):", "", _quote(record[model]["answer"]), ""]
    lines += [
        "",
        f"Every prompt, both answers and their scores: [{EXAMPLES_FILE}]({EXAMPLES_FILE}).",
    ]
    return "\n".join(lines) + "\n"


def write(
    folder: Path, spec: FineTuneJobSpec, result: Evaluation, *, title: str, tuned_uri: str
) -> list[Path]:
    """Write the report files into ``folder``; the chart is skipped (with a warning) when
    matplotlib can't draw, since the numbers are in the other two files."""
    folder.mkdir(parents=True, exist_ok=True)
    examples = folder / EXAMPLES_FILE
    examples.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in result.records),
        encoding="utf-8",
    )
    page = folder / REPORT_FILE
    page.write_text(markdown(spec, result, title, tuned_uri), encoding="utf-8")
    files = [page, examples]
    try:
        files.append(plot_comparison(result.comparisons, folder / CHART_FILE, title))
    except (ValueError, ImportError) as exc:
        log.warning("no evaluation chart: %s", exc)
    return files


def upload(files: list[Path], uri: str) -> list[str]:
    """Copy the report files into the folder ``uri``; return where they are."""
    targets = []
    for file in files:
        target = storage.join(uri, file.name)
        storage.upload_file(file, target)
        targets.append(target)
    return targets
