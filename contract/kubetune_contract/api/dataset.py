"""Training data: sources, shape, length, packing and quality rules."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from kubetune_contract.api.base import ApiModel, Decimal
from kubetune_contract.api.rules import Rule, exclusive, fraction_below_one
from kubetune_contract.api.sources import DataSource

QualityAction = Literal["drop", "warn", "fail"]


class LengthRule(ApiModel):
    """Bounds on a row's text length in characters."""

    min: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="Rows shorter than this many characters break the rule."
    )
    max: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Rows longer than this many characters break the rule."
    )
    action: QualityAction = Field(default="drop", description="What to do with offending rows.")

    rules = (
        Rule(
            field="max",
            message="max must be at least min",
            check=lambda r: r.min is None or r.max is None or r.max >= r.min,
            cel="!has(self.min) || !has(self.max) || self.max >= self.min",
        ),
    )


class NewlineRatioRule(ApiModel):
    """Rows made mostly of line breaks are usually scraping debris."""

    max: Decimal = Field(
        default="0.3", description="Largest allowed share of newline characters, a fraction."
    )
    action: QualityAction = Field(default="drop", description="What to do with offending rows.")

    rules = (fraction_below_one("max", allow_zero=False),)


class DuplicateRule(ApiModel):
    """Exact and near-duplicate detection."""

    exact: bool = Field(default=True, description="Flag rows whose text repeats an earlier row.")
    nearThreshold: Decimal | None = Field(
        default=None,
        description="Also flag rows whose similarity to an earlier row is at least this fraction "
        '(e.g. "0.9"); omit to skip near-duplicate detection.',
    )
    action: QualityAction = Field(default="drop", description="What to do with offending rows.")

    rules = (fraction_below_one("nearThreshold", allow_zero=False, optional=True),)


class GarbledRule(ApiModel):
    """Empty rows and rows that are mostly non-text (control or replacement characters)."""

    action: QualityAction = Field(default="drop", description="What to do with offending rows.")


class QualitySpec(ApiModel):
    """Data quality rules applied before training; a report is saved with the result."""

    length: LengthRule | None = Field(default=None, description="Length bounds.")
    newlineRatio: NewlineRatioRule | None = Field(default=None, description="Newline share bound.")
    duplicates: DuplicateRule | None = Field(default=None, description="Duplicate detection.")
    garbled: GarbledRule | None = Field(default=None, description="Empty or garbled rows.")


class DatasetSpec(ApiModel):
    """The training (and optional validation) data."""

    train: DataSource = Field(description="The training data.")
    validation: DataSource | None = Field(
        default=None,
        description="Separate validation data. Mutually exclusive with validationSplit.",
    )
    validationSplit: Decimal | None = Field(
        default=None,
        description='Fraction of the training rows held out for evaluation, e.g. "0.1". '
        "Mutually exclusive with validation.",
    )
    maxLength: Annotated[int, Field(ge=16, le=1048576)] = Field(
        default=1024, description="Longest tokenized example; longer ones are truncated."
    )
    packing: bool = Field(
        default=False,
        description="Pack several short examples into each sequence (sft only): fewer padding "
        "tokens, higher throughput.",
    )
    quality: QualitySpec | None = Field(
        default=None, description="Quality rules (length, newlines, duplicates, garbled rows)."
    )

    rules = (
        exclusive("validation", "validationSplit"),
        fraction_below_one("validationSplit", allow_zero=False, optional=True),
    )
