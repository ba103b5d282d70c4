"""Readers of the LoRA family's updates: LoRA, rsLoRA, DoRA, AdaLoRA and VeRA (peft 0.21).

Each kind has ``shape(adapter, name, parts) -> (rows, cols)`` and ``build(adapter, name, parts)
-> (update, rank, kind, is_zero)``; ``adapter`` is the
:class:`~artent.models.deltas.adapter.SavedAdapter`, ``parts`` the module's tensor keys. The
formulas themselves are :mod:`artent.models.deltas.formulas`, shared with the live readers.
"""

from __future__ import annotations

import torch

from artent.models.checkpoints import CheckpointError
from artent.models.deltas.common import output_dtype
from artent.models.deltas.formulas import (
    adalora_scale,
    adalora_update,
    dora_update,
    lora_scaling,
    lora_update,
    vera_update,
)
from artent.models.deltas.patterns import pattern_value


def lora_scale(ad, name: str, r: int) -> float:
    alpha = pattern_value(
        ad.config.get("alpha_pattern"),
        name,
        ad.config.get("lora_alpha", 8),
        what=f"adapter {ad.path}: alpha_pattern",
    )
    return lora_scaling(alpha, r, bool(ad.config.get("use_rslora")))


def lora_shape(ad, name, parts):
    ad.need(name, parts, "lora_A.weight", "lora_B.weight")
    return ad.shape(parts, "lora_B.weight")[0], ad.shape(parts, "lora_A.weight")[1]


def lora_build(ad, name, parts):
    A, B = ad.get(parts["lora_A.weight"]), ad.get(parts["lora_B.weight"])
    r = A.shape[0]
    scale = lora_scale(ad, name, r)
    if not ad.config.get("use_dora"):
        update, is_zero = lora_update(B, A, scale)
        return update, r, "rslora" if ad.config.get("use_rslora") else "lora", is_zero
    magnitude_key = parts.get("lora_magnitude_vector") or parts.get("lora_magnitude_vector.weight")
    if magnitude_key is None:
        raise CheckpointError(f"adapter {ad.path}: DoRA module '{name}' has no magnitude vector")
    # the dtypes m and W are stored in (the tensors read may have been widened)
    eps = min(torch.finfo(ad.ckpt.dtype(magnitude_key) or torch.float32).eps,
              torch.finfo(ad.base.dtype(name + ".weight") or torch.float32).eps)  # fmt: skip
    delta, is_zero = dora_update(ad.base_weight(name), B, A, scale, ad.get(magnitude_key), eps=eps)
    return delta, r, "dora", is_zero


def adalora_shape(ad, name, parts):
    ad.need(name, parts, "lora_A", "lora_B", "lora_E")
    return ad.shape(parts, "lora_B")[0], ad.shape(parts, "lora_A")[1]


def adalora_build(ad, name, parts):
    # ranknum is not saved: it is init_r at creation and is carried over when rank_pattern prunes
    # the rows, and scaling is lora_alpha, or the (pruned) rank where lora_alpha <= 0.
    A, B, E = (ad.get(parts[p]) for p in ("lora_A", "lora_B", "lora_E"))
    r = A.shape[0]
    if r == 0:  # every triplet pruned away by rank_pattern: no update
        return torch.zeros(B.shape[0], A.shape[1], dtype=output_dtype(A, B)), 0, "adalora", True
    alpha = ad.config.get("lora_alpha", 8)
    scaling = alpha if alpha > 0 else float(r)
    ranknum = float(ad.config.get("init_r", r))
    update, is_zero = adalora_update(B, A, E, adalora_scale(scaling, ranknum))
    return update, r, "adalora", is_zero


def vera_shape(ad, name, parts):
    ad.need(name, parts, "vera_lambda_b", "vera_lambda_d")
    for shared in ("vera_A", "vera_B"):
        if shared not in ad.shared:
            raise ValueError(
                f"adapter {ad.path}: VeRA saved without its projection {shared} "
                f"(save_projection=False); save it with save_projection=True"
            )
    # The shared projections are sliced to each module's in_features, which only the base knows.
    rows, cols = ad.base_shape(name)
    if ad.shape(parts, "vera_lambda_b")[0] != rows:
        raise ValueError(
            f"adapter {ad.path}: module '{name}' has {ad.shape(parts, 'vera_lambda_b')[0]} "
            f"outputs but the base {ad.base.path} has shape {(rows, cols)}"
        )
    return rows, cols


def vera_build(ad, name, parts):
    rows, cols = ad.base_shape(name)
    vera_A, vera_B = ad.get(ad.shared["vera_A"]), ad.get(ad.shared["vera_B"])
    if vera_A.shape[1] < cols or vera_B.shape[0] < rows:
        raise ValueError(
            f"adapter {ad.path}: VeRA projections {tuple(vera_B.shape)}, {tuple(vera_A.shape)} "
            f"are too small for module '{name}' of shape {(rows, cols)}"
        )
    lam_b, lam_d = ad.get(parts["vera_lambda_b"]), ad.get(parts["vera_lambda_d"])
    update, is_zero = vera_update(lam_b, lam_d, vera_B, vera_A, rows, cols)
    return update, update.A.shape[0], "vera", is_zero
