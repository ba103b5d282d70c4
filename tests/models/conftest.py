"""Tiny LLaMA checkpoints for the checkpoint and delta tests (built here; nothing from a hub)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch


def tiny_config(**overrides):
    from transformers import LlamaConfig

    sizes = dict(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        vocab_size=128,
        max_position_embeddings=64,
    )
    sizes.update(overrides)
    return LlamaConfig(**sizes)


def tiny_model(seed: int = 0, **overrides):
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(tiny_config(**overrides)).eval()


def save_model(model, folder: Path, **kwargs) -> Path:
    model.save_pretrained(folder, **kwargs)
    return folder


@pytest.fixture(scope="session")
def make_tiny():
    """``make_tiny(seed=0, **config_overrides)``: a fresh tiny LLaMA (tests have no package)."""
    return tiny_model


@pytest.fixture(scope="session")
def base_model():
    """The base model (seed 0), kept in memory: adapters are built on deep copies of it."""
    return tiny_model(0)


@pytest.fixture(scope="session")
def base_dir(base_model, tmp_path_factory) -> Path:
    return save_model(base_model, tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="session")
def tuned_model(base_model):
    """A "fine-tuned" model: the base plus a random perturbation of every weight."""
    tuned = copy.deepcopy(base_model)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in tuned.parameters():
            param.add_(0.01 * torch.randn(param.shape, generator=generator))
    return tuned


@pytest.fixture(scope="session")
def tuned_dir(tuned_model, tmp_path_factory) -> Path:
    return save_model(tuned_model, tmp_path_factory.mktemp("tuned"))


@pytest.fixture(scope="session")
def tuned_sharded_dir(tuned_model, tmp_path_factory) -> Path:
    return save_model(tuned_model, tmp_path_factory.mktemp("tuned_sharded"), max_shard_size="20KB")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # Tiny shapes gain nothing from threads, and thread hand-offs on a busy machine cost more than
    # the arithmetic.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
