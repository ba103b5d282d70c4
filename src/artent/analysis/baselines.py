"""The random-matrix study: what the paper's claims look like for random updates and attention.

This is the smallest complete measurement artent makes, with no model at all: random LoRA
updates at several ranks and a full-rank random update (the stand-in for FFT) profiled exactly and
drawn over their random-matrix predictions, plus the random-attention baseline and its Cardy fit.
It is the baseline every later analysis is drawn over.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from math import log
from pathlib import Path

import numpy as np

from artent.entanglement import LowRank, entanglement_profile, fit_volume, matrix_layout, valley
from artent.entanglement.rmt import page_profile, random_attention_profile, random_lora_profile
from artent.folders.atomic import pyplot, save_figure


@dataclass
class BaselineStudyConfig:
    """Options of the random-matrix study.

    Args:
        rows: rows of the update (``m``).
        cols: columns of the update (``n``).
        ranks: LoRA ranks to sample.
        seed: seed of every random draw.
        attention_T: sequence length of the random-attention baseline.
        attention_betas: inverse temperatures of the random-attention baseline.
        attention_samples: Monte Carlo samples per ``beta``.
    """

    rows: int = 1024
    cols: int = 1024
    ranks: list[int] = field(default_factory=lambda: [2, 8, 32])
    seed: int = 0
    attention_T: int = 64
    attention_betas: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0, 4.0])
    attention_samples: int = 8

    def __post_init__(self) -> None:
        if self.rows < 2 or self.cols < 2:
            raise ValueError(f"rows and cols must be >= 2, got {self.rows} x {self.cols}")
        if not self.ranks or min(self.ranks) < 1:
            raise ValueError(f"ranks must be positive integers, got {self.ranks}")


def run_baseline_study(cfg: BaselineStudyConfig) -> dict:
    """Profile random updates and random attention; return tidy tables (pandas DataFrames).

    Returns:
        ``{"profiles": ..., "summary": ..., "attention": ...}``: ``profiles`` has one row per
        (kind, rank, bond) with the measured entropy and its prediction (nats); ``summary`` one
        row per update with the valley metrics; ``attention`` one row per (beta, bond).
    """
    import pandas as pd

    rng = np.random.default_rng(cfg.seed)
    layout = matrix_layout((cfg.rows, cfg.cols))
    cut = layout.cut
    rows, summary = [], []
    page = page_profile(layout.dims)
    updates = [("fft-like (full rank)", None, rng.standard_normal((cfg.rows, cfg.cols)), page)]
    for r in cfg.ranks:
        B, A = rng.standard_normal((cfg.rows, r)), rng.standard_normal((r, cfg.cols))
        pred = random_lora_profile(layout.row_dims, layout.col_dims, r)
        updates.append((f"lora r={r}", r, LowRank(B, A), pred))
    for kind, r, x, pred in updates:
        prof = entanglement_profile(x)
        for l, (s, p) in enumerate(zip(prof, pred, strict=True), start=1):
            rows.append(dict(kind=kind, rank=r, bond=l, entropy=s, prediction=p, page=page[l - 1]))
        v = valley(prof, cut, rank=r, dims=layout.dims)
        window = range(cut - 2, cut + 3)
        vol = fit_volume(prof, exclude=window)
        summary.append(
            dict(
                kind=kind,
                rank=r,
                center_entropy=v.center_entropy,
                ln_rank=log(r) if r else None,
                within_bound=v.within_bound,
                valley_depth=v.depth,
                valley_ratio=v.ratio,
                volume_slope=vol.slope,
                max_abs_error_vs_prediction=float(np.max(np.abs(prof - pred))),
            )
        )
    att = []
    for beta in cfg.attention_betas:
        rnd = random_attention_profile(
            cfg.attention_T, beta, samples=cfg.attention_samples, seed=cfg.seed
        )
        for l, (m, s) in enumerate(zip(rnd.mean, rnd.std, strict=True), start=1):
            att.append(dict(beta=beta, T=cfg.attention_T, bond=l, entropy=m, std=s, c=rnd.c))
    return {
        "profiles": pd.DataFrame(rows),
        "summary": pd.DataFrame(summary),
        "attention": pd.DataFrame(att),
        "config": asdict(cfg),
        "cut": cut,
    }


def plot_baseline_study(result: dict, path: str | Path) -> Path:
    """Internal profiles over their predictions, and random attention profiles (PNG)."""
    plt = pyplot()

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    prof = result["profiles"]
    for kind, g in prof.groupby("kind", sort=False):
        line = ax1.plot(g.bond, g.entropy, "o-", ms=3, label=kind)[0]
        ax1.plot(g.bond, g.prediction, "--", color=line.get_color(), lw=1)
    ax1.axvline(result["cut"], color="grey", lw=0.8, ls=":")
    ax1.set(xlabel="bond l", ylabel="S_l (nats)", title="random updates (dashed: RMT prediction)")
    ax1.legend(fontsize=8)
    for beta, g in result["attention"].groupby("beta"):
        ax2.errorbar(
            g.bond,
            g.entropy,
            g["std"],
            marker="o",
            ms=3,
            capsize=2,
            label=f"beta={beta:g}, c={g.c.iloc[0]:.2f}",
        )
    ax2.set(xlabel="bond l", ylabel="S_l (nats)", title="random causal attention (amplitude)")
    ax2.legend(fontsize=8)
    return save_figure(fig, path)
