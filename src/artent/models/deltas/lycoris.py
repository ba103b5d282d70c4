"""Readers of the LyCORIS kinds' updates: LoHa and LoKr (dense, peft 0.21 formulas)."""

from __future__ import annotations

import torch

from artent.models.deltas.common import stored_dtype
from artent.models.deltas.patterns import pattern_value

LOHA_FACTORS = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")


def loha_shape(ad, name, parts):
    if "hada_t1" in parts or "hada_t2" in parts:
        raise ValueError(f"adapter {ad.path}: module '{name}' is a convolution (LoHa CP form)")
    ad.need(name, parts, "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")
    return ad.shape(parts, "hada_w1_a")[0], ad.shape(parts, "hada_w1_b")[1]


def lycoris_scale(ad, name: str, r: int) -> float:
    # peft loha|lokr model.py, layer.py: r, alpha from rank_pattern / alpha_pattern; alpha / r
    return (
        pattern_value(
            ad.config.get("alpha_pattern"),
            name,
            ad.config.get("alpha", 8),
            what=f"adapter {ad.path}: alpha_pattern",
        )
        / r
    )


def loha_build(ad, name, parts):
    # peft loha/layer.py make_weight: ((w1_a @ w1_b) * (w2_a @ w2_b)) * alpha / r
    w1a, w1b, w2a, w2b = (ad.get(parts[p]).double() for p in LOHA_FACTORS)
    r = w1a.shape[1]
    delta = (w1a @ w1b) * (w2a @ w2b) * lycoris_scale(ad, name, r)
    delta = delta.to(stored_dtype(ad.ckpt, parts.values()))
    return delta, r, "loha", not delta.any()


def lokr_factor_shape(ad, name, parts, which: str) -> tuple[int, int]:
    if f"lokr_{which}" in parts:
        return ad.shape(parts, f"lokr_{which}")
    ad.need(name, parts, f"lokr_{which}_a", f"lokr_{which}_b")
    return ad.shape(parts, f"lokr_{which}_a")[0], ad.shape(parts, f"lokr_{which}_b")[1]


def lokr_shape(ad, name, parts):
    if "lokr_t2" in parts:
        raise ValueError(f"adapter {ad.path}: module '{name}' is a convolution (LoKr CP form)")
    (a, c), (b, d) = (lokr_factor_shape(ad, name, parts, w) for w in ("w1", "w2"))
    return a * b, c * d


def lokr_factor(ad, parts, which: str) -> torch.Tensor:
    if f"lokr_{which}" in parts:
        return ad.get(parts[f"lokr_{which}"]).double()
    return ad.get(parts[f"lokr_{which}_a"]).double() @ ad.get(parts[f"lokr_{which}_b"]).double()


def lokr_build(ad, name, parts):
    # peft lokr/layer.py: kron(w1, w2) * alpha / r, each w either full or w_a @ w_b; r is the
    # configured rank (rank_pattern) even where neither factor is decomposed.
    r = int(
        pattern_value(
            ad.config.get("rank_pattern"),
            name,
            ad.config.get("r", 8),
            what=f"adapter {ad.path}: rank_pattern",
        )
    )
    w1, w2 = lokr_factor(ad, parts, "w1"), lokr_factor(ad, parts, "w2")
    delta = torch.kron(w1, w2) * lycoris_scale(ad, name, r)
    delta = delta.to(stored_dtype(ad.ckpt, parts.values()))
    return delta, r, "lokr", not delta.any()
