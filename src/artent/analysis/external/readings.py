"""The attention law read from the external tables, both ways, and the heads it is read on.

Two readings of the paper's "area law with logarithmic corrections" (docs/method.md):

* **qubit chain**: each profile along the ``N = 2 log2 T`` sites follows the Cardy chord form
  (``external_summary``'s ``c``, ``r2``, ``law``), well below the Page curve
  (:func:`page_ratio`);
* **sequence length**: the row|column entropy grows as ``(c/3) ln T + c0`` across window
  lengths (:func:`length_law`, from the ``scaling`` table), far below the volume law's slope 1.

These functions read tables only (no model), so the report, the comparison figure of several
models and the tests share one definition of each figure.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from artent.entanglement.length import LengthLaw, fit_length_law
from artent.entanglement.rmt import page_profile
from artent.entanglement.sites import prime_factors

__all__ = [
    "SINK_HEAD_SHARE",
    "amplitude_sequential",
    "length_law",
    "page_ratio",
    "per_layer",
    "sink_heads",
]

#: A head is a *sink head* when at least half of its attention (mean over windows and queries
#: i >= 1) goes to the window's first token: most of its mass is parked, not spread.
SINK_HEAD_SHARE = 0.5


def amplitude_sequential(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the amplitude encoding in sequential order (what the attention law reads)."""
    return frame[(frame.encoding == "amplitude") & (frame.order == "sequential")]


def page_ratio(ext: pd.DataFrame) -> pd.Series:
    """``S_l / S_Page(l)`` per row of an ``external`` table (its own ``T`` and bond).

    The Page curve of a ``T x T`` state (row sites, then column sites: the volume law a random
    attention-sized state follows) at the row's bond; NaN for rows of another order.
    """
    out = pd.Series(np.nan, index=ext.index, dtype=float)
    seq = ext.order == "sequential"
    for T, g in ext[seq].groupby("T"):
        page = page_profile(prime_factors(int(T)) * 2)
        out[g.index] = g.entropy.to_numpy(float) / page[g.bond.to_numpy(int) - 1]
    return out


def sink_heads(summary: pd.DataFrame) -> pd.Series:
    """Whether each row's head is a sink head (:data:`SINK_HEAD_SHARE`); False where the table
    has no ``sink_share`` (tables written before it was measured)."""
    if "sink_share" not in summary:
        return pd.Series(False, index=summary.index)
    return summary.sink_share.astype(float) >= SINK_HEAD_SHARE


def length_law(scaling: pd.DataFrame, encoding: str = "amplitude") -> tuple[LengthLaw, pd.Series]:
    """The sequence-length reading on a ``scaling`` table: the mean cut entropy at each ``T``
    (over every other column: runs, steps, layers, heads) and its line in ``ln T``.

    Raises:
        ValueError: fewer than two lengths in the table for ``encoding``.
    """
    s = scaling[scaling.encoding == encoding]
    mean = s.groupby("T").cut_entropy.mean().sort_index()
    return fit_length_law(mean.index.to_numpy(float), mean.to_numpy(float)), mean


def _model_key(frame: pd.DataFrame) -> pd.Series:
    """One name per model state: ``model``, ``label`` (where it says more than the model) and
    ``step``, as far as the table has them."""
    cols = [c for c in ("model", "label", "step") if c in frame and frame[c].notna().any()]

    def name(row) -> str:
        parts: list[str] = []
        for col in cols:
            value = row[col]
            if value is None or value != value:  # missing (None or NaN)
                continue
            text = f"step {int(value)}" if col == "step" else str(value)
            if text not in parts and not (col == "label" and parts and parts[0].endswith(text)):
                parts.append(text)
        return " ".join(parts) or "model"

    if not cols:
        return pd.Series("model", index=frame.index)
    group = frame.groupby(cols, dropna=False, sort=False).ngroup()
    first = frame[cols].groupby(group.to_numpy()).head(1)
    names = {int(group[i]): name(first.loc[i].to_dict()) for i in first.index}
    return group.map(names)


def per_layer(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Layer by layer, per model state (``key``): both readings and the sink.

    Returns:
        DataFrame ``key, layer, page_fraction, area_share, c_chain, r2_chain, c_length,
        c_length_open, r2_length, sink_share``: the mean over heads and bonds of
        ``S_l / S_Page(l)``, the share of heads where area+log wins, the mean chord-fit ``c``
        and ``R^2`` (qubit chain, periodic form), ``c = 3 x slope`` and ``6 x slope`` of the
        head-mean cut entropy against ``ln T`` with its ``R^2`` (sequence length; NaN with one
        length), and the mean sink share. Amplitude encoding, sequential order.
    """
    ext = amplitude_sequential(tables["external"])
    summ = amplitude_sequential(tables["external_summary"])
    scal = tables["scaling"]
    scal = scal[scal.encoding == "amplitude"]
    ext = ext.assign(key=_model_key(ext), ratio=page_ratio(ext))
    summ = summ.assign(key=_model_key(summ), area=summ.law == "area+log")
    scal = scal.assign(key=_model_key(scal))
    rows = []
    for (key, layer), g in summ.groupby(["key", "layer"], sort=False):
        e = ext[(ext.key == key) & (ext.layer == layer)]
        s = scal[(scal.key == key) & (scal.layer == layer)].groupby("T").cut_entropy.mean()
        law = fit_length_law(s.index, s.values) if len(s) >= 2 else None
        rows.append(
            dict(
                key=key,
                layer=int(layer),
                page_fraction=float(e.ratio.mean()),
                area_share=float(g.area.mean()),
                c_chain=float(g.c.mean()),
                r2_chain=float(g.r2.mean()),
                c_length=law.c_periodic if law else math.nan,
                c_length_open=law.c_open if law else math.nan,
                r2_length=law.r2 if law else math.nan,
                sink_share=float(g.sink_share.mean()) if "sink_share" in g else math.nan,
            )
        )
    return pd.DataFrame(rows)
