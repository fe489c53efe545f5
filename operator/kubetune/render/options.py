"""Operator-wide settings that shape every rendered child (``kubetune operator`` flags)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kubetune import __version__
from kubetune_contract.pod import METRICS_PORT

DEFAULT_TRAINER_IMAGE = f"ghcr.io/kubetune/trainer:{__version__}"
#: Long enough for the trainer to write a final checkpoint of a large model on SIGTERM.
DEFAULT_GRACE_PERIOD_SECONDS = 600


@dataclass(frozen=True)
class RenderOptions:
    """Defaults a FineTuneJob can override (image, grace period) and platform settings.

    ``pod_annotations`` go on every training pod: platform teams use them for
    autoscaler and disruption hints (``karpenter.sh/do-not-disrupt``), service mesh
    opt-outs, or, in kubetune's own cluster tests, KWOK's pod lifecycle keys.
    """

    trainer_image: str = DEFAULT_TRAINER_IMAGE
    grace_period_seconds: int = DEFAULT_GRACE_PERIOD_SECONDS
    metrics_port: int = METRICS_PORT
    pod_annotations: Mapping[str, str] = field(default_factory=dict)
