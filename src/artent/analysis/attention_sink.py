"""The attention sink: how much of each head's attention goes to the first token.

Pretrained LLMs park much of their attention on the first token of a window (the "attention
sink"); a model whose attention is close to random (artent's 3M toy) does not. The share is what
a real LLM shows and the toy cannot, so the study measures it beside the entanglement profiles.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from artent.data.corpus import DEFAULT_WINDOW_START, corpus_windows
from artent.models.attention import read_attention

__all__ = ["SINK_FILE", "attention_sink", "sink_shares", "sink_table", "uniform_share"]

#: the file of the sink table in a study's base-attention folder
SINK_FILE = "sink.parquet"


def uniform_share(seq_len: int) -> float:
    """The sink share of uniform causal attention, ``mean_i 1/(i+1)`` over ``i = 1..T-1``: the
    share with no sink at all."""
    return float(np.mean(1.0 / np.arange(2, seq_len + 1)))


def sink_table(summary: Any):
    """The attention-sink table read off an ``external_summary`` (its ``sink_share`` per head,
    measured on the same windows as its profiles), so no second forward pass is needed.

    Returns:
        DataFrame ``step, label, T, layer, head, sink_share, uniform_share, window_start``, one
        row per (layer, head), as :func:`attention_sink` returns it.
    """
    heads = summary.drop_duplicates(["layer", "head"])
    cols = ["step", "label", "T", "layer", "head", "sink_share"]
    out = heads[cols].reset_index(drop=True)
    out["uniform_share"] = [uniform_share(int(t)) for t in out["T"]]
    out["window_start"] = heads["window_start"].to_numpy()
    return out


def sink_shares(attn: Any) -> np.ndarray:
    """Share of attention mass on key 0, per layer and head.

    Args:
        attn: ``[layers, batch, heads, T, T]`` attention (rows sum to one), as
            :func:`artent.models.attention.attention_maps` returns.

    Returns:
        ``[layers, heads]`` float64: the mean over windows and over query positions ``i >= 1``
        of ``A[i, 0]`` (query 0 can attend only to itself, so it is left out). A uniform causal
        row gives ``1 / (i + 1)``; a head that attends only to the first token gives 1.
    """
    import torch

    a = torch.as_tensor(attn)
    if a.ndim != 5 or a.shape[-1] != a.shape[-2] or a.shape[-1] < 2:
        raise ValueError(
            f"attention: expected [layers, batch, heads, T, T] with T >= 2, got {a.shape}"
        )
    first = a[..., 1:, 0].double()  # [layers, batch, heads, T - 1]
    return first.mean(dim=(1, 3)).cpu().numpy()


def attention_sink(
    model: Any,
    tokenizer: Any,
    texts: Any,
    *,
    seq_len: int,
    n_texts: int | None = None,
    batch_size: int = 4,
    step: int | None = None,
    label: str | None = None,
    window_start: str = DEFAULT_WINDOW_START,
):
    """The attention-sink table of a model on texts: one row per (layer, head).

    Args:
        model: a transformers causal LM (or a PeftModel around one).
        tokenizer: its tokenizer.
        texts: the corpus (a :class:`~artent.data.corpus.Corpus` or a list of documents), cut
            into windows by :func:`~artent.data.corpus.corpus_windows`.
        seq_len: tokens per window ``T``.
        n_texts: the most windows to use (the first ones); ``None``: all.
        batch_size: windows per forward pass.
        step, label: columns identifying the checkpoint.
        window_start: how each window starts (:mod:`artent.data.corpus`); a column of the table.

    Returns:
        DataFrame ``step, label, T, layer, head, sink_share, uniform_share``; ``uniform_share``
        is the same mean for uniform causal attention (``mean_i 1/(i+1)``, ``i = 1..T-1``): the
        share with no sink at all.
    """
    import pandas as pd

    ids = corpus_windows(tokenizer, texts, seq_len, n_texts, start=window_start).ids
    total: dict[int, np.ndarray] = {}

    def add(layer: int, weights) -> None:  # one layer's maps at a time: bounded memory
        shares = sink_shares(weights[None])[0] * weights.shape[0]
        total[layer] = total[layer] + shares if layer in total else shares

    for start in range(0, len(ids), batch_size):
        read_attention(model, ids[start : start + batch_size], add)
    share = np.stack([total[i] for i in range(len(total))]) / len(ids)
    uniform = uniform_share(seq_len)
    layers, heads = np.meshgrid(np.arange(share.shape[0]), np.arange(share.shape[1]), indexing="ij")
    return pd.DataFrame(
        dict(
            step=step,
            label=label,
            T=seq_len,
            layer=layers.ravel(),
            head=heads.ravel(),
            sink_share=share.ravel(),
            uniform_share=uniform,
            window_start=window_start,
        )
    )
