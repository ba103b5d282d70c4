"""The tiny LLaMA's architecture, and the options of its pretraining (they name its cache)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from artent.data.generators import GENERATOR_VERSION
from artent.schedule import SCHEDULES

if TYPE_CHECKING:
    import transformers

TINY_MODEL_NAME = "tiny-llama-v1"
MAX_POSITIONS = 512


def tiny_llama_config(
    vocab_size: int,
    *,
    hidden_size: int = 128,
    num_hidden_layers: int = 4,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    intermediate_size: int = 512,
    max_position_embeddings: int = MAX_POSITIONS,
    pad_token_id: int = 0,
    bos_token_id: int = 1,
    eos_token_id: int = 2,
) -> transformers.LlamaConfig:
    """A LLaMA configuration with power-of-two widths and grouped-query attention.

    The defaults give ``q_proj`` and ``o_proj`` of shape 128x128 (2^14 entries, 14 qubits) and
    ``k_proj``/``v_proj`` of shape 64x128 (4 query heads of dimension 32 sharing 2 key/value heads),
    as in the real LLaMA-3 models, only smaller. The default special-token ids are those that
    :func:`train_tokenizer` assigns (``template.SPECIAL_TOKENS`` first, in order).

    Args:
        vocab_size: number of token embeddings (rows of ``embed_tokens`` and ``lm_head``).
        hidden_size: model width; must divide evenly into ``num_attention_heads`` heads.
        num_hidden_layers: decoder layers.
        num_attention_heads: query heads; a multiple of ``num_key_value_heads``.
        num_key_value_heads: key/value heads (grouped-query attention).
        intermediate_size: MLP width.
        max_position_embeddings: longest sequence, in tokens.
        pad_token_id, bos_token_id, eos_token_id: special-token ids.
    """
    from transformers import LlamaConfig

    for name, value in (
        ("vocab_size", vocab_size),
        ("hidden_size", hidden_size),
        ("num_hidden_layers", num_hidden_layers),
        ("num_attention_heads", num_attention_heads),
        ("num_key_value_heads", num_key_value_heads),
        ("intermediate_size", intermediate_size),
        ("max_position_embeddings", max_position_embeddings),
    ):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"tiny LLaMA option {name} must be a positive integer, got {value!r}")
    if hidden_size % num_attention_heads:
        raise ValueError(
            f"hidden_size={hidden_size} is not divisible by "
            f"num_attention_heads={num_attention_heads}"
        )
    if num_attention_heads % num_key_value_heads:
        raise ValueError(
            f"num_attention_heads={num_attention_heads} is not a multiple of "
            f"num_key_value_heads={num_key_value_heads}"
        )
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        head_dim=hidden_size // num_attention_heads,
        max_position_embeddings=max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=False,
        pad_token_id=pad_token_id,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        dtype="float32",
    )


@dataclass(frozen=True)
class TinyPretrainConfig:
    """Options of :func:`pretrain_tiny`; every field enters the cache key.

    Attributes:
        steps: optimiser steps.
        seq_len: tokens per packed training block.
        batch_size: blocks per step.
        lr: peak AdamW learning rate.
        warmup_steps: linear warm-up length, in steps.
        schedule: ``"cosine"`` (decay to ``min_lr_ratio * lr``) or ``"constant"`` after warm-up.
        min_lr_ratio: final learning rate of the cosine schedule, as a fraction of ``lr``.
        weight_decay: AdamW decoupled weight decay.
        grad_clip: gradient-norm clipping threshold.
        seed: seeds the corpus, the initialisation and the batch order.
        n_documents: corpus size, in generated documents (training and held-out together).
        heldout_fraction: fraction of documents kept out of training for the held-out loss.
        vocab_size: tokenizer vocabulary size.
        hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads,
            intermediate_size: the architecture, see :func:`tiny_llama_config`.
    """

    steps: int = 400
    seq_len: int = 128
    batch_size: int = 16
    lr: float = 3e-3
    warmup_steps: int = 30
    schedule: str = "cosine"
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    n_documents: int = 20_000
    heldout_fraction: float = 0.05
    vocab_size: int = 1024
    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 512

    def __post_init__(self) -> None:
        for name in ("steps", "seq_len", "batch_size", "n_documents"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"pretrain option {name} must be a positive integer, got {value!r}"
                )
        if not 2 <= self.seq_len <= MAX_POSITIONS:
            raise ValueError(f"pretrain option seq_len must be in [2, {MAX_POSITIONS}]")
        if not self.lr > 0:
            raise ValueError(f"pretrain option lr must be positive, got {self.lr!r}")
        if not 0 <= self.warmup_steps <= self.steps:
            raise ValueError("pretrain option warmup_steps must be in [0, steps]")
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"pretrain option schedule must be 'cosine' or 'constant', got {self.schedule!r}"
            )
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("pretrain option min_lr_ratio must be in [0, 1]")
        if not 0 < self.heldout_fraction < 1:
            raise ValueError("pretrain option heldout_fraction must be in (0, 1)")
        # Validates the architecture options with the same messages as tiny_llama_config.
        tiny_llama_config(self.vocab_size, **self.model_options())

    def model_options(self) -> dict[str, int]:
        """The architecture fields, as keyword arguments of :func:`tiny_llama_config`."""
        names = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads")
        return {n: getattr(self, n) for n in (*names, "intermediate_size")}

    def cache_key(self) -> str:
        """A short hash of every option and of the generators' version."""
        payload = json.dumps(
            {"config": dataclasses.asdict(self), "generators": GENERATOR_VERSION}, sort_keys=True
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:12]
