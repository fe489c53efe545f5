"""The run summary the operator reads from the pod's termination message.

Written as JSON to ``$KUBETUNE_TERMINATION_PATH`` (default ``/dev/termination-log``) on
every exit, success or failure. Kubernetes keeps at most 4096 bytes, so the writer
trims (long message first, then old checkpoints) to stay below that. Fields::

    {
      "outcome": "Succeeded" | "Failed" | "Interrupted",
      "reason": "Succeeded" | "InvalidConfig" | "InvalidData" | "InvalidModel"
                | "InfrastructureError" | "Interrupted" | "InternalError",
      "message": "human readable, names the file/row/field at fault",
      "exitCode": 0,
      "step": 120, "totalSteps": 200,
      "metrics": {"loss": 1.23, "evalLoss": 1.31, "epoch": 1.0, ...},
      "result": {"adapterUri": "...", "manifestUri": ".../manifest.json",
                 "mergedUri": ".../merged" | null},
      "checkpoints": [{"step": 100, "uri": ".../checkpoints/step-100",
                       "evalLoss": 1.4 | null}],
      "resumes": 2,
      "evaluation": {"prompts": 48, "metrics": {"exactMatch": {"base": 0.21, "tuned": 0.64}},
                     "headline": "exact match 0.21 → 0.64", "reportUri": ".../evaluation.md",
                     "gate": {"passed": false, "failures": ["..."]}}
                    | {"error": "why the evaluation failed"} | {}
    }

``checkpoints`` lists the complete checkpoints in the store, oldest first; ``resumes`` is
how many times the job resumed from one (counted across pods, in the checkpoints' markers);
``evaluation`` is what ``spec.evaluation`` found after training (empty without it; ``gate``
only with thresholds).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kubetune_contract.pod import TERMINATION_PATH, TERMINATION_PATH_ENV

log = logging.getLogger(__name__)

LIMIT_BYTES = 4096
MESSAGE_LIMIT = 1500


@dataclass
class Summary:
    outcome: str
    reason: str
    message: str
    exitCode: int
    step: int = 0
    totalSteps: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    result: dict[str, str | None] = field(default_factory=dict)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    resumes: int = 0
    evaluation: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """Compact JSON below :data:`LIMIT_BYTES`."""
        data = asdict(self)
        if len(data["message"]) > MESSAGE_LIMIT:
            data["message"] = data["message"][: MESSAGE_LIMIT - 3] + "..."
        text = json.dumps(data, separators=(",", ":"))
        while len(text.encode()) >= LIMIT_BYTES and data["checkpoints"]:
            data["checkpoints"] = data["checkpoints"][1:]
            text = json.dumps(data, separators=(",", ":"))
        while len(text.encode()) >= LIMIT_BYTES and data["metrics"]:
            data["metrics"].pop(sorted(data["metrics"])[-1])
            text = json.dumps(data, separators=(",", ":"))
        while len(text.encode()) >= LIMIT_BYTES and len(data["message"]) > 100:
            data["message"] = data["message"][: len(data["message"]) // 2] + "..."
            text = json.dumps(data, separators=(",", ":"))
        return text


def message_path() -> Path:
    """Where the summary goes: ``$KUBETUNE_TERMINATION_PATH``, else Kubernetes' default."""
    return Path(os.environ.get(TERMINATION_PATH_ENV, TERMINATION_PATH))


def write(summary: Summary) -> None:
    """Write the summary where Kubernetes picks it up; a missing path is not an error."""
    path = message_path()
    try:
        path.write_text(summary.to_json(), encoding="utf-8")
    except OSError as exc:
        log.warning("cannot write the termination message to %s: %s", path, exc)
