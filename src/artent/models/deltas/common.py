"""What every reader of weight updates shares: the :class:`Delta` record and tensor checks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from artent.entanglement.profile import LowRank
from artent.models.checkpoints import Checkpoint, CheckpointError

DEFAULT_MODULES = ("q_proj", "v_proj")
#: What ``modules=["all"]`` selects: every linear module of a decoder layer (those present), not
#: the embeddings or the LM head.
ALL_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class Delta:
    """One module's weight update.

    Attributes:
        name: the module's path in the model, e.g. ``"model.layers.3.self_attn.q_proj"``; a block
            of a fused projection carries its role, e.g. ``"transformer.h.3.attn.c_attn[q]"``.
        layer: its layer index (``None`` outside the layer stack, e.g. ``lm_head``).
        module: the module's name as asked for, canonical for query/key/value (``"q_proj"``,
            ``"k_proj"``, ``"v_proj"``, whatever the architecture calls them), else the module's
            own name (``"o_proj"``, ``"c_attn"``...).
        update: ``LowRank`` (``scale * B @ A``, torch factors) for factored adapters, else a dense
            float32 (float64 where the inputs were) tensor of shape ``(rows, cols)``.
        rows, cols: the update's shape (``out_features``, ``in_features``).
        rank: the nominal rank ``r`` (LoRA-like kinds), ``None`` for dense pairs.
        kind: ``"dense"`` (pair) or the adapter kind (``"lora"``, ``"rslora"``, ``"dora"``,
            ``"loha"``, ``"lokr"``, ``"vera"``, ``"adalora"``, ``"mps"``).
        is_zero: the update is exactly zero (e.g. LoRA at step 0, where ``B = 0``).
        base: the base weight ``W`` in the same ``(rows, cols)`` layout (dense, float32 or
            float64), where the reader has it (pairs, adapters read with a base, models in
            memory); ``None`` otherwise. The merged weight is ``base + update``.
    """

    name: str
    layer: int | None
    module: str
    update: LowRank | torch.Tensor
    rows: int
    cols: int
    rank: int | None
    kind: str
    is_zero: bool
    base: torch.Tensor | None = None


def finite(ckpt: Checkpoint, key: str) -> torch.Tensor:
    """The tensor ``key`` of ``ckpt``, refused (naming it) if it holds NaN or Inf."""
    tensor = ckpt.get(key)
    if not torch.isfinite(tensor).all():
        raise CheckpointError(f"tensor '{key}' in {ckpt.file_of(key)} contains NaN or Inf")
    return tensor


def matrix_shape(ckpt: Checkpoint, key: str) -> tuple[int, int]:
    shape = ckpt.shape(key)
    if len(shape) != 2:
        raise ValueError(f"tensor '{key}' in {ckpt.path} is not a matrix (shape {shape})")
    return shape  # type: ignore[return-value]


def is_zero_product(B: torch.Tensor, A: torch.Tensor) -> bool:
    """Whether ``B @ A`` is exactly zero, without forming it when it is clearly not."""
    live = (B != 0).any(dim=0) & (A != 0).any(dim=1)  # rank-one terms with both factors nonzero
    if not live.any():
        return True
    B, A = B[:, live].double(), A[live].double()
    # ||B A||_F^2 = tr((B^T B)(A A^T)): r x r work; only a near-zero value needs the product.
    fro2 = float(torch.trace((B.T @ B) @ (A @ A.T)))
    if fro2 > 1e-8 * float(B.square().sum()) * float(A.square().sum()):
        return False
    return not bool((B @ A).any())


def output_dtype(*tensors: torch.Tensor) -> torch.dtype:
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def stored_dtype(ckpt: Checkpoint, keys: Iterable[str]) -> torch.dtype:
    """float64 when any of ``keys`` is stored in float64, else float32 (dense outputs' dtype)."""
    return torch.float64 if any(ckpt.dtype(k) == torch.float64 for k in keys) else torch.float32
