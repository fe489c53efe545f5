"""A stop signal that arrives while the trainer starts is held, not lost.

In a pod the trainer is process 1 of its PID namespace, and the kernel drops every signal
sent to process 1 that it has no handler for. Python has no SIGTERM handler of its own, and
the run's (:mod:`kubetune_trainer.preemption`) is installed only once the run starts, after
the config is read and torch and transformers are imported: seconds. A suspend, an eviction
or a drain in that window was ignored, and the trainer trained on until the kubelet
SIGKILLed it at the end of the grace period (the chaos run found it: a pod evicted a second
after it started trained to its last step and Succeeded, 18 s into its 60 s of grace).

So the entry point calls :func:`hold` before its own imports. A held signal is acted on when
the run's handler takes over (:meth:`PreemptionCallback.handling_signals
<kubetune_trainer.preemption.PreemptionCallback.handling_signals>`: the run stops before it
trains, with exit code 5, and is resumed). :func:`release` puts the handlers from before
back and delivers a signal held meanwhile, for a local command and at the end.

This module imports nothing heavy: it runs before everything else.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

#: The signals that stop a run cleanly.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

_held: list[signal.Signals] = []
_before: dict[signal.Signals, Any] = {}


def _hold(signum: int, frame: FrameType | None) -> None:
    _held.append(signal.Signals(signum))


def hold() -> None:
    """Hold :data:`STOP_SIGNALS` from now on (until another handler takes over, or
    :func:`release`)."""
    for kind in STOP_SIGNALS:
        previous = signal.signal(kind, _hold)
        _before.setdefault(kind, previous)


def take() -> signal.Signals | None:
    """The first signal held (``None``: none); the rest are the same request."""
    first = _held[0] if _held else None
    _held.clear()
    return first


def release() -> None:
    """The handlers from before :func:`hold` again; a signal held meanwhile is delivered
    now, as if it had just arrived. Nothing happens without a :func:`hold` first."""
    for kind, handler in _before.items():
        signal.signal(kind, handler)
    _before.clear()
    held = take()
    if held is not None:
        signal.raise_signal(held)
