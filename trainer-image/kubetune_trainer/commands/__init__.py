"""``kubetune-trainer COMMAND``: the trainer's tools for a workstation, beside the pod run.

The ``kubetune`` command line (the operator's distribution) may not import the trainer, so
``kubetune run``, ``plot``, ``data`` and ``eval`` start ``python -m kubetune_trainer
COMMAND ...`` as a child process; these modules are what that child runs. Each exposes
``register(subparsers)``, adding its parser with ``handler`` set to a function from the
parsed arguments to an exit code. Their top-level imports stay light (no torch, no
transformers): every invocation builds the whole parser, and ``plot`` should not wait for
a deep-learning stack it never uses.
"""

from __future__ import annotations

from kubetune_trainer.commands import data, evaluate, local, plot

SUBCOMMANDS = (local, evaluate, plot, data)
