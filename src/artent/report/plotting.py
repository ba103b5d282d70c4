"""The few drawing helpers every report figure shares: a new figure, its PNG, an empty panel."""

from __future__ import annotations

import base64
import io


def new_figure(nrows: int, ncols: int, w: float = 4.4, h: float = 3.5):
    """A matplotlib ``Figure`` (object API, no pyplot) and its ``[nrows][ncols]`` axes.

    The constrained layout fits the labels as the figure is drawn; ``tight_layout`` warned
    ("Tight layout not applied") when a panel's legend was taller than the panel.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w * ncols, h * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def png_base64(fig) -> str:
    """The figure as a base64 PNG string (no ``data:`` prefix), 90 dpi."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def empty_panel(ax, text: str) -> None:
    """Grey text in place of a panel that has nothing to draw."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])
