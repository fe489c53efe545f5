"""The estimator against memory measured on real models (CPU, fp32, built from configs).

Weights, gradients and optimizer state must match exactly: they are counted from the
tensors a LoRA model and AdamW actually allocate. Activations and logits are compared
with the bytes autograd really saves for the backward pass (captured with
``saved_tensors_hooks``, each storage counted once), within a factor of two: the
estimator is a sizing tool, not an allocator.
"""

from __future__ import annotations

from typing import Any

import peft
import pytest
import torch
import transformers

from kubetune.estimate.memory import estimate_memory
from kubetune.estimate.shapes import CATALOG, ModelShape
from kubetune_contract.api import parse_finetunejob
from tests.cases.manifests import merge, valid_manifest

pytestmark = pytest.mark.trainer

SHAPES = {
    "tiny": CATALOG["builtin://tiny-llama"],
    "small": ModelShape(hidden=256, layers=4, heads=8, kvHeads=4, intermediate=688, vocab=4096),
}


def _model(shape: ModelShape) -> Any:
    config = transformers.LlamaConfig(
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kvHeads,
        intermediate_size=shape.intermediate,
        vocab_size=shape.vocab,
        tie_word_embeddings=shape.tiedEmbeddings,
    )
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config).to(torch.float32)


def _bytes(tensors: Any) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_estimate_matches_a_real_lora_training_step(name: str) -> None:
    shape = SHAPES[name]
    batch, length = 2, 64
    spec = parse_finetunejob(
        merge(
            valid_manifest(),
            {
                "spec": {
                    "adapter": {"type": "lora", "lora": {"rank": 8}},
                    "resources": {"gpus": 0},
                    "dataset": {"maxLength": length},
                    "training": {
                        "precision": "fp32",
                        "batchSize": batch,
                        "gradientCheckpointing": False,
                    },
                }
            },
        )
    ).spec
    predicted = estimate_memory(shape, spec, include_overhead=False)

    base = _model(shape)
    assert sum(p.numel() for p in base.parameters()) == shape.parameters
    model = peft.get_peft_model(
        base, peft.LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", lora_dropout=0.0)
    )
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert sum(p.numel() for p in trainable) == predicted.trainableParameters
    assert _bytes(model.parameters()) == predicted.weights

    saved: dict[int, int] = {}

    def pack(tensor: Any) -> Any:
        saved[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    ids = torch.randint(0, shape.vocab, (batch, length))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    optimizer = torch.optim.AdamW(trainable, lr=1e-3)
    optimizer.step()

    assert _bytes(p.grad for p in trainable) == predicted.gradients
    moments = [v for state in optimizer.state.values() for k, v in state.items() if k != "step"]
    assert _bytes(moments) == predicted.optimizer
    measured = sum(saved.values())
    ratio = measured / (predicted.activations + predicted.logits)
    print(f"{name}: saved for backward {measured} B, estimated {ratio=:.2f}")
    assert 0.5 < ratio < 2.0, (measured, predicted)
