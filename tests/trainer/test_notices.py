"""The library notices the trainer silences are gone, and nothing else of those libraries."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings

import pytest

from kubetune_trainer import notices

pytestmark = pytest.mark.trainer

#: Imports the libraries as the trainer does (bitsandbytes comes in through transformers'
#: Trainer) and reads the deprecated property the way PeftModel.__init__ does.
SCRIPT = """
import kubetune_trainer
import transformers
from transformers import Trainer
config = transformers.LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32,
    num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)
assert transformers.LlamaForCausalLM(config).is_gradient_checkpointing is False
"""


def test_importing_the_trainer_silences_both_notices() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "kernels-community" not in proc.stderr
    assert "is_gradient_checkpointing" not in proc.stderr


@pytest.fixture
def installed() -> None:
    """pytest restores the warning filters after collection, so install them again."""
    notices.install()


@pytest.mark.usefixtures("installed")
def test_other_bitsandbytes_records_pass(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    with caplog.at_level(logging.WARNING, logger=logger.name):
        logger.warning("Failed to load CPU gemm_4bit_forward from kernels-community: %s", "x")
        logger.warning("something else went wrong")
    assert [r.getMessage() for r in caplog.records] == ["something else went wrong"]


@pytest.mark.usefixtures("installed")
def test_other_future_warnings_show() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.warn_explicit(
            "`is_gradient_checkpointing` is deprecated",
            FutureWarning,
            "m.py",
            1,
            module="transformers.modeling_utils",
        )
        warnings.warn("a FutureWarning of our own", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["a FutureWarning of our own"]
