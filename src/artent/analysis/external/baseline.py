"""The random-attention baseline of the external analysis (docs/method.md, random baselines)."""

from __future__ import annotations

from typing import Any

import numpy as np

from artent.analysis.external.config import ExternalConfig
from artent.analysis.external.encoding import encode
from artent.entanglement.batched import batched_matrix_profiles
from artent.entanglement.fits import fit_cardy
from artent.entanglement.rmt import random_attention


def random_attention_profiles(
    T: int,
    beta: float,
    *,
    samples: int,
    seed: int,
    encoding: str,
    order: str,
    device: Any = None,
    causal: bool = True,
) -> np.ndarray:
    """Per-sample profiles of random attention in either site order, ``[samples, bonds]``.

    Draws exactly the matrices :func:`~artent.entanglement.rmt.random_attention_profile` draws for
    the same ``seed`` and ``causal`` (one ``numpy.random.default_rng(seed)``, one ``T x T``
    Gaussian per sample), so in sequential order its mean is that function's ``mean``.
    """
    import torch

    rng = np.random.default_rng(seed)
    mats = np.stack([random_attention(T, beta, causal=causal, rng=rng) for _ in range(samples)])
    x = encode(torch.from_numpy(mats), encoding)
    return batched_matrix_profiles(x, order=order, device=device)


def baseline_rows(
    cfg: ExternalConfig, fitted_beta: float, meta: dict, *, causal: bool = True
) -> list[dict]:
    """Rows of the ``baseline`` table: the beta grid and the fitted beta, per encoding and order.

    Each beta's matrices are drawn once, as
    :func:`~artent.entanglement.rmt.random_attention_profile` draws them for ``cfg.seed``, and
    profiled in every encoding and order, so the sequential rows are that function's mean
    profile and Cardy fit. ``causal=False`` (an encoder's maps) draws the
    non-causal softmax over every key.
    """
    import torch

    rows = []
    betas = [(b, "grid") for b in cfg.baseline_betas] + [(fitted_beta, "fitted")]
    t = cfg.seq_len
    step = cfg.maps_per_chunk(t)  # at most a chunk of matrices held
    for beta, source in betas:
        rng = np.random.default_rng(cfg.seed)
        parts: dict[tuple[str, str], list[np.ndarray]] = {
            (e, o): [] for e in cfg.encodings for o in cfg.orders
        }
        for start in range(0, cfg.baseline_samples, step):  # drawn in order, a chunk at a time
            draws = [
                random_attention(t, beta, causal=causal, rng=rng)
                for _ in range(min(step, cfg.baseline_samples - start))
            ]
            mats = torch.from_numpy(np.stack(draws))
            del draws
            for encoding in cfg.encodings:
                x = encode(mats, encoding)
                for order in cfg.orders:
                    parts[encoding, order].append(
                        batched_matrix_profiles(x, order=order, device=cfg.device)
                    )
        for encoding in cfg.encodings:
            for order in cfg.orders:
                prof = np.concatenate(parts[encoding, order])
                mean = prof.mean(axis=0)
                std = prof.std(axis=0, ddof=1) if len(prof) > 1 else np.zeros_like(mean)
                fit = fit_cardy(mean, cfg.boundary)
                for bond, (m, s) in enumerate(zip(mean, std, strict=True), start=1):
                    rows.append(
                        dict(
                            meta,
                            encoding=encoding,
                            order=order,
                            beta=beta,
                            beta_source=source,
                            T=cfg.seq_len,
                            bond=bond,
                            entropy=float(m),
                            std=float(s),
                            c=fit.c,
                            c0=fit.c0,
                            r2=fit.r2,
                        )
                    )
    return rows


def scaling_baseline(summary, cfg: ExternalConfig, meta: dict, *, causal: bool = True):
    """The random-matrix prediction of the sequence-length reading, head by head.

    For every (layer, head) of ``summary`` (the ``external_summary`` table) and every length
    ``T`` of ``cfg.scaling_lengths``: ``cfg.scaling_baseline_samples`` random attention matrices
    ``softmax(beta * G)`` at that head's fitted inverse temperature ``beta_fit`` (causal where
    the model is), and the mean of their row|column entropy (the two-site chain ``[T] x [T]``)
    in each encoding, measured as the model's maps are. Seeded by ``cfg.seed``.

    Returns:
        DataFrame ``step, label, layer, head, encoding, beta, T, ln_T, cut_entropy`` (empty, with
        these columns, when ``cfg.scaling_baseline_samples`` is 0).
    """
    import math

    import pandas as pd
    import torch

    columns = [*meta, "layer", "head", "encoding", "beta", "T", "ln_T", "cut_entropy"]
    n = cfg.scaling_baseline_samples
    heads = summary.drop_duplicates(["layer", "head"])[["layer", "head", "beta_fit"]]
    if not n or heads.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    betas = heads.beta_fit.to_numpy(float)
    for t in cfg.scaling_lengths:
        rng = np.random.default_rng([cfg.seed, t])
        draws = np.repeat(betas, n)  # n matrices a head, drawn in this order
        step = cfg.maps_per_chunk(t)  # at most a chunk of matrices held
        cuts: dict[str, list[np.ndarray]] = {e: [] for e in cfg.encodings}
        for i in range(0, len(draws), step):
            mats = torch.from_numpy(
                np.stack(
                    [random_attention(t, b, causal=causal, rng=rng) for b in draws[i : i + step]]
                )
            )
            for encoding in cfg.encodings:
                x = encode(mats, encoding)
                cuts[encoding].append(
                    batched_matrix_profiles(x, dims=([t], [t]), device=cfg.device)[:, 0]
                )
        for encoding in cfg.encodings:
            cut = np.concatenate(cuts[encoding]).reshape(len(betas), n)
            for (layer, head, beta), value in zip(
                heads.itertuples(index=False), cut.mean(axis=1), strict=True
            ):
                rows.append(
                    dict(
                        meta,
                        layer=int(layer),
                        head=int(head),
                        encoding=encoding,
                        beta=float(beta),
                        T=t,
                        ln_T=math.log(t),
                        cut_entropy=float(value),
                    )
                )
    return pd.DataFrame(rows, columns=columns)
