"""Load the resolved trainer config and validate it again with the API models.

The operator validated the spec already, but the trainer may be a different version than
the operator that rendered its ConfigMap; validating again turns a mismatch into a clear
``InvalidConfig`` exit instead of an ``AttributeError`` halfway through a GPU hour.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from kubetune_contract.api.errors import field_errors
from kubetune_contract.api.trainer_config import TrainerConfig
from kubetune_contract.pod import CONFIG_ENV
from kubetune_trainer.errors import InvalidConfigError


def config_path(cli_value: str | None) -> Path:
    """``--config`` wins over ``$KUBETUNE_CONFIG``; one of them is required."""
    value = cli_value or os.environ.get(CONFIG_ENV)
    if not value:
        raise InvalidConfigError(f"no trainer config: pass --config PATH or set {CONFIG_ENV}")
    return Path(value)


def load(path: Path) -> TrainerConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidConfigError(f"cannot read the trainer config {path}: {exc}") from exc
    try:
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidConfigError(f"{path} is not valid JSON/YAML: {exc}") from exc
    return parse(document, str(path))


def parse(document: object, where: str) -> TrainerConfig:
    try:
        return TrainerConfig.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(str(e) for e in field_errors(exc))
        raise InvalidConfigError(f"{where}: invalid trainer config: {problems}") from None
