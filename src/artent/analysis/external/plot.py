"""The external analysis's figure: attention profiles over the random baseline, and the scaling."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from artent.entanglement.fits import fit_cardy
from artent.folders.atomic import pyplot, save_figure

#: Above this many curves a panel gets a colour bar instead of a legend entry per curve, and no
#: bands: 30 layers' bands and legend entries cost seconds to draw and read as noise.
MAX_LEGEND_CURVES = 10


def _run_key(frame):
    """A readable run name per row: ``label`` and ``step`` (either may be missing)."""
    label = frame["label"].astype(object).where(frame["label"].notna(), "")
    step = frame["step"].astype(object)
    with_step = step.notna()
    out = label.astype(str)
    out[with_step] = out[with_step] + " step " + step[with_step].astype("int64").astype(str)
    return out.str.strip().replace("", "model")


def _local_layers(ext) -> set:
    """Layers marked ``local`` (sliding-window attention) in the table, if it says."""
    if "local" not in ext:
        return set()
    return set(ext.loc[ext.local.fillna(False).astype(bool), "layer"].unique())


@dataclass
class _Curves:
    """What the curves of every panel are: layers (one run; band over heads) or runs (several;
    band over layers), their colours, names and styles."""

    curve: str
    band: str
    keys: list
    local: set
    colors: list

    @property
    def many(self) -> bool:
        return len(self.keys) > MAX_LEGEND_CURVES

    def name(self, key) -> str:
        if self.curve == "layer":
            return f"layer {key}" + (" (local)" if key in self.local else "")
        return str(key)

    def style(self, key) -> dict:
        if key in self.local:
            return dict(marker="s", mfc="none", ms=3.5, ls="-")
        return dict(marker="o", ms=3, ls="-")

    def draw_many(self, ax, lines: list, keys: list, dashes: str = "solid") -> None:
        """Many curves as one collection (one draw call): local ones dash-dotted."""
        from matplotlib.collections import LineCollection

        styles = ["dashdot" if k in self.local else dashes for k in keys]
        colors = [self.colors[self.keys.index(k)] for k in keys]
        ax.add_collection(LineCollection(lines, colors=colors, linestyles=styles))
        ax.autoscale_view()


def _curves(ext, runs: list, cmap) -> _Curves:
    # One run: a curve per layer, band over heads. Several: a curve per run, band over layers.
    curve, band = ("layer", "head") if len(runs) == 1 else ("run", "layer")
    keys = runs if curve == "run" else sorted(ext.layer.unique())
    local = _local_layers(ext) if curve == "layer" else set()
    colors = [cmap(i / max(len(keys) - 1, 1)) for i in range(len(keys))]
    return _Curves(curve, band, keys, local, colors)


def _profile_panel(ax, panel, c: _Curves, random_rows, boundary: str, title: str) -> None:
    """One (encoding, order) panel: each curve's mean profile (band, Cardy fit), or with many
    curves plain lines and the fit of their mean; the random baseline black dotted."""
    lines = []
    for i, key in enumerate(c.keys):
        per_member = panel.loc[key].unstack(c.band)  # bond x member
        mean = per_member.mean(axis=1)
        if c.many:
            lines.append(np.column_stack([mean.index, mean.values]))
            continue
        ax.plot(mean.index, mean.values, color=c.colors[i], label=c.name(key), **c.style(key))
        ax.fill_between(
            mean.index,
            per_member.min(axis=1),
            per_member.max(axis=1),
            color=c.colors[i],
            alpha=0.15,
        )
        if len(mean) >= 3:
            fit = fit_cardy(mean.values, boundary)
            ax.plot(mean.index, fit.predict(), "--", lw=1, color=c.colors[i])
    if c.many:
        c.draw_many(ax, lines, c.keys)
        overall = np.mean([line[:, 1] for line in lines], axis=0)
        if len(overall) >= 3:
            fit = fit_cardy(overall, boundary)
            ax.plot(lines[0][:, 0], fit.predict(), "k--", lw=1, label=f"mean: c={fit.c:.2f}")
    if len(random_rows):
        ax.plot(
            random_rows.bond,
            random_rows.entropy,
            ":",
            color="black",
            lw=1.5,
            label=f"random, beta={random_rows.beta.iloc[0]:.2f}, c={random_rows.c.iloc[0]:.2f}",
        )
    if c.many and c.local:
        ax.plot([], [], color="grey", ls="-.", label="dash-dotted: local layers")
    ax.set(xlabel="bond l", ylabel="S_l (nats)", title=title)
    ax.legend(fontsize=7, loc="lower center")


def _scaling_panel(ax, scaling, c: _Curves) -> None:
    """The row|column entropy against ``ln T`` per curve (amplitude solid, born dashed)."""
    cuts = scaling.groupby([c.curve, "encoding", "ln_T"]).cut_entropy.mean()
    present = set(cuts.index.droplevel(2))
    for encoding, dashes in (("amplitude", "solid"), ("born", "dashed")):
        lines, keys = [], []
        for i, key in enumerate(c.keys):
            if (key, encoding) not in present:
                continue
            m = cuts.loc[key, encoding]
            if c.many:
                lines.append(np.column_stack([m.index, m.values]))
                keys.append(key)
                continue
            slope = np.polyfit(m.index, m.values, 1)[0] if len(m) > 1 else float("nan")
            ax.plot(
                m.index,
                m.values,
                color=c.colors[i],
                label=f"{c.name(key)} {encoding}: slope {slope:.2f}",
                **{**c.style(key), "ls": "-" if dashes == "solid" else "--"},
            )
        if c.many and lines:
            c.draw_many(ax, lines, keys, dashes)
            ax.plot([], [], color="k", ls="-" if dashes == "solid" else "--", label=encoding)
    ax.set(xlabel="ln T", ylabel="row|column S (nats)", title="scaling with length")
    ax.legend(fontsize=7, loc="upper left")


def plot_external(tables: dict, path_png: str | Path | None, *, boundary: str = "periodic"):
    """Attention profiles over the random baseline, and the cut entropy against ln T.

    One panel per (encoding, order) and a last panel for the length scaling. With one run
    (one ``(step, label)``) the curves are the layers: each layer's profile averaged over heads
    (band: the range over heads) with its Cardy fit (dashed); local (sliding-window) layers are
    drawn with open squares (dash-dotted above :data:`MAX_LEGEND_CURVES` curves) and named
    "local". With several runs (checkpoints or models concatenated) the curves are the runs,
    each averaged over layers and heads (band: the range over layers), so that a stable ``c``
    shows as overlapping curves. Above :data:`MAX_LEGEND_CURVES` curves (a 30-layer model), the
    curves are plain lines coloured along a colour bar, without bands, markers or per-curve
    fits, and one dashed black line is the Cardy fit of their mean. The random-attention
    baseline at the (first run's) fitted beta is drawn black dotted. The scaling panel shows the
    row|column entropy against ``ln T`` (amplitude solid, born dashed) with its slope. Written
    atomically as a PNG.

    Args:
        tables: the result of :func:`run_external`, or several concatenated.
        path_png: output path; ``None`` returns the matplotlib figure unsaved.
        boundary: Cardy form of the drawn fit (use the run's ``cfg.boundary``).
    """
    plt = pyplot()
    ext = tables["external"].assign(run=lambda f: _run_key(f))
    scaling = tables["scaling"].assign(run=lambda f: _run_key(f))
    baseline = tables["baseline"].assign(run=lambda f: _run_key(f))
    runs = list(dict.fromkeys(ext.run))
    cmap = plt.get_cmap("viridis")
    c = _curves(ext, runs, cmap)
    combos = list(ext[["encoding", "order"]].drop_duplicates().itertuples(index=False))
    n_panels = len(combos) + 1
    ncols = min(3, n_panels)
    nrows = math.ceil(n_panels / ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.8 * nrows), squeeze=False)
    axes = list(grid.ravel())
    for extra in axes[n_panels:]:
        extra.set_visible(False)
    # One groupby for every panel: mean over everything but (curve, band, bond).
    profiles = ext.groupby(["encoding", "order", c.curve, c.band, "bond"]).entropy.mean()
    for ax, (encoding, order) in zip(axes, combos, strict=False):
        rnd = baseline[(baseline.encoding == encoding) & (baseline.order == order)]
        rnd = rnd[(rnd.beta_source == "fitted") & (rnd.run == runs[0])]
        panel = profiles.loc[encoding, order]
        _profile_panel(ax, panel, c, rnd, boundary, f"{encoding}, {order}")
    _scaling_panel(axes[n_panels - 1], scaling, c)
    # Fixed margins: tight_layout measures every text box and costs a second draw.
    fig.subplots_adjust(
        left=0.06, right=0.9 if c.many else 0.98, bottom=0.08, top=0.94, wspace=0.3, hspace=0.35
    )
    if c.many:
        scale = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, len(c.keys) - 1))
        fig.colorbar(scale, ax=axes[:n_panels], label=c.curve, shrink=0.8, pad=0.02)
    return save_figure(fig, path_png)
