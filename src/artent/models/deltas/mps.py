"""Reader of artent's MPS adapter updates: ``(alpha / r) B @ A_MPS``, factored."""

from __future__ import annotations

import torch

from artent.models.deltas.formulas import lora_scaling, lora_update


def mps_shape(ad, name, parts):
    ad.need(name, parts, "mps_B", "mps_G1", "mps_G2")
    return ad.shape(parts, "mps_B")[0], ad.shape(parts, "mps_G1")[1] * ad.shape(parts, "mps_G2")[1]


def mps_build(ad, name, parts):
    # artent.adapters.mps: A_MPS[k, i1 * n2 + i2] = sum_c G1[k, i1, c] G2[c, i2]; scale alpha / r.
    B, G1, G2 = (ad.get(parts[p]) for p in ("mps_B", "mps_G1", "mps_G2"))
    r = B.shape[1]
    A = torch.einsum("kic,cj->kij", G1, G2).reshape(r, -1)
    alpha = ad.config.get("alpha", 8.0)
    update, is_zero = lora_update(B, A, lora_scaling(alpha, r, bool(ad.config.get("use_rslora"))))
    return update, r, "mps", is_zero
