"""peft's deprecation warning on every wrapped model: raised by peft, filtered in artent."""

from __future__ import annotations

import warnings

import pytest

from artent.models.peft_warnings import PEFT_CHECKPOINTING_DEPRECATION, peft_quietly
from tiny_families import tiny_llama


def _tiny_llama():
    return tiny_llama(
        None,
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
    )


def _wrap_recording(quiet: bool) -> list[str]:
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        if quiet:
            with peft_quietly():
                get_peft_model(_tiny_llama(), cfg)
        else:
            get_peft_model(_tiny_llama(), cfg)
    return [str(w.message) for w in seen if issubclass(w.category, FutureWarning)]


def test_peft_quietly_removes_only_the_checkpointing_deprecation():
    import re

    loud = _wrap_recording(quiet=False)
    if not any(re.search(PEFT_CHECKPOINTING_DEPRECATION, m) for m in loud):
        pytest.fail(
            "peft no longer triggers the is_gradient_checkpointing deprecation: "
            "artent.models.peft_warnings and the pytest filter can go"
        )
    quiet = _wrap_recording(quiet=True)
    assert not any(re.search(PEFT_CHECKPOINTING_DEPRECATION, m) for m in quiet)
    # Any other FutureWarning still gets through.
    assert len(quiet) == len(loud) - sum(
        bool(re.search(PEFT_CHECKPOINTING_DEPRECATION, m)) for m in loud
    )
