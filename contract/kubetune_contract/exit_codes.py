"""Exit codes of the kubetune trainer, the one place that defines them.

The operator's renderer imports this module to build the Job's ``podFailurePolicy``, so
it must stay importable without torch or any trainer dependency.

=========  ======================  ==========================================================
code       name                    meaning and what the operator does with it
=========  ======================  ==========================================================
0          ``SUCCESS``             training finished, results uploaded, manifest written last
1          ``INTERNAL_ERROR``      an unexpected error (a bug, out of memory); an ordinary
                                   failure that counts against ``backoffLimit``
3          ``INVALID_INPUT``       the config, model or data is wrong; a retry cannot help, so
                                   the Job fails at once (``FailJob``)
4          ``RETRIABLE``           an infrastructure error (storage, network, a lost device);
                                   the same pod may succeed later, so it is retried
5          ``INTERRUPTED``         SIGTERM arrived (preemption, eviction, node drain) and a
                                   checkpoint was saved first; retried without counting
                                   against ``backoffLimit`` (``Ignore``)
=========  ======================  ==========================================================

Code 1 is also what Python exits with on an uncaught exception, so both mean the same
thing; 2 is left to argument errors and 128+N to signals.
"""

from __future__ import annotations

SUCCESS = 0
INTERNAL_ERROR = 1
INVALID_INPUT = 3
RETRIABLE = 4
INTERRUPTED = 5

#: Codes after which a retry cannot succeed: the operator fails the Job at once.
NON_RETRIABLE: frozenset[int] = frozenset({INVALID_INPUT})
#: Codes that mean "the pod was disrupted, not the job": retry without counting a failure.
DISRUPTION: frozenset[int] = frozenset({INTERRUPTED})

NAMES: dict[int, str] = {
    SUCCESS: "Succeeded",
    INTERNAL_ERROR: "InternalError",
    INVALID_INPUT: "InvalidInput",
    RETRIABLE: "InfrastructureError",
    INTERRUPTED: "Interrupted",
}
