"""The update formulas of the LoRA family (peft 0.21), as pure tensor functions: their one home.

Both readers call them: the saved-adapter readers (:mod:`artent.models.deltas.lora`, tensors from
files, settings from ``adapter_config.json``) and the readers of a peft model in memory
(:mod:`artent.models.deltas.live`, tensors and settings off the layer objects). Each returns the
update and whether it is exactly zero; tests/models/test_deltas.py and test_live.py check both
readers against peft's own ``merge_and_unload``.
"""

from __future__ import annotations

import math

import torch

from artent.entanglement.profile import LowRank
from artent.models.deltas.common import is_zero_product, output_dtype


def lora_scaling(alpha: float, r: int, rslora: bool) -> float:
    """peft's LoRA scaling: ``alpha / r``, or ``alpha / sqrt(r)`` with rsLoRA (also MPS's)."""
    return alpha / math.sqrt(r) if rslora else alpha / r


def lora_update(B: torch.Tensor, A: torch.Tensor, scale: float) -> tuple[LowRank, bool]:
    """LoRA and rsLoRA: ``scale * B @ A``, factored.

    Args:
        B: the ``(out, r)`` factor (``lora_B``).
        A: the ``(r, in)`` factor (``lora_A``).
        scale: the layer's scaling (:func:`lora_scaling`, or the layer's own).

    Returns:
        The update and whether it is exactly zero.
    """
    return LowRank(B, A, scale), scale == 0 or is_zero_product(B, A)


def dora_update(
    W: torch.Tensor,
    B: torch.Tensor,
    A: torch.Tensor,
    scale: float,
    magnitude: torch.Tensor,
    *,
    eps: float,
) -> tuple[torch.Tensor, bool]:
    """DoRA (peft lora/variants.py, ``DoraLinearVariant.merge_*``), dense.

    The merged weight is ``m / ||W + s B A||_row * (W + s B A)``, the norm taken over each output
    row (dim 1 of the ``(out, in)`` weight); the update is that minus ``W``. Done in float64: the
    subtraction cancels. At step 0 (``B = 0``) peft's merge gives ``W`` back exactly (``m`` was
    set to ``||W||_row`` by the same arithmetic), while this float64 norm differs from that in the
    last bits of the stored dtype: within ``4 eps`` of that, the update is zero.

    Args:
        W: the base weight, ``(out, in)``.
        B: ``lora_B``; A: ``lora_A``; scale: the LoRA scaling.
        magnitude: the magnitude vector ``m`` (``out`` values, any shape).
        eps: the smaller machine epsilon of the dtypes ``m`` and ``W`` are stored in.

    Returns:
        The update (float32, float64 where an input is) and whether it is exactly zero.
    """
    V = W.double() + scale * (B.double() @ A.double())
    factor = magnitude.double().reshape(-1) / torch.linalg.vector_norm(V, dim=1)
    delta = (factor[:, None] * V - W.double()).to(output_dtype(W, A, B))
    if is_zero_product(B, A) and float((factor - 1).abs().max()) <= 4 * eps:
        delta = torch.zeros_like(delta)
    return delta, not bool(delta.any())


def adalora_scale(scaling: float, ranknum: float) -> float:
    """AdaLoRA's factor (peft adalora/layer.py): ``scaling / (ranknum + 1e-5)``."""
    return scaling / (ranknum + 1e-5)


def adalora_update(
    B: torch.Tensor, A: torch.Tensor, E: torch.Tensor, scale: float
) -> tuple[LowRank, bool]:
    """AdaLoRA: ``B @ (A * E) * scale`` (:func:`adalora_scale`), factored.

    Args:
        B: ``lora_B``, ``(out, r)``; A: ``lora_A``, ``(r, in)``; E: ``lora_E``, ``r`` values.
        scale: from :func:`adalora_scale`.

    Returns:
        The update and whether it is exactly zero.
    """
    A_scaled = A * E.reshape(-1, 1)
    return LowRank(B, A_scaled, scale), scale == 0 or is_zero_product(B, A_scaled)


def vera_update(
    lambda_b: torch.Tensor,
    lambda_d: torch.Tensor,
    vera_B: torch.Tensor,
    vera_A: torch.Tensor,
    rows: int,
    cols: int,
) -> tuple[LowRank, bool]:
    """VeRA (peft vera/layer.py): ``(lambda_b * vera_B[:out]) @ (lambda_d * vera_A[:, :in])``.

    Args:
        lambda_b, lambda_d: the module's scaling vectors.
        vera_B, vera_A: the projections shared by every module, sliced here to the module's
            ``rows`` (out) and ``cols`` (in); moved to the vectors' device.
        rows, cols: the module's shape.

    Returns:
        The update (factored, scale 1) and whether it is exactly zero.
    """
    B = lambda_b.reshape(-1, 1) * vera_B[:rows].to(lambda_b.device)
    A = lambda_d.reshape(-1, 1) * vera_A[:, :cols].to(lambda_d.device)
    return LowRank(B, A, 1.0), is_zero_product(B, A)
