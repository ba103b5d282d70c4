"""The spectral companions of each update's row, and the matrix ``what=`` chooses to profile.

The maths is :mod:`artent.entanglement.spectral`; this module only decides what it is applied to.
The three ranks are of the matrix profiled (``dW``, ``W + dW`` or ``W``, as ``what=`` says), so
``effective_rank = exp(S_cut)`` holds for each; ``relative_norm`` (``||dW||_F / ||W||_F``) and
``intruders`` (of ``W + dW`` against ``W``) describe the pair whatever is profiled, and are NaN
where the base weight is not known (an adapter read without ``base=``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from artent.entanglement.profile import LowRank
from artent.entanglement.spectral import (
    intruder_dimensions,
    relative_norm,
    spectral_ranks,
    squared_singular_values,
)

#: Columns appended to each row of ``internal_summary.parquet`` (after the valley metrics).
SPECTRAL_COLUMNS = (
    "what",
    "effective_rank",
    "roy_vetterli_rank",
    "stable_rank",
    "relative_norm",
    "intruders",
)


def dense_update(update: Any) -> torch.Tensor:
    """A ``LowRank`` or dense update as a dense torch tensor (on the factors' device)."""
    if isinstance(update, LowRank):
        B, A = torch.as_tensor(update.B), torch.as_tensor(update.A)
        dtype = torch.float64 if torch.float64 in (A.dtype, B.dtype) else torch.float32
        return float(update.scale) * (B.to(dtype) @ A.to(device=B.device, dtype=dtype))
    return update


def profiled_matrix(delta, what: str) -> tuple[Any, int | None]:
    """The matrix to profile and its nominal rank (``None`` for the dense ``W`` and ``W + dW``).

    Returns ``(None, rank)`` for a zero matrix (a zero update, profiled as ``dW``).

    Raises:
        ValueError: ``merged`` or ``base`` where the base weight is not known.
    """
    if what == "update":
        return (None if delta.is_zero else delta.update), delta.rank
    if getattr(delta, "base", None) is None:
        raise ValueError(
            f"what={what} needs the base weights of '{delta.name}': pass the base (base=)"
        )
    if what == "base":
        return delta.base, None
    update = dense_update(delta.update)
    return delta.base.to(device=update.device, dtype=update.dtype) + update, None


def companions(delta, matrix: Any, p_cut: np.ndarray | None, cfg) -> dict[str, Any]:
    """The spectral columns of one row (:data:`SPECTRAL_COLUMNS`).

    Args:
        delta: the :class:`~artent.models.deltas.Delta`.
        matrix: what was profiled (``None``: a zero update, no ranks).
        p_cut: its squared singular values where the profile already has them (the sequential
            cut), else ``None`` (they are computed, factored for a ``LowRank``).
        cfg: the ``InternalConfig`` (``what``, ``intruder_k``, ``intruder_eps``).
    """
    out: dict[str, Any] = dict(what=cfg.what)
    if matrix is None:
        out.update(effective_rank=np.nan, roy_vetterli_rank=np.nan, stable_rank=np.nan)
    else:
        out.update(spectral_ranks(squared_singular_values(matrix) if p_cut is None else p_cut))
    W = getattr(delta, "base", None)  # a duck-typed Delta may not carry one
    if W is None:
        return {**out, "relative_norm": np.nan, "intruders": np.nan}
    if delta.is_zero:
        out["relative_norm"] = 0.0
        out["intruders"] = 0.0 if cfg.intruder_k > 0 else np.nan
        return out
    out["relative_norm"] = relative_norm(delta.update, W)
    out["intruders"] = (
        float(intruder_dimensions(W, delta.update, cfg.intruder_k, cfg.intruder_eps))
        if cfg.intruder_k > 0
        else np.nan
    )
    return out
