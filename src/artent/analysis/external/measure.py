"""The attention profiles of a model on a corpus, layer by layer, and their tables.

Each layer's maps are profiled as the forward pass produces them (a hook per layer, see
:func:`artent.models.attention.read_attention`), in chunks of at most
``ExternalConfig.profile_chunk_elements`` map elements, and dropped: memory holds one layer's
maps of one batch of windows and one chunk's float64 states, whatever the depth and up to ``T``
in the thousands.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from artent.analysis.external.baseline import baseline_rows, scaling_baseline
from artent.analysis.external.config import ExternalConfig
from artent.analysis.external.encoding import encode
from artent.entanglement.batched import batched_matrix_profiles
from artent.entanglement.fits import compare_laws
from artent.entanglement.sites import prime_factors


def profiles(x, order: str | None):
    """Profiles ``[batch, bonds]`` of ``[batch, T, T]`` float64 amplitudes in a site order.

    ``order=None`` is the two-site chain ``[T, T]`` whose one bond is the row|column cut.
    """
    if order is None:
        t = x.shape[-1]
        return batched_matrix_profiles(x, dims=([t], [t]))
    return batched_matrix_profiles(x, order=order)


def _score_std_sums(attn):
    """Per matrix: the sum over query rows of ``var_j ln A[i, j]`` (``ddof=1``), and the row count.

    ``attn`` is ``[..., T, T]``; returns two numpy arrays of shape ``attn.shape[:-2]``. Only
    positive weights count: a causal map's masked keys (exactly zero) and weights that
    underflowed to zero are left out, as are rows with fewer than two such keys.
    """
    import torch

    logs = attn.to(torch.float64, copy=True)  # one float64 copy, then everything in place
    keep = logs > 0
    logs.log_().masked_fill_(~keep, 0.0)  # -inf at zero weights, then left out
    count = keep.sum(-1).double()
    first = logs.sum(-1)
    second = logs.square_().sum(-1)
    valid = count >= 2
    # One pass: var = (sum x^2 - (sum x)^2 / n) / (n - 1); log-weights are O(10), so float64
    # loses nothing to the subtraction.
    var = (second - first * first / count.clamp_min(1.0)) / (count - 1).clamp_min(1.0)
    var = torch.where(valid, var.clamp_min(0.0), 0.0)
    return var.sum(dim=-1).cpu().numpy(), valid.sum(dim=-1).cpu().numpy()


class _Measurements:
    """Per-layer profiles, cut entropies and score statistics, filled batch by batch."""

    def __init__(self, cfg: ExternalConfig, n_layers: int, *, causal_model: bool) -> None:
        self.cfg = cfg
        # A causal model's attention on the first t tokens is the leading t x t block of its
        # attention on T (query i sees keys <= i only, in every layer): no forward pass at t.
        self.shorter_from_blocks = causal_model
        self.combos = [(e, o) for e in cfg.encodings for o in cfg.orders]
        self.profiles: dict[tuple[str, str], list[list[np.ndarray]]] = {
            c: [[] for _ in range(n_layers)] for c in self.combos
        }
        self.cuts: dict[tuple[str, int], list[list[np.ndarray]]] = {
            (e, t): [[] for _ in range(n_layers)]
            for e in cfg.encodings
            for t in cfg.scaling_lengths
        }
        self.var_sum: list[Any] = [0.0] * n_layers
        self.row_count: list[Any] = [0] * n_layers
        # per layer, the sum over windows of each head's sink share (mean over i >= 1 of A[i, 0])
        self.sink_sum: list[Any] = [0.0] * n_layers
        self.n_windows: list[int] = [0] * n_layers
        self.causal = True

    def _chunks(self, weights):
        b, h, t, _ = weights.shape
        mats = weights.reshape(b * h, t, t)
        if self.cfg.device is not None:
            mats = mats.to(self.cfg.device)
        step = self.cfg.maps_per_chunk(t)
        for start in range(0, b * h, step):
            yield mats[start : start + step]

    def full_length(self, layer: int, weights) -> None:
        """Everything at ``T = seq_len``: the profiles in each encoding and order, and more."""
        b, h, t, _ = weights.shape
        want_cut = t in self.cfg.scaling_lengths
        seq_cut = len(prime_factors(t))  # the row|column bond of the sequential chain
        parts: dict[Any, list[np.ndarray]] = {
            k: [] for k in (*self.combos, *self.cfg.encodings, "var", "rows", "sink")
        }
        for block in self._chunks(weights):  # every temporary below is at most a chunk
            self.causal = self.causal and not bool(block.triu(1).any())
            var, rows = _score_std_sums(block)
            parts["var"].append(var)
            parts["rows"].append(rows)
            parts["sink"].append(block[:, 1:, 0].double().mean(dim=-1).cpu().numpy())
            for encoding in self.cfg.encodings:
                x = encode(block, encoding)
                for order in self.cfg.orders:
                    prof = profiles(x, order)
                    parts[encoding, order].append(prof)
                    if order == "sequential":
                        parts[encoding].append(prof[:, seq_cut - 1])
                if want_cut and "sequential" not in self.cfg.orders:
                    parts[encoding].append(profiles(x, None)[:, 0])
        for key, total in (
            ("var", self.var_sum),
            ("rows", self.row_count),
            ("sink", self.sink_sum),
        ):
            total[layer] = total[layer] + np.concatenate(parts[key]).reshape(b, h).sum(axis=0)
        self.n_windows[layer] += b
        for combo in self.combos:
            self.profiles[combo][layer].append(np.concatenate(parts[combo]).reshape(b, h, -1))
        if want_cut:
            for encoding in self.cfg.encodings:
                self.cuts[encoding, t][layer].append(np.concatenate(parts[encoding]).reshape(b, h))
        if self.shorter_from_blocks:
            for short in self.cfg.scaling_lengths:
                if short < t:
                    self.cut_only(short)(layer, weights[..., :short, :short])

    def cut_only(self, t: int) -> Callable[[int, Any], None]:
        """A layer consumer for a shorter length ``t``: the row|column entropy only."""

        def consume(layer: int, weights) -> None:
            b, h = weights.shape[:2]
            for encoding in self.cfg.encodings:
                got = [
                    profiles(encode(block, encoding), None)[:, 0] for block in self._chunks(weights)
                ]
                self.cuts[encoding, t][layer].append(np.concatenate(got).reshape(b, h))

        return consume


def _mean_std(chunks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread (``ddof=1``; zero for one window) over windows, axis 0 of the chunks."""
    per_text = np.concatenate(chunks, axis=0)
    mean = per_text.mean(axis=0)
    std = per_text.std(axis=0, ddof=1) if per_text.shape[0] > 1 else np.zeros_like(mean)
    return mean, std


