"""How training progress reads at a glance: ``kubectl get ftj``'s columns and the ETA of
``kubetune get``/``watch``.

The numbers in ``status.progress`` keep full precision for tools; a person scanning a
list of jobs wants ``3.03``, ``100%`` and ``12m``, not ``3.034089279174805``, ``100`` and
``720``. Printer columns can only point at a JSON path, so the operator writes these
strings into ``status.progress.display`` (:class:`kubetune_contract.api.status.Progress`).
"""

from __future__ import annotations


def loss_text(loss: float) -> str:
    """Three significant digits: ``3.03``, ``0.0123``, ``12.3``."""
    return f"{loss:.3g}"


def percent_text(percent: int) -> str:
    """``100%``."""
    return f"{percent}%"


def eta_text(seconds: int) -> str:
    """``45s`` under a minute, whole minutes under an hour (``12m``), then hours and
    minutes (``1h05m``): an estimate, so seconds stop mattering once it is minutes."""
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
