"""Figures of the base model's own attention (the study's ``attention/`` tables).

What a real pretrained LLM shows and a near-random toy cannot: the attention sink, the profile and
the central charge layer by layer, and the scaling of the cut entropy with the sequence length up
to the longest ``T`` of the study. Each function returns a base64 PNG or ``None`` when its tables
are missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from artent.report.plotting import new_figure, png_base64

if TYPE_CHECKING:
    from artent.report.tables import StudyTables


def sink_figure(t: StudyTables) -> str | None:
    """Share of attention on the first token per layer, one line per window length T."""
    if t.sink is None or t.sink.empty:
        return None
    fig, axes = new_figure(1, 1, w=6.0)
    ax = axes[0][0]
    for k, (T, g) in enumerate(t.sink.groupby("T")):
        per = g.groupby("layer").sink_share
        mean, lo, hi = per.mean(), per.min(), per.max()
        ax.plot(mean.index, mean.values, "o-", ms=3, color=f"C{k}", label=f"T = {T}: mean of heads")
        ax.fill_between(mean.index, lo.values, hi.values, color=f"C{k}", alpha=0.15)
        ax.axhline(g.uniform_share.iloc[0], ls=":", color=f"C{k}", label=f"uniform, T = {T}")
    ax.set(xlabel="layer", ylabel="attention share on token 0", ylim=(0, 1.02))
    ax.set_title("attention sink (base model)")
    ax.legend(fontsize=7)
    return png_base64(fig)


def layers_figure(t: StudyTables) -> str | None:
    """Heat map of the profile per layer, and c per layer, at the longest T of the base stage."""
    from artent.entanglement.rmt import page_profile
    from artent.entanglement.sites import prime_factors

    ext, summ = t.base_external, t.base_external_summary
    if ext is None or ext.empty or summ is None or summ.empty:
        return None
    T = int(ext["T"].max())
    ext = ext[(ext["T"] == T) & (ext.encoding == "amplitude") & (ext.order == "sequential")]
    summ = summ[(summ["T"] == T) & (summ.encoding == "amplitude") & (summ.order == "sequential")]
    grid = ext.groupby(["layer", "bond"]).entropy.mean().unstack("bond")
    fig, axes = new_figure(1, 2, w=5.4)
    ax = axes[0][0]
    image = ax.imshow(grid.to_numpy(), aspect="auto", origin="lower", cmap="viridis")
    ax.set_xticks(range(len(grid.columns)), [str(b) for b in grid.columns], fontsize=6)
    ax.set(xlabel="bond l", ylabel="layer", title=f"S_l per layer, T = {T} (nats)")
    page = page_profile(prime_factors(T) * 2)
    fig.colorbar(image, ax=ax, label=f"S_l (Page curve at the cut: {page.max():.2f})")
    ax = axes[0][1]
    per = summ.groupby("layer").c
    ax.plot(per.mean().index, per.mean().values, "o-", ms=3, label="mean c over heads")
    ax.fill_between(per.mean().index, per.min().values, per.max().values, alpha=0.2)
    wins = summ.assign(win=summ.law == "area+log").groupby("layer").win.mean()
    twin = ax.twinx()
    twin.plot(wins.index, wins.values, "s:", ms=3, color="C3", label="area+log wins (share)")
    twin.set(ylabel="share of heads where area+log wins", ylim=(0, 1.05))
    ax.set(xlabel="layer", ylabel="central charge c", title=f"Cardy fit per layer, T = {T}")
    ax.legend(fontsize=7, loc="upper left")
    twin.legend(fontsize=7, loc="upper right")
    return png_base64(fig)


def length_scaling_figure(t: StudyTables) -> str | None:
    """Cut entropy against ln N with the Cardy and volume-law lines (base model, amplitude)."""
    from artent.entanglement.sites import prime_factors
    from artent.report.tables import length_scaling_fit

    sc = t.base_scaling if t.base_scaling is not None and len(t.base_scaling) else t.scaling
    if sc is None or sc.empty:
        return None
    mean = sc[sc.encoding == "amplitude"].groupby("T").cut_entropy.mean().sort_index()
    if len(mean) < 2:
        return None
    T, y = mean.index.to_numpy(float), mean.to_numpy(float)
    n_sites = np.array([2 * len(prime_factors(int(x))) for x in T], dtype=float)
    fig, axes = new_figure(1, 1, w=6.0)
    ax = axes[0][0]
    ax.plot(np.log(n_sites), y, "o", color="C0", label="measured (mean of layers, heads)")
    if len(mean) >= 3:
        f = length_scaling_fit(T, y)
        x = np.log(n_sites)
        kc, bc = f["cardy_coef"]
        kv, bv = f["volume_coef"]
        ax.plot(
            x,
            kc * x + bc,
            "-",
            color="C0",
            label=f"Cardy: c = {f['c']:.2f}, R^2 {f['r2_cardy']:.3f}",
        )
        ax.plot(x, kv * np.log(T) + bv, "--", color="C1", label=f"volume: R^2 {f['r2_volume']:.3f}")
    ax.plot(np.log(n_sites), np.log(T), ":", color="grey", label="ln T (maximum)")
    baseline = t.base_baseline
    if baseline is not None and len(baseline):
        b = baseline[(baseline.encoding == "amplitude") & (baseline.beta_source == "fitted")]
        if len(b):
            ax.plot([], [], " ", label=f"random attention (fitted beta): c = {b.c.mean():.2f}")
    ax.set_xticks(np.log(n_sites), [f"{int(a)}" for a in T])
    ax.set(xlabel="T (axis: ln N, N = 2 log2 T sites)", ylabel="row|column S (nats)")
    ax.set_title("attention entropy against sequence length")
    ax.legend(fontsize=7)
    return png_base64(fig)
