"""Decoder-only transformer shapes: from a catalog of well-known models or a config.json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelShape:
    """The dimensions that decide memory and compute of a Llama-style decoder."""

    hidden: int
    layers: int
    heads: int
    kvHeads: int
    intermediate: int
    vocab: int
    tiedEmbeddings: bool = False

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def linear_shapes(self) -> list[tuple[int, int]]:
        """(in, out) of the linear layers of one block: q, k, v, o, gate, up, down."""
        kv = self.kvHeads * self.head_dim
        h, i = self.hidden, self.intermediate
        return [(h, h), (h, kv), (h, kv), (h, h), (h, i), (h, i), (i, h)]

    @property
    def block_parameters(self) -> int:
        """Weights of one block: its linears plus two RMSNorm vectors."""
        return sum(a * b for a, b in self.linear_shapes()) + 2 * self.hidden

    @property
    def parameters(self) -> int:
        """All weights: blocks, final norm, input embedding and (unless tied) the output head."""
        embeddings = self.vocab * self.hidden * (1 if self.tiedEmbeddings else 2)
        return self.layers * self.block_parameters + self.hidden + embeddings

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelShape:
        """From a Hugging Face ``config.json`` of a Llama-style model."""
        heads = int(config["num_attention_heads"])
        return cls(
            hidden=int(config["hidden_size"]),
            layers=int(config["num_hidden_layers"]),
            heads=heads,
            kvHeads=int(config.get("num_key_value_heads") or heads),
            intermediate=int(config["intermediate_size"]),
            vocab=int(config["vocab_size"]),
            tiedEmbeddings=bool(config.get("tie_word_embeddings", False)),
        )


#: Shapes of popular base models, so estimates work offline from the model URI alone.
CATALOG: dict[str, ModelShape] = {
    "meta-llama/Llama-3.2-1B": ModelShape(2048, 16, 32, 8, 8192, 128256, tiedEmbeddings=True),
    "meta-llama/Llama-3.2-3B": ModelShape(3072, 28, 24, 8, 8192, 128256, tiedEmbeddings=True),
    "meta-llama/Llama-3.1-8B": ModelShape(4096, 32, 32, 8, 14336, 128256),
    "meta-llama/Llama-3.1-70B": ModelShape(8192, 80, 64, 8, 28672, 128256),
    "mistralai/Mistral-7B-v0.3": ModelShape(4096, 32, 32, 8, 14336, 32768),
    "Qwen/Qwen2.5-1.5B": ModelShape(1536, 28, 12, 2, 8960, 151936, tiedEmbeddings=True),
    "Qwen/Qwen2.5-7B": ModelShape(3584, 28, 28, 4, 18944, 152064),
    "google/gemma-2-9b": ModelShape(3584, 42, 16, 8, 14336, 256000, tiedEmbeddings=True),
    "microsoft/Phi-3-mini-4k-instruct": ModelShape(3072, 32, 32, 32, 8192, 32064),
    # The trainer's builtin://tiny-llama (kubetune_trainer.builtin).
    "builtin://tiny-llama": ModelShape(64, 2, 4, 2, 128, 512, tiedEmbeddings=False),
}

_SUFFIXES = ("-Instruct", "-instruct", "-Chat", "-chat", "-it", "-sft-beta")


def catalog_key(uri: str) -> str | None:
    """The catalog entry for a model URI (``hf://org/name[@rev]``), instruct variants included."""
    if uri in CATALOG:
        return uri
    if not uri.startswith("hf://"):
        return None
    name = uri.removeprefix("hf://").split("@", 1)[0]
    for candidate in (name, *(name.removesuffix(s) for s in _SUFFIXES if name.endswith(s))):
        if candidate in CATALOG:
            return candidate
    lowered = {key.lower(): key for key in CATALOG}
    return lowered.get(name.lower())


def load_shape(uri: str, config_path: Path | None = None) -> ModelShape:
    """The shape of the model at ``uri``: a config.json given explicitly, a local model
    folder, or the catalog. Raises ``LookupError`` saying how to supply one."""
    if config_path is not None:
        return ModelShape.from_config(json.loads(config_path.read_text()))
    if uri.startswith("file://"):
        local = Path(uri.removeprefix("file://")) / "config.json"
        if local.is_file():
            return ModelShape.from_config(json.loads(local.read_text()))
    key = catalog_key(uri)
    if key is None:
        known = ", ".join(sorted(CATALOG))
        raise LookupError(
            f"no shape known for {uri}: pass --model-config path/to/config.json "
            f"(known models: {known})"
        )
    return CATALOG[key]
