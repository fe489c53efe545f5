"""Where models and data come from and where results go: URIs and credentials."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from kubetune_contract.api.base import ApiModel, ObjectName, ShortString

#: Schemes a model can be loaded from. ``builtin://tiny-llama`` is a deterministic tiny
#: Llama built on the fly, for smoke tests and the quickstart (no model hub needed).
MODEL_URI_PATTERN = r"^(hf://[^@\s]+(@[^\s]+)?|(s3|gs|az)://[^\s]+|pvc://[a-z0-9][-a-z0-9.]*(/[^\s]*)?|file://[^\s]+|builtin://tiny-llama)$"
#: Schemes a dataset can be read from (``hf://`` datasets need network at run time).
DATA_URI_PATTERN = (
    r"^(hf://[^\s]+|(s3|gs|az)://[^\s]+|pvc://[a-z0-9][-a-z0-9.]*(/[^\s]*)?|file://[^\s]+)$"
)
#: Schemes results can be written to.
OUTPUT_URI_PATTERN = r"^((s3|gs|az)://[^\s]+|pvc://[a-z0-9][-a-z0-9.]*(/[^\s]*)?|file://[^\s]+)$"


@dataclass(frozen=True)
class StorageUri:
    """Marks a string field as a storage URI (in ``Annotated`` metadata, next to its pattern).

    Everything that acts on storage (the policy's scheme rule, the pod's ``pvc://``
    volumes, ``kubetune run``'s relative ``file://`` paths) finds URIs by this mark
    (:func:`kubetune_contract.api.references.storage_uris`), never by what a string looks
    like: a principle or prompt that happens to start with ``pvc://`` is text, not storage.
    """

    writes: bool = False
    """The trainer writes here (so a ``pvc://`` claim is mounted read-write)."""


ModelUri = Annotated[
    str, StringConstraints(pattern=MODEL_URI_PATTERN, max_length=1024), StorageUri()
]
DataUri = Annotated[str, StringConstraints(pattern=DATA_URI_PATTERN, max_length=1024), StorageUri()]
OutputUri = Annotated[
    str, StringConstraints(pattern=OUTPUT_URI_PATTERN, max_length=1024), StorageUri(writes=True)
]

DatasetFormat = Literal[
    "auto",
    "messages",
    "promptCompletion",
    "preference",
    "unpairedPreference",
    "text",
    "alpaca",
    "dolly",
    "oasst",
    "codeFunctions",
]

#: Dataset formats whose rows hold a chosen and a rejected answer to one prompt.
PAIRED_PREFERENCE_FORMATS: tuple[DatasetFormat, ...] = ("auto", "preference")
#: Dataset formats usable by KTO (paired preference data is split into unpaired rows).
UNPAIRED_PREFERENCE_FORMATS: tuple[DatasetFormat, ...] = (
    "auto",
    "preference",
    "unpairedPreference",
)


class ModelSource(ApiModel):
    """A model to load: the base model (``spec.model``) or the reward model
    (``spec.reward.model``). One shape for both, so a reward model on the hub can be
    pinned to a revision and read with its own token exactly like the base model."""

    uri: ModelUri = Field(
        description=(
            "Where the model is: hf://org/name[@revision], s3://bucket/path, "
            "gs://bucket/path, az://container/path, pvc://claim/path, file:///path, "
            "or builtin://tiny-llama (a tiny random model for smoke tests)."
        )
    )
    revision: ShortString | None = Field(
        default=None,
        description="Model revision (branch, tag or commit) for hf:// models; "
        "overrides an @revision in the uri.",
    )
    credentialsSecret: ObjectName | None = Field(
        default=None,
        description="Name of a Secret in the job's namespace holding the credentials, keys named "
        "like the variables they stand for (e.g. HF_TOKEN, AWS_ACCESS_KEY_ID); mounted into the "
        "trainer as files, never as environment variables. A name, never a value.",
    )


class DataSource(ApiModel):
    """One dataset file, folder or hub dataset."""

    uri: DataUri = Field(
        description="Where the data is: a JSONL, JSON, Parquet or CSV file (or a folder of "
        "them) at s3://, gs://, az://, pvc://claim/path or file://; or hf://org/dataset."
    )
    format: DatasetFormat = Field(
        default="auto",
        description="Row shape. auto detects it from the columns and, on failure, lists the "
        "columns found and the formats accepted.",
    )
    split: ShortString | None = Field(
        default=None, description="Split name for hf:// datasets (default: train)."
    )


class OutputSpec(ApiModel):
    """Where the adapter, checkpoints and the result manifest are written."""

    uri: OutputUri = Field(
        description="Destination prefix: s3://bucket/prefix, gs://, az://, pvc://claim/path or "
        "file://. The adapter, metrics.jsonl and manifest.json (written last) go here; "
        "checkpoints go under checkpoints/."
    )
    credentialsSecret: ObjectName | None = Field(
        default=None,
        description="Name of a Secret with the credentials for writing the output (keys such "
        "as AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL), mounted into the "
        "trainer as files.",
    )
    merge: bool = Field(
        default=False,
        description="Also export the base model with the adapter merged in (lora and qlora only).",
    )
