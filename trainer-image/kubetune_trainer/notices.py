"""Library notices that every run prints and no user can act on, silenced one by one.

Each is matched by its logger or warning category and its own wording, so that any other
message of the same library still shows:

* bitsandbytes (0.50, CPUs with AVX-512 BF16) logs at import that it could not load an
  optional CPU kernel from the Hugging Face hub (the ``kernels`` package): the 4-bit
  path works without it, the trainer image does not ship ``kernels`` (it downloads code
  at run time), and a pod cannot ``pip install`` anything.
* transformers deprecates ``PreTrainedModel.is_gradient_checkpointing``, and PEFT's
  ``PeftModel`` (and TRL) still read it: the FutureWarning comes from inside the
  libraries, once per run, and goes away when they update.

:func:`install` runs when the package is imported (``kubetune_trainer/__init__.py``):
bitsandbytes is imported by transformers as soon as any trainer module imports it, so
the container's entry point, ``kubetune run`` and the tests all get the filters before
the first notice whichever module they start from.
"""

from __future__ import annotations

import logging
import warnings

#: (logger name, start of the message) of the log records dropped.
QUIET_RECORDS = (
    (
        "bitsandbytes.backends.cpu.ops",
        "Failed to load CPU gemm_4bit_forward from kernels-community",
    ),
)
#: (category, message regex, module regex) of the warnings ignored.
QUIET_WARNINGS: tuple[tuple[type[Warning], str, str], ...] = (
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated", r"transformers\.modeling_utils"),
)


class _DropRecord(logging.Filter):
    """Drops the records of one logger whose message starts with ``prefix``."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def install() -> None:
    """Add the filters (idempotent: a filter already in place is not added twice)."""
    for name, prefix in QUIET_RECORDS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropRecord) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(_DropRecord(prefix))
    for category, message, module in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
