"""The report's figures, drawn from a study's tables (``StudyTables``) as base64 PNG strings.

Each ``*_figure`` function returns the PNG (base64, no ``data:`` prefix), or ``None`` when the
tables it needs are missing. Figures use matplotlib's object API (``Figure``, no pyplot), so no
global backend or figure state is touched. Entropies are in nats throughout; every attention
figure uses the amplitude encoding and the sequential site order unless it says otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from artent.report.attention_figures import attention_figure, sequence_length_figure
from artent.report.base_figures import layers_figure, length_scaling_figure, sink_figure
from artent.report.beyond import BEYOND_FIGURES
from artent.report.plotting import empty_panel, new_figure, png_base64

if TYPE_CHECKING:
    from artent.report.tables import StudyTables

__all__ = ["FIGURES", "STUDY_FIGURES", "draw_figures", "figure_ref"]


def _colors(t: StudyTables) -> dict[str, tuple]:
    """One colour per run, in study order, shared by every figure."""
    from matplotlib import colormaps

    names = list(t.runs.name)
    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {n: cmap(i % cmap.N) for i, n in enumerate(names)}


def _color(colors: dict, label) -> tuple | str:
    return colors.get(label, "grey")


def _final(frame: pd.DataFrame) -> pd.DataFrame:
    from artent.report.tables import final_rows

    return final_rows(frame)


def internal_profiles_figure(t: StudyTables) -> str | None:
    """Mean profile over layers at each run's final step, one panel per (data, module).

    Solid: measured; dashed (same colour): the run's random-matrix curve (random LoRA at its
    rank for LoRA/MPS); black dashed: the Page curve (FFT's random-matrix curve).
    """
    if t.internal is None or t.internal.empty:
        return None
    prof = _final(t.run_meta(t.internal))
    colors = _colors(t)
    datas, modules = list(dict.fromkeys(prof.data)), list(dict.fromkeys(prof.module))
    fig, axes = new_figure(len(datas), len(modules), w=5.2)
    cuts = {}
    if t.internal_summary is not None:
        cuts = t.internal_summary.dropna(subset=["cut"]).groupby("module").cut.first().to_dict()
    for i, data in enumerate(datas):
        for j, module in enumerate(modules):
            ax, page_drawn = axes[i][j], False
            sub = prof[(prof.data == data) & (prof.module == module)]
            for label, g in sub.groupby("label", sort=False):
                mean = g.groupby("bond")[["entropy", "rmt"]].mean()
                method = g.method.iloc[0]
                c = _color(colors, label)
                ax.plot(mean.index, mean.entropy, "o-", ms=3, color=c, label=f"{label}")
                if method == "fft" or pd.isna(method):
                    if not page_drawn:
                        ax.plot(mean.index, mean.rmt, "--", color="black", lw=1, label="Page")
                        page_drawn = True
                else:
                    ax.plot(mean.index, mean.rmt, "--", color=c, lw=0.8)
            if module in cuts:
                ax.axvline(cuts[module], color="grey", lw=0.8, ls=":")
            ax.set(xlabel="bond l", ylabel="S_l (nats)", title=f"{module}, {data}")
            ax.legend(fontsize=6)
    return png_base64(fig)


def valley_figure(t: StudyTables) -> str | None:
    """Valley depth and S_cut against LoRA rank, learning rate, and training step."""
    from artent.report.tables import trained_updates

    if t.internal_summary is None:
        return None
    lora = _final(trained_updates(t, ("lora",)))
    fig, axes = new_figure(1, 4, w=4.2)
    ax_s, ax_d, ax_lr, ax_step = axes[0]
    ranks = sorted(lora.nominal_rank.dropna().unique())
    for (data, lr), g in lora.groupby(["data", "lr"], dropna=False):
        if g.nominal_rank.nunique() < 2:
            continue
        stats = g.groupby("nominal_rank")[["center_entropy", "valley_depth"]].agg(["mean", "std"])
        for ax, col in ((ax_s, "center_entropy"), (ax_d, "valley_depth")):
            ax.errorbar(
                stats.index,
                stats[col]["mean"],
                stats[col]["std"].fillna(0),
                marker="o",
                capsize=3,
                label=f"{data} lr={lr:g}",
            )
    if ranks:
        ax_s.plot(ranks, np.log(ranks), "k--", lw=1, label="ln r")
    for ax, name in ((ax_s, "S_cut (nats)"), (ax_d, "valley depth (nats)")):
        ax.set_xscale("log", base=2)
        ax.set(xlabel="LoRA rank r", ylabel=name, title=f"{name.split(' (')[0]} vs rank")
        if ax.lines or ax.collections:
            ax.legend(fontsize=6)
        else:
            empty_panel(ax, "one LoRA rank only")
    drawn = False
    for (data, rank), g in lora.groupby(["data", "nominal_rank"], dropna=False):
        if g.lr.nunique() < 2:
            continue
        m = g.groupby("lr")[["center_entropy", "valley_depth"]].mean()
        line = ax_lr.plot(m.index, m.valley_depth, "o-", label=f"{data} r={rank:g}: depth")[0]
        ax_lr.plot(m.index, m.center_entropy, "s--", color=line.get_color(), label="S_cut")
        drawn = True
    if drawn:
        ax_lr.set_xscale("log")
        ax_lr.set(xlabel="learning rate", ylabel="nats", title="valley vs learning rate")
        ax_lr.legend(fontsize=6)
    else:
        empty_panel(ax_lr, "one learning rate only")
    all_runs = trained_updates(t, ("lora", "mps", "fft"))
    colors = _colors(t)
    for label, g in all_runs.groupby("label", sort=False):
        m = g.groupby("step").valley_depth.mean()
        ax_step.plot(m.index, m.values, "o-", ms=3, color=_color(colors, label), label=label)
    ax_step.axhline(0, color="grey", lw=0.6)
    ax_step.set(xlabel="training step", ylabel="valley depth (nats)", title="valley vs step")
    if len(all_runs):
        ax_step.legend(fontsize=6)
    return png_base64(fig)


def rmt_figure(t: StudyTables) -> str | None:
    """Random LoRA and full-rank updates over their closed-form predictions."""
    if t.profiles is None or t.profiles.empty:
        return None
    fig, axes = new_figure(1, 1, w=6.0)
    ax = axes[0][0]
    p = t.profiles
    for kind, g in p.groupby("kind", sort=False):
        line = ax.plot(g.bond, g.entropy, "o-", ms=3, label=str(kind))[0]
        ax.plot(g.bond, g.prediction, "--", lw=1, color=line.get_color())
    page = p.groupby("bond").page.first()
    ax.plot(page.index, page.values, ":", color="black", lw=1.5, label="Page")
    ax.set(xlabel="bond l", ylabel="S_l (nats)", title="random updates (dashed: prediction)")
    ax.legend(fontsize=7)
    return png_base64(fig)


def central_charge_figure(t: StudyTables) -> str | None:
    """Mean central charge per run against the training step (each encoding), and T scaling."""
    if t.external_summary is None or t.external_summary.empty:
        return None
    s = t.external_summary[t.external_summary.order == "sequential"]
    encodings = list(dict.fromkeys(s.encoding))
    has_scaling = t.scaling is not None and not t.scaling.empty
    fig, axes = new_figure(1, len(encodings) + has_scaling, w=4.6)
    colors = _colors(t)
    for ax, enc in zip(axes[0], encodings, strict=False):
        sub = s[s.encoding == enc]
        for label, g in sub.groupby("label", sort=False):
            m = g.groupby("step").c.mean()
            ax.plot(m.index, m.values, "o-", ms=3, color=_color(colors, label), label=label)
        title = f"central charge, {enc}"
        if t.baseline is not None:
            b = t.baseline[(t.baseline.encoding == enc) & (t.baseline.order == "sequential")]
            b = b[b.beta_source == "fitted"]
            if len(b):
                title += f" (random: c={b.c.mean():.2f})"
        ax.set(xlabel="training step", ylabel="mean c over layers and heads", title=title)
        ax.legend(fontsize=6)
    if has_scaling:
        ax = axes[0][-1]
        sc = _final(t.scaling[t.scaling.encoding == "amplitude"])
        for label, g in sc.groupby("label", sort=False):
            m = g.groupby("ln_T").cut_entropy.mean()
            slope = np.polyfit(m.index, m.values, 1)[0] if len(m) > 1 else math.nan
            ax.plot(
                m.index,
                m.values,
                "o-",
                ms=3,
                color=_color(colors, label),
                label=f"{label}: slope {slope:.2f}",
            )
        ax.set(xlabel="ln T", ylabel="row|column S (nats)", title="scaling with T (final step)")
        ax.legend(fontsize=6)
    return png_base64(fig)


def nohair_figure(t: StudyTables) -> str | None:
    """Internal vs external contrast per pair, their ratio, and the attention-output cosines."""
    if t.nohair is None or t.nohair.empty:
        return None
    p = t.nohair
    names = [f"{r.model}\nvs {r.reference}" for r in p.itertuples()]
    x = np.arange(len(p))
    fig, axes = new_figure(1, 3, w=max(4.0, 0.9 * len(p) + 1.5))
    ax1, ax2, ax3 = axes[0]
    ax1.bar(x - 0.2, p.internal_contrast.fillna(0), 0.4, label="internal mean |dS|")
    ax1.bar(x + 0.2, p.external_contrast, 0.4, label="external mean |dS|")
    ax1.set(ylabel="nats", title="contrasts (internal: n/a against base)")
    ax1.legend(fontsize=7)
    ax2.bar(x, p.nohair_ratio.fillna(0), color="C2")
    ax2.set(ylabel="external / internal", title="no-hair ratio")
    ax3.bar(x - 0.2, p.context_cos, 0.4, label="context cos", color="C4")
    if "hidden_cos" in p:
        ax3.bar(x + 0.2, p.hidden_cos, 0.4, label="layer-output cos", color="C5")
    ax3.set(ylabel="cosine", title="attention outputs", ylim=(min(0.0, p.context_cos.min()), 1.05))
    ax3.legend(fontsize=7)
    for ax in (ax1, ax2, ax3):
        ax.set_xticks(x, names, fontsize=6, rotation=30)
    return png_base64(fig)


def losses_figure(t: StudyTables) -> str | None:
    """Training (thin) and held-out (markers) loss of every run, one panel per data set."""
    if t.losses is None or t.losses.empty:
        return None
    losses = t.run_meta(t.losses)
    datas = list(dict.fromkeys(losses.data))
    fig, axes = new_figure(1, len(datas), w=5.5)
    colors = _colors(t)
    for ax, data in zip(axes[0], datas, strict=True):
        for label, g in losses[losses.data == data].groupby("label", sort=False):
            c = _color(colors, label)
            train = g[g.split == "train"].sort_values("step")
            held = g[g.split == "heldout"].sort_values("step")
            ax.plot(train.step, train.loss, "-", lw=0.8, alpha=0.6, color=c)
            ax.plot(held.step, held.loss, "o-", ms=4, color=c, label=label)
        ax.set(xlabel="step", ylabel="loss (nats/token)", title=f"{data}: held-out (markers)")
        ax.legend(fontsize=6)
    return png_base64(fig)


SWEEP_METRICS = (
    ("center_entropy", "S_cut (nats)"),
    ("valley_depth", "valley depth (nats)"),
    ("heldout_loss", "held-out loss (nats/token)"),
)


def sweep_figure(t: StudyTables) -> str | None:
    """A sweep's points: S_cut, valley depth and held-out loss against each grid option."""
    if t.sweep is None:
        return None
    table = t.sweep[t.sweep.status == "ok"]
    keys = [k for k in t.study.get("sweep", {}).get("grid", {}) if k in table]
    if table.empty or not keys:
        return None
    fig, axes = new_figure(len(keys), len(SWEEP_METRICS), w=4.2, h=3.2)
    for row, key in zip(axes, keys, strict=True):
        others = [k for k in keys if k != key]
        values = list(dict.fromkeys(table[key]))
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if numeric:
            x = table[key].astype(float)
        else:  # categorical options (method, data): one position per value
            x = table[key].map({v: i for i, v in enumerate(values)}).astype(float)
        for ax, (metric, ylabel) in zip(row, SWEEP_METRICS, strict=True):
            groups = table.groupby(others, sort=False) if others else [("all", table)]
            for i, (name, g) in enumerate(groups):
                order = x[g.index].sort_values().index
                label = name if isinstance(name, str) else ",".join(map(str, np.atleast_1d(name)))
                ax.plot(
                    x[order],
                    g.loc[order, metric],
                    "o-",
                    ms=4,
                    color=f"C{i % 10}",
                    label=label if others else None,
                )
            if numeric and min(values) > 0 and max(values) / min(values) >= 10:
                ax.set_xscale("log")
            if not numeric:
                ax.set_xticks(range(len(values)), [str(v) for v in values], fontsize=7)
            ax.set(xlabel=key, ylabel=ylabel)
        if others:
            row[0].legend(fontsize=6, title=",".join(others), title_fontsize=6)
    return png_base64(fig)


# key: (title, caption, drawing function); the order is the figure numbering
FIGURES: dict[str, tuple[str, str, Callable]] = {
    "internal": (
        "Internal entanglement profiles",
        "Bond entropy S_l of each run's weight update (final step, mean over layers), one panel "
        "per data set and module. Dashed, same colour: the random-matrix curve of that update "
        "(random LoRA at its rank); black dashed: the Page curve of a random full-rank update; "
        "dotted vertical line: the row|column cut, where LoRA's Entanglement Valley sits.",
        internal_profiles_figure,
    ),
    "valley": (
        "The Entanglement Valley against rank, learning rate and step",
        "S_cut and valley depth (S_{a-k}+S_{a+k})/2 - S_a of LoRA at the final step against "
        "the rank (error bars: std over modules; dashed: the floor ln r) and the learning rate; "
        "right: the mean valley depth of every run along training (trained steps only).",
        valley_figure,
    ),
    "rmt": (
        "Random-matrix baseline",
        "Exact profiles of sampled random LoRA and full-rank updates (solid) over their "
        "closed-form predictions (dashed) and the Page curve (dotted).",
        rmt_figure,
    ),
    "attention": (
        "Attention profiles and the Cardy fit",
        "Entanglement profile of the attention matrices (amplitude encoding, sequential order), "
        "per layer averaged over heads and texts (at most eight layers, evenly spaced), one "
        "panel per distinct model state: the base model (step 0, the same for every run, drawn "
        "once) and one run per method at its final step. Dashed: the Cardy law (periodic form) "
        "with the heads' mean c and c0; black dotted: random causal attention at the model's "
        "fitted inverse temperature. The legend sits below the panels.",
        attention_figure,
    ),
    "central_charge": (
        "Central charge across runs and steps",
        "Mean fitted central charge c over layers and heads (sequential order) for every run "
        "against the training step, per encoding; right: the row|column entropy against ln T "
        "at each run's final step (amplitude).",
        central_charge_figure,
    ),
    "sink": (
        "The attention sink, layer by layer",
        "Share of each layer's attention mass that goes to the first token of the window (mean "
        "over heads, query positions 1..T-1 and windows; band: min to max over heads), for the "
        "base model at the study's T and at the longest T. Dotted: the share under uniform "
        "causal attention, i.e. with no sink.",
        sink_figure,
    ),
    "layers": (
        "Attention profile and central charge layer by layer",
        "Base model at the longest T (amplitude, sequential): left, each layer's profile (mean "
        "over heads and windows) as a heat map, with the Page curve's bond entropies for scale; "
        "right, the fitted central charge c per layer (mean and range over heads) and the share "
        "of heads where area+log wins.",
        layers_figure,
    ),
    "length_scaling": (
        "Attention entropy against sequence length",
        "Base model: the row|column entropy (mean over layers, heads and windows, amplitude) at "
        "T = 8 ... the longest T, against ln N (N = 2 log2 T sites), with the Cardy fit (linear "
        "in ln N) and the volume-law fit (linear in N); grey: random causal attention at the "
        "fitted beta, and ln T, the most any T x T matrix can hold.",
        length_scaling_figure,
    ),
    "sequence_length": (
        "The attention law read along the sequence length",
        "The row|column entropy S_cut (mean over layers, heads and windows, amplitude) against "
        "ln T, with its least-squares line (c/3) ln T + c0 (the sequence-length reading of the "
        "Attention Cardy Formula; c is also given in the open form c/6); grey: random causal "
        "attention drawn at each head's fitted inverse temperature and measured the same way "
        "(the random-matrix prediction); dotted: Page's volume law ln T - 1/2 (slope 1). The "
        "base model's long-T stage when the study has it, else the runs.",
        sequence_length_figure,
    ),
    "nohair": (
        "No-hair comparison",
        "For each pair of models: mean |dS| between internal (weight-update) profiles and "
        "between attention profiles, their ratio, and the cosine similarity of the attention "
        "outputs (per-head context before o_proj, and the layer output).",
        nohair_figure,
    ),
    "losses": (
        "Training and held-out losses",
        "Per-step training loss (thin) and held-out loss (markers) of every run.",
        losses_figure,
    ),
    "sweep": (
        "Sweep",
        "Each point of the sweep (sweep.parquet; failed points left out): mean S_cut and valley "
        "depth of its final update over the analysed modules, and its final held-out loss, "
        "against each grid option; one line per combination of the other options.",
        sweep_figure,
    ),
}

# beyond the paper (artent.report.beyond), numbered before the sweep, which only sweep folders draw
FIGURES = {**{k: v for k, v in FIGURES.items() if k != "sweep"}, **BEYOND_FIGURES, "sweep": FIGURES["sweep"]}  # fmt: skip  # noqa: E501

# the figures of a study folder (a sweep folder adds "sweep")
STUDY_FIGURES = tuple(k for k in FIGURES if k != "sweep")


def figure_ref(key: str) -> str:
    """``"Figure N (title)"`` of a figure key of :data:`FIGURES`."""
    number = list(FIGURES).index(key) + 1
    return f"Figure {number} ({FIGURES[key][0]})"


def draw_figures(t: StudyTables) -> list[dict]:
    """Every figure: ``key, number, title, caption, png`` (base64 or None) and ``note``.

    A figure whose tables are missing has ``png=None`` and says so in ``note``; one that fails
    to draw carries the error there instead, so one bad table never takes the report down.
    """
    out = []
    keys = list(FIGURES) if t.sweep is not None else STUDY_FIGURES
    for number, key in enumerate(keys, start=1):
        title, caption, fn = FIGURES[key]
        png, note = None, ""
        try:
            png = fn(t)
            if png is None:
                note = "not drawn: the tables it needs are missing from the study"
        except Exception as e:  # noqa: BLE001 - shown in the report, not swallowed
            note = f"could not be drawn: {type(e).__name__}: {e}"
        out.append(dict(key=key, number=number, title=title, caption=caption, png=png, note=note))
    return out
