"""Beyond the paper: what the study shows about intruder dimensions (a claim row and a figure).

Intruder dimensions (Shuttleworth et al., 2024, "LoRA vs Full Fine-tuning: An Illusion of
Equivalence"; docs/method.md, "Spectral companions") are not a claim of the paper artent
reproduces: they are a second lens on the same updates. The row states what the study's tables
show (LoRA against FFT on the same data) and says, in its name and statement, that it is beyond
the paper. It reads the ``intruders`` column of ``internal_summary.parquet``; a study written
before artent measured it has none, and the row says "not measured".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pandas as pd

from artent.report.checks import NotMeasured, g3, need_tables, rows_or_skip
from artent.report.plotting import empty_panel, new_figure, png_base64
from artent.report.tables import final_rows

if TYPE_CHECKING:
    from artent.report.tables import StudyTables
    from artent.report.thresholds import ClaimThresholds

__all__ = ["BEYOND_CLAIMS", "BEYOND_FIGURES", "intruders_figure"]


def _final_intruders(t: StudyTables) -> pd.DataFrame:
    """Trained modules at each run's final step, with a measured intruder count."""
    need_tables(t, "internal_summary")
    if "intruders" not in t.internal_summary:
        raise NotMeasured("internal_summary.parquet has no intruders column (an older study)")
    final = final_rows(t.run_meta(t.internal_summary))
    ok = (final.status == "ok") & (final.step.astype(float).fillna(-1) != 0)
    return final[ok & final.intruders.notna()]


def claim_intruders(t: StudyTables, th: ClaimThresholds) -> tuple[str, bool]:
    """Every LoRA run has more intruder dimensions per module than the FFT run on its data."""
    final = _final_intruders(t)
    fft = rows_or_skip(final[final.method == "fft"], "trained FFT module with intruder counts")
    lora = rows_or_skip(final[final.method == "lora"], "trained LoRA module with intruder counts")
    keys = ["data", "layer", "module"]
    pairs = lora.merge(fft[[*keys, "intruders"]], on=keys, suffixes=("", "_fft"))
    if pairs.empty:
        raise NotMeasured("no FFT run on the same data as a LoRA run")
    parts, ok = [], []
    for label, g in pairs.groupby("label", sort=False):
        mine, theirs = float(g.intruders.mean()), float(g.intruders_fft.mean())
        ok.append(mine > theirs)
        parts.append(f"{label}: {g3(mine)} vs FFT {g3(theirs)}")
    mps = final[final.method == "mps"]
    extra = f"; MPS {g3(float(mps.intruders.mean()))}" if len(mps) else ""
    measured = (
        "mean intruders per module (top 10 of W + dW, |cos| < 0.5; final step, "
        f"{len(pairs)} module pairs): " + "; ".join(parts) + extra
    )
    return measured, bool(all(ok))


def intruders_figure(t: StudyTables) -> str | None:
    """Mean intruder dimensions per module at the final step against the rank (LoRA, MPS), with
    each data set's FFT runs as horizontal lines (full rank)."""
    try:
        final = _final_intruders(t)
    except NotMeasured:
        return None
    rank = t.runs.set_index("name")["rank"] if "rank" in t.runs else pd.Series(dtype=float)
    final = final.assign(rank=final.label.map(rank).astype(float))
    fig, axes = new_figure(1, 1, w=5.5)
    ax = axes[0][0]
    if final.empty:
        empty_panel(ax, "no trained update with an intruder count")
        return png_base64(fig)
    for (method, data), g in final.groupby(["method", "data"], sort=False):
        if method == "fft":
            mean = float(g.intruders.mean())
            ax.axhline(mean, ls="--", lw=1, color="black", label=f"FFT, {data} ({mean:.2g})")
            continue
        stats = g.dropna(subset=["rank"]).groupby("rank").intruders.agg(["mean", "std"])
        ax.errorbar(
            stats.index, stats["mean"], yerr=stats["std"].fillna(0), fmt="o-", ms=4, capsize=3,
            label=f"{method}, {data}",
        )  # fmt: skip
    ranks = sorted(final["rank"].dropna().unique())
    if ranks:
        ax.set_xscale("log", base=2)
        ax.set_xticks(ranks, [str(int(r)) for r in ranks])
    ax.set_ylim(bottom=-0.3)
    ax.set(
        xlabel="rank r",
        ylabel="intruder dimensions per module",
        title="intruders of W + dW against W (final step)",
    )
    ax.legend(fontsize=6)
    return png_base64(fig)


#: Figures beyond the paper: key -> (title, caption, drawing function), as ``FIGURES`` holds them.
BEYOND_FIGURES: dict[str, tuple[str, str, Callable]] = {
    "intruders": (
        "Intruder dimensions against rank (beyond the paper)",
        "Among the top 10 left singular vectors of each module's merged weight W + dW at the final "
        "step, those whose largest |cos| with any singular vector of the base W is below 0.5 "
        "(Shuttleworth et al., 2024), mean over modules (error bars: std), for LoRA and MPS "
        "against their rank; dashed: FFT on each data set.",
        intruders_figure,
    ),
}

#: Claim rows beyond the paper, in the shape of ``artent.report.claims.CLAIMS``.
BEYOND_CLAIMS: tuple[tuple[str, str, str, Callable, str], ...] = (
    (
        "intruder dimensions (beyond the paper)",
        "Beyond the paper (Shuttleworth et al., 2024): LoRA's merged weights carry intruder "
        "dimensions, new top singular vectors that match none of the base's, more than full "
        "fine-tuning's do.",
        "for every LoRA run, against the FFT run on the same data (same layers and modules, final "
        "step): mean intruder count per module (top 10, |cos| < 0.5) of LoRA > that of FFT",
        claim_intruders,
        "intruders",
    ),
)
