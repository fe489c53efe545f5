"""``dataset.quality`` in a training run: the rules of :mod:`kubetune_contract.data.quality` applied
to the training rows, with their actions carried out.

The same checks back ``kubetune data check``, so a user who previews a file locally sees
the report the job will act on. ``drop`` removes rows before the validation split (a
duplicate must not leak into the evaluation set), ``warn`` logs and keeps them, ``fail``
stops the run with the invalid-data exit code before any GPU time is spent.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from kubetune_contract.data.quality import QualityReport, check
from kubetune_trainer.errors import InvalidDataError

if TYPE_CHECKING:
    from kubetune_contract.api.dataset import QualitySpec

log = logging.getLogger(__name__)

#: File name of the report saved next to the adapter.
REPORT_FILE = "quality-report.json"


def apply(
    rows: list[dict[str, Any]], spec: QualitySpec
) -> tuple[list[dict[str, Any]], QualityReport]:
    """The rows the rules keep and the report; raises when a ``fail`` rule matched."""
    report = check(rows, spec)
    for result in report.results:
        if result.rows and result.action == "warn":
            log.warning(
                "data quality: %d training rows break rule %s (kept), e.g. %s",
                len(result.rows),
                result.rule,
                result.examples[:1],
            )
    if report.failed:
        broken = "; ".join(
            f"{r.rule}: {len(r.rows)} rows, e.g. row {r.examples[0]['row']}: "
            f"{r.examples[0]['text']!r}"
            for r in report.failed
        )
        raise InvalidDataError(
            f"dataset.quality rules with action fail matched training rows ({broken}); fix "
            "the data or set the rule's action to drop or warn"
        )
    log.info("data quality: %s", report.summary())
    return [rows[i] for i in report.kept], report
