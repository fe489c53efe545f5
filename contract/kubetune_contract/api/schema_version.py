"""The schema version stamped into the generated CRDs, and what an operator needs.

An operator built against these models writes status fields and relies on spec defaults
and validations that an older installed CRD does not have: the API server would prune
the fields it doesn't know and apply none of the new defaults, and the operator would
fail in ways that name no cause. So the CRD carries :data:`SCHEMA_VERSION` in the
annotation :data:`SCHEMA_VERSION_ANNOTATION`, and the operator refuses to act on
FineTuneJobs while the installed CRD is older than it (``Accepted=False`` with reason
:data:`CRD_OUTDATED`). A CRD without the annotation predates the stamp: version 0.

Bump rule: increase :data:`SCHEMA_VERSION` by one in the change that adds (or changes)
a spec or status field, a default or a validation the operator depends on, i.e. when
this operator would misbehave on the CRD of the previous version. Changes of
descriptions, printer columns or rules that only refuse more at admission need no bump.
"""

from __future__ import annotations

#: The FineTuneJob schema version of these models.
SCHEMA_VERSION = 1
#: The CRD annotation that carries it.
SCHEMA_VERSION_ANNOTATION = "kubetune.io/schema-version"
#: The ``Accepted=False`` reason of a job the operator leaves alone for an outdated CRD.
CRD_OUTDATED = "CRDOutdated"


def installed_schema_version(crd: dict[str, object]) -> int:
    """The schema version a CRD manifest carries (0: none, or not a number)."""
    metadata = crd.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    value = annotations.get(SCHEMA_VERSION_ANNOTATION) if isinstance(annotations, dict) else None
    try:
        return int(str(value))
    except ValueError:
        return 0
