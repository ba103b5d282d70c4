"""Several models' attention side by side, layer by layer
(`artent external --model A --model B`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from artent.analysis.external.readings import SINK_HEAD_SHARE, per_layer
from artent.folders.atomic import pyplot, save_figure

#: (column of :func:`~artent.analysis.external.readings.per_layer`, axis label) per panel.
PANELS = (
    ("page_fraction", "profile / Page curve (mean over bonds)"),
    ("area_share", "share of heads: area+log wins (AIC)"),
    ("c_chain", "c, qubit chain (Cardy chord fit)"),
    ("c_length", "c = 3 x d S_cut / d ln T, sequence length"),
    ("sink_share", "attention on the first token"),
)


def plot_models(tables: dict, path: str | Path | None = None):
    """One panel per figure of :data:`PANELS` against the layer, one line per model state.

    Args:
        tables: the external tables of several models (a ``model`` column tells them apart;
            ``label`` and ``step`` too where they vary), as :func:`artent.api.external` returns.
        path: a PNG to write (atomically); ``None`` returns the matplotlib figure.

    Layers are drawn at their relative depth ``layer / (layers - 1)`` so models of different
    depths line up; the legend sits below the panels, outside the data. Amplitude encoding,
    sequential order (the tables' other encodings and orders are not drawn).
    """
    plt = pyplot()
    layers = per_layer(tables)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4 * len(PANELS), 3.6), layout="constrained")
    for k, (key, g) in enumerate(layers.groupby("key", sort=False)):
        g = g.sort_values("layer")
        depth = g.layer / max(g.layer.max(), 1)
        for ax, (col, _) in zip(axes, PANELS, strict=True):
            ax.plot(
                depth, g[col], "o-", ms=3, color=f"C{k % 10}", label=key if ax is axes[0] else None
            )
    for ax, (col, title) in zip(axes, PANELS, strict=True):
        ax.set(xlabel="relative depth (layer / last layer)", title=title)
        ax.title.set_fontsize(9)
        if col in ("page_fraction", "area_share", "sink_share"):
            ax.set_ylim(-0.02, 1.02)
    axes[0].axhline(0.5, ls=":", color="grey", lw=1)
    axes[-1].axhline(SINK_HEAD_SHARE, ls=":", color="grey", lw=1)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(labels)), fontsize=8)
    if np.isnan(layers.c_length.to_numpy(float)).all():
        axes[3].text(0.5, 0.5, "one length only", transform=axes[3].transAxes, ha="center")
    return save_figure(fig, path)
