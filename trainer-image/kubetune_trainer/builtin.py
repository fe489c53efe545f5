"""``builtin://`` models: tiny Llamas built on the fly, for smoke tests and the quickstart.

No package ships small causal-LM weights and CI has no hub access, so the model is made
here: a byte-level BPE tokenizer trained on a fixed corpus and a randomly initialised
Llama with a fixed seed. The result is deterministic (same files, same losses) and cached
under ``$KUBETUNE_CACHE_DIR/builtin/<name>-v<version>``; bump ``_VERSION`` whenever the
recipe changes so stale caches are never reused.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from kubetune_trainer.errors import InvalidModelError

_VERSION = 2

#: Chat template with ``{% generation %}`` markers so that TRL's ``assistant_only_loss``
#: can mask everything but the assistant's turns.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<|assistant|>\n' }}{% generation %}{{ message['content'] + '<|end|>' }}{% endgeneration %}"
    "{{ '\n' }}"
    "{%- else -%}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>\n' }}{%- endif -%}"
)

SPECIAL_TOKENS = ["<|pad|>", "<|begin|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]

# Enough everyday English, digits and punctuation for BPE to learn useful merges; any
# other text still tokenizes because the byte-level alphabet covers all 256 bytes.
_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France? The capital of France is Paris.",
    "Question: how many legs does a spider have? Answer: a spider has eight legs.",
    "You are a helpful assistant. Answer the question in one short sentence.",
    "def add(a, b):\n    return a + b\n",
    "Translate to French: good morning. Bonjour.",
    "zero one two three four five six seven eight nine ten eleven twelve",
    "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 plus minus times equals",
    "red orange yellow green blue purple black white colour color of the sky is blue",
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March",
    "The instruction asks for a summary. Here is the response you asked for.",
    "user assistant system prompt completion chosen rejected label text messages",
]

_SPECS: dict[str, dict[str, int]] = {
    "tiny-llama": {
        "vocab_size": 512,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 1024,
    },
}


def cache_root() -> Path:
    """Where kubetune caches downloaded and built models (``KUBETUNE_CACHE_DIR`` wins)."""
    explicit = os.environ.get("KUBETUNE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kubetune"


def builtin_names() -> list[str]:
    return sorted(_SPECS)


def materialize(name: str, *, sequence_classification: bool = False) -> Path:
    """Return a local folder holding the builtin model ``name``, building it if needed.

    ``sequence_classification`` builds the reward-model variant (one output label) from
    the same tokenizer and seed, which the ``reward`` method needs.
    """
    if name not in _SPECS:
        raise InvalidModelError(
            f"unknown builtin model {name!r}; builtin models are: {', '.join(builtin_names())}"
        )
    kind = "seqcls" if sequence_classification else "causal"
    target = cache_root() / "builtin" / f"{name}-{kind}-v{_VERSION}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build next to the target and rename: concurrent builders never see half a model.
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        _build(name, staging, sequence_classification=sequence_classification)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def build_tokenizer(vocab_size: int):  # type: ignore[no-untyped-def]
    """Train the byte-level BPE tokenizer and wrap it as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(_CORPUS, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<|pad|>",
        bos_token="<|begin|>",
        eos_token="<|end|>",
        model_max_length=_SPECS["tiny-llama"]["max_position_embeddings"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _build(name: str, folder: Path, *, sequence_classification: bool) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    spec = _SPECS[name]
    tokenizer = build_tokenizer(spec["vocab_size"])
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec["hidden_size"],
        intermediate_size=spec["intermediate_size"],
        num_hidden_layers=spec["num_hidden_layers"],
        num_attention_heads=spec["num_attention_heads"],
        num_key_value_heads=spec["num_key_value_heads"],
        max_position_embeddings=spec["max_position_embeddings"],
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
        # Wider than the 0.02 default: the frozen output head must be able to produce
        # peaked distributions, or a LoRA on this random model cannot lower the loss much.
        initializer_range=0.1,
    )
    config.num_labels = 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model_cls = LlamaForSequenceClassification if sequence_classification else LlamaForCausalLM
        model = model_cls(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