def _batch_for(model: Any, cfg: ExternalConfig, t: int) -> int:
    """Windows per forward pass: ``cfg.batch_size``, fewer where one layer's maps would be big."""
    from artent.models.attention import text_config, transformers_model

    config = text_config(transformers_model(model).config)
    heads = next(
        (
            getattr(config, k)
            for k in ("num_attention_heads", "n_head", "num_heads")
            if isinstance(getattr(config, k, None), int)
        ),
        1,
    )
    return max(1, min(cfg.batch_size, cfg.max_map_elements // (heads * t * t)))


def measure_attention(model: Any, ids, cfg: ExternalConfig):
    """Profiles of every layer's maps on the windows ``ids`` ``[n, T]``; see :func:`run_external`.

    Returns:
        ``(measurements, layers)``: the filled :class:`_Measurements` and the model's
        :class:`~artent.models.attention.AttentionLayer` list.
    """
    from artent.models.attention import attention_layers, read_attention

    layers = attention_layers(model)
    # Is the model causal? Read off the maps of one short window (exact zeros above the diagonal
    # in every layer), then checked again on every full-length map.
    probe = {"causal": True}

    def check(_layer: int, weights) -> None:
        probe["causal"] = probe["causal"] and not bool(weights.triu(1).any())

    read_attention(model, ids[:1, : min(cfg.seq_len, 16)], check)
    found = _Measurements(cfg, len(layers), causal_model=probe["causal"])
    batch = _batch_for(model, cfg, cfg.seq_len)
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        read_attention(model, chunk, found.full_length)
        if not probe["causal"]:
            for t in cfg.scaling_lengths:
                if t != cfg.seq_len:
                    read_attention(model, chunk[:, :t], found.cut_only(t))
    if found.causal != probe["causal"]:
        raise ValueError(
            "model: its attention is causal on 16 tokens but not on seq_len= tokens; artent "
            "cannot tell which scaling to report"
        )
    return found, layers


def _columns(n: int, meta: dict, **arrays) -> dict:
    return {**{k: [v] * n for k, v in meta.items()}, **arrays}


def _profile_frame(mean, std, site, cfg: ExternalConfig, meta: dict, kind: dict, key) -> Any:
    """The ``external`` rows of one layer in one encoding and order: mean profile per head."""
    import pandas as pd

    encoding, order = key
    n_heads, n_bonds = mean.shape
    n = n_heads * n_bonds
    return pd.DataFrame(
        _columns(
            n,
            meta,
            T=np.full(n, cfg.seq_len),
            layer=np.full(n, site.index),
            head=np.repeat(np.arange(n_heads), n_bonds),
            encoding=[encoding] * n,
            order=[order] * n,
            bond=np.tile(np.arange(1, n_bonds + 1), n_heads),
            entropy=mean.ravel(),
            std=std.ravel(),
            **{k: [v] * n for k, v in kind.items()},
        )
    )


def _summary_rows(mean, site, cfg: ExternalConfig, meta: dict, kind: dict, key, beta_fit, sink):
    """The ``external_summary`` rows of one layer in one encoding and order: each head's Cardy
    fit and law comparison, middle-bond entropy, fitted beta and sink share."""
    encoding, order = key
    n_bonds = mean.shape[1]
    rows = []
    for head, prof in enumerate(mean):
        laws = compare_laws(prof, boundary=cfg.boundary)
        rows.append(
            dict(
                meta,
                T=cfg.seq_len,
                layer=site.index,
                head=head,
                encoding=encoding,
                order=order,
                c=laws.cardy.c,
                c0=laws.cardy.c0,
                r2=laws.cardy.r2,
                law=laws.best,
                delta_aic=laws.delta_aic,
                center_entropy=prof[(n_bonds + 1) // 2 - 1],
                beta_fit=beta_fit[head],
                sink_share=sink[head],
                **kind,
            )
        )
    return rows


def _scaling_frame(mean, std, site, meta: dict, kind: dict, key) -> Any:
    """The ``scaling`` rows of one layer in one encoding at one length ``t``: the row|column
    entropy per head."""
    import pandas as pd

    encoding, t = key
    n = len(mean)
    return pd.DataFrame(
        _columns(
            n,
            meta,
            layer=np.full(n, site.index),
            head=np.arange(n),
            encoding=[encoding] * n,
            T=np.full(n, t),
            ln_T=np.full(n, math.log(t)),
            cut_entropy=mean,
            std=std,
            **{k: [v] * n for k, v in kind.items()},
        )
    )


def build_tables(found: _Measurements, layers: Sequence, cfg: ExternalConfig, meta: dict):
    """The ``external``, ``external_summary`` and ``scaling`` tables (pandas) of a measurement,
    and the median fitted beta (the random baseline's)."""
    import pandas as pd

    ext, summary, scaling = [], [], []
    beta_fit = [
        np.sqrt(found.var_sum[i] / np.maximum(found.row_count[i], 1)) for i in range(len(layers))
    ]
    for site in layers:
        i = site.index
        kind = dict(causal=found.causal, local=site.local, window=site.window)
        sink = found.sink_sum[i] / max(found.n_windows[i], 1)
        for key, per_layer in found.profiles.items():
            mean, std = _mean_std(per_layer[i])  # [heads, bonds]
            ext.append(_profile_frame(mean, std, site, cfg, meta, kind, key))
            summary += _summary_rows(mean, site, cfg, meta, kind, key, beta_fit[i], sink)
        for key, per_layer in found.cuts.items():
            mean, std = _mean_std(per_layer[i])  # [heads]
            scaling.append(_scaling_frame(mean, std, site, meta, kind, key))
    fitted = float(np.median(np.concatenate(beta_fit)))
    tables = {
        "external": pd.concat(ext, ignore_index=True),
        "external_summary": pd.DataFrame(summary),
        "scaling": pd.concat(scaling, ignore_index=True),
    }
    for name in tables:
        if "window" in tables[name]:
            tables[name]["window"] = tables[name]["window"].astype("Int64")
    return tables, fitted


def run_external(
    model: Any,
    tokenizer: Any,
    texts: Any,
    cfg: ExternalConfig,
    *,
    step: int | None = None,
    label: str | None = None,
    notify: Callable[[str], None] | None = None,
) -> dict:
    """Attention entanglement profiles, their Cardy fits, length scaling and baselines.

    Args:
        model: a transformers model whose attention returns maps under eager attention (causal
            LMs, encoder-only models such as BERT), or a PeftModel around one; switched to eager
            attention for the forward passes, then restored.
        tokenizer: its tokenizer.
        texts: the corpus: a :class:`~artent.data.corpus.Corpus`, a list of documents, or
            :class:`~artent.data.corpus.CorpusWindows` already cut; at most ``cfg.n_texts``
            windows of ``cfg.seq_len`` tokens are read (:func:`~artent.data.corpus.corpus_windows`).
        cfg: :class:`ExternalConfig`.
        step: training step of the checkpoint (a column of every table).
        label: run label, e.g. ``"lora r=8"`` (a column of every table).
        notify: receives the one-line note when the corpus gives fewer windows than
            ``cfg.n_texts`` (default: ``warnings.warn``).

    Returns:
        pandas DataFrames (entropies in nats); every table also carries ``causal`` (the model's
        maps are causal: nothing above the diagonal) and, per layer, ``local`` (a sliding-window
        layer) and ``window`` (its width in tokens; missing for global layers):

        * ``external``: ``step, label, T, layer, head, encoding, order, bond, entropy, std``:
          the mean over windows of the per-window profile and its standard deviation.
        * ``external_summary``: ``step, label, T, layer, head, encoding, order, c, c0, r2, law,
          delta_aic, center_entropy, beta_fit``: the Cardy fit and law comparison
          (:func:`compare_laws`) of the mean profile, its entropy at the middle bond ``N // 2``
          (the row|column cut in sequential order), the head's fitted inverse temperature and
          its ``sink_share`` (the mean over windows and queries ``i >= 1`` of ``A[i, 0]``).
        * ``scaling``: ``step, label, layer, head, encoding, T, ln_T, cut_entropy, std``: the
          row|column entropy of the attention computed on the first ``T`` tokens.
        * ``baseline``: ``step, label, encoding, order, beta, beta_source, T, bond, entropy,
          std, c, c0, r2``: random attention ``softmax(beta * G)`` of the same ``T``, causal
          where the model is.
        * ``scaling_baseline``: ``step, label, layer, head, encoding, beta, T, ln_T,
          cut_entropy``: random attention at each head's fitted ``beta`` (first encoding and
          order's fit), its row|column entropy at each scaling length (the random-matrix
          prediction of the sequence-length reading; empty when
          ``cfg.scaling_baseline_samples`` is 0).

        Every table carries ``window_start``: how the windows began.

    Raises:
        ValueError: a corpus shorter than one window (its token count named), a model that gives
            no attention maps (:class:`~artent.models.attention.AttentionUnavailable`).
    """
    import pandas as pd

    from artent.data.corpus import CorpusWindows, corpus_windows

    if isinstance(texts, CorpusWindows):
        windows = texts
        if windows.seq_len != cfg.seq_len:
            raise ValueError(
                f"texts: windows of {windows.seq_len} tokens given for seq_len={cfg.seq_len}"
            )
    else:
        windows = corpus_windows(tokenizer, texts, cfg.seq_len, cfg.n_texts, start=cfg.window_start)
    if windows.note is not None:
        (notify or (lambda msg: warnings.warn(msg, stacklevel=3)))(windows.note)
    found, layers = measure_attention(model, windows.ids, cfg)
    meta = {"step": step, "label": label}
    tables, fitted = build_tables(found, layers, cfg, meta)
    baseline = pd.DataFrame(baseline_rows(cfg, fitted, meta, causal=found.causal))
    baseline["causal"] = found.causal
    tables["baseline"] = baseline
    tables["scaling_baseline"] = scaling_baseline(
        tables["external_summary"], cfg, meta, causal=found.causal
    )
    for frame in tables.values():  # how the windows began: a column of every table
        frame["window_start"] = windows.window_start
    return tables


def tokenize_texts(tokenizer: Any, texts: Any, seq_len: int, n_texts: int | None = None):
    """The corpus's first ``n_texts`` windows of ``seq_len`` tokens, ``[n, seq_len]`` ids.

    Kept for callers of the per-text reader it replaces; see
    :func:`artent.data.corpus.corpus_windows`.
    """
    from artent.data.corpus import corpus_windows

    return corpus_windows(tokenizer, texts, seq_len, n_texts).ids
