"""The platform policy as the operator knows it: the FineTuneJobPolicy named by ``--policy``.

The admission policy refuses what the FineTuneJobPolicy forbids before it is stored; the
operator checks the same rules (:func:`kubetune_contract.api.policy_rules.violations`) before it
creates children, for clusters where the admission policy is off or was added later.
Without ``--policy`` nothing is checked (the operator predates the policy); with it, a
missing policy object refuses every new job, as the admission binding does
(``parameterNotFoundAction: Deny``), rather than silently allowing everything.

The object is read from a watch (the handlers in :mod:`kubetune.controller.handlers`),
never from a Secret or a file, so an edit takes effect without restarting the operator.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from kubetune_contract.api import FineTuneJob
from kubetune_contract.api.errors import field_errors
from kubetune_contract.api.policy import FineTuneJobPolicy
from kubetune_contract.api.policy_rules import violations


@dataclass
class PolicyWatch:
    """The newest version of the policy object ``name`` (``None``: no policy configured)."""

    name: str | None = None
    _current: FineTuneJobPolicy | None = None
    _invalid: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, body: Mapping[str, Any]) -> None:
        """Record a watched version of the policy object."""
        try:
            policy, invalid = FineTuneJobPolicy.model_validate(dict(body)), ""
        except ValidationError as error:  # the CRD's schema makes this unlikely
            policy, invalid = None, "; ".join(str(e) for e in field_errors(error))
        with self._lock:
            self._current, self._invalid = policy, invalid

    def forget(self) -> None:
        """The policy object was deleted."""
        with self._lock:
            self._current, self._invalid = None, ""

    def problems(self, job: FineTuneJob) -> tuple[str, ...]:
        """Why the policy refuses ``job``; empty when it is allowed (or no policy is set)."""
        if self.name is None:
            return ()
        with self._lock:
            policy, invalid = self._current, self._invalid
        if invalid:
            return (f"FineTuneJobPolicy {self.name} is invalid ({invalid}): no job is accepted",)
        if policy is None:
            return (
                f"FineTuneJobPolicy {self.name} does not exist: no job is accepted until the "
                "platform creates it (the chart does, with policy.enabled)",
            )
        return tuple(str(problem) for problem in violations(job, policy))
