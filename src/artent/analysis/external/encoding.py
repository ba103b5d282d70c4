"""How an attention map becomes a state: shared by the measurement of a model's maps
(``measure``) and of random ones (``baseline``)."""

from __future__ import annotations


def encode(attn, encoding: str):
    """``[..., T, T]`` attention maps as float64 amplitudes of the chosen encoding."""
    import torch  # lazy: the analyses' modules import without torch

    if encoding != "born":
        return attn.double()
    # A copy of our own, then in place: eager softmax rounding can leave -0.0; never NaN.
    return attn.to(torch.float64, copy=True).clamp_min_(0.0).sqrt_()
