"""The FineTuneJob API (``kubetune.io/v1alpha1``): the single source of truth of the schema.

Models are defined in this package; the CRD is generated from them
(:mod:`kubetune_contract.api.crd`) and the cross-field rules are written once in Python and
CEL (:mod:`kubetune_contract.api.rules`).
"""

from kubetune_contract.api.errors import FieldError, InvalidManifest
from kubetune_contract.api.job import API_VERSION, GROUP, KIND, PLURAL, VERSION, FineTuneJob
from kubetune_contract.api.loading import parse_finetunejob
from kubetune_contract.api.spec import FineTuneJobSpec
from kubetune_contract.api.status import FineTuneJobStatus
from kubetune_contract.api.trainer_config import TrainerConfig

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "FieldError",
    "FineTuneJob",
    "FineTuneJobSpec",
    "FineTuneJobStatus",
    "InvalidManifest",
    "TrainerConfig",
    "parse_finetunejob",
]
