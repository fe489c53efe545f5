"""``python -m kubetune_trainer.launch [torchrun options]``: torchrun with the trainer's exit code.

torchrun exits with 1 whenever a worker fails, and also when it is itself stopped by
SIGTERM, whatever the workers exited with. The Job's ``podFailurePolicy`` keys on the
trainer's exit codes (3: fail at once, 4: retry, 5: preempted, retry without counting;
:mod:`kubetune_contract.exit_codes`), so under bare torchrun a preempted multi-GPU pod
counts as a failure and a bad config is retried. This launcher runs torchrun (which
still reads the operator's ``PET_*`` environment) as a child, passes SIGTERM and SIGINT
on to it, and exits with the code of the termination summary the local rank 0 wrote,
or with torchrun's own code when there is none (a crash before any summary).

    python -m kubetune_trainer.launch --standalone      # one node, $PET_NPROC_PER_NODE GPUs
    python -m kubetune_trainer.launch                   # multi-node: all from PET_*
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from kubetune_contract import termination


def summary_exit_code(path: Path) -> int | None:
    """The ``exitCode`` of the summary at ``path``; ``None`` if there is no readable one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    code = data.get("exitCode") if isinstance(data, dict) else None
    return code if isinstance(code, int) else None


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    path = termination.message_path()
    with contextlib.suppress(OSError):  # no summary of an earlier run is read back
        path.write_text("", encoding="utf-8")
    child = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", *args, "--module", "kubetune_trainer"]
    )

    def forward(signum: int, frame: FrameType | None) -> None:
        child.send_signal(signum)

    for kind in (signal.SIGTERM, signal.SIGINT):
        signal.signal(kind, forward)
    code = child.wait()
    if code == 0:
        return 0
    reported = summary_exit_code(path)
    return reported if reported is not None else code


if __name__ == "__main__":
    sys.exit(main())
