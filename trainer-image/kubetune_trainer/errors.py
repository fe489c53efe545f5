"""Exceptions that carry their exit code and a human message.

Every error the trainer expects to happen in production (a wrong field, a bad data row,
an unreachable bucket) is raised as one of these, so that ``__main__`` can turn it into
the right exit code and a termination message the operator shows in the job's status,
instead of a stack trace that only a developer can read.
"""

from __future__ import annotations

from kubetune_contract import exit_codes


class TrainerError(Exception):
    """Base class: ``reason`` is a CamelCase word for conditions, ``exit_code`` for the Job."""

    exit_code: int = exit_codes.INVALID_INPUT
    reason: str = "InvalidInput"


class InvalidConfigError(TrainerError):
    """The resolved trainer config is inconsistent or asks for something impossible here."""

    reason = "InvalidConfig"


class InvalidDataError(TrainerError):
    """A dataset cannot be read or a row does not fit the declared format."""

    reason = "InvalidData"


class InvalidModelError(TrainerError):
    """The model URI does not hold a loadable model or tokenizer."""

    reason = "InvalidModel"


class InfrastructureError(TrainerError):
    """Storage, network or device trouble that a later retry of the same pod may not meet."""

    exit_code = exit_codes.RETRIABLE
    reason = "InfrastructureError"


class StopRequested(BaseException):
    """SIGTERM or SIGINT outside the training loop: the run stops now (:mod:`.preemption`).

    A ``BaseException``, like ``KeyboardInterrupt``: the ``except Exception`` of retry
    loops and of ``run.execute`` must not take it for a failure.
    """

    exit_code = exit_codes.INTERRUPTED
    reason = "Interrupted"
