"""The sequence-length reading of the attention law: the cut entropy against ``ln T``.

The paper calls the attention law "an area law with logarithmic corrections" (the "Attention
Cardy Formula"). Read with the window length ``T`` as the subsystem size, the Cardy form is

    S_cut(T) = (c / 3) ln T + c0        (periodic form; (c / 6) ln T + c0 in the open form)

where ``S_cut`` is the row|column entropy of the ``T x T`` attention matrix (nats). A volume law
grows as fast as a random state allows: Page's value at the cut of a ``T x T`` state is
``ln T - 1/2`` for large ``T``, slope 1 in ``ln T``. :func:`fit_length_law` fits the line; the
other reading (the Cardy chord form along the ``N = 2 log2 T`` site chain) is
:func:`artent.entanglement.fits.fit_cardy`. docs/method.md gives both and the claims built on
them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PAGE_LENGTH_SLOPE", "LengthLaw", "fit_length_law"]

#: d S_Page(T x T cut) / d ln T for large T (Page: ln T - 1/2): the volume law's slope.
PAGE_LENGTH_SLOPE = 1.0


@dataclass(frozen=True)
class LengthLaw:
    """Least squares of ``S = slope * ln T + c0`` over the lengths given.

    Attributes:
        slope: nats per unit of ``ln T``.
        c0: the intercept (nats).
        r2: coefficient of determination of the line.
        n: number of lengths fitted.
    """

    slope: float
    c0: float
    r2: float
    n: int

    @property
    def c_periodic(self) -> float:
        """``c`` of the periodic form ``(c/3) ln T``: ``3 x slope``."""
        return 3.0 * self.slope

    @property
    def c_open(self) -> float:
        """``c`` of the open form ``(c/6) ln T``: ``6 x slope``."""
        return 6.0 * self.slope

    @property
    def page_fraction(self) -> float:
        """The slope over the volume law's (:data:`PAGE_LENGTH_SLOPE`)."""
        return self.slope / PAGE_LENGTH_SLOPE


def fit_length_law(lengths: Sequence[float], cut_entropy: Sequence[float]) -> LengthLaw:
    """Fit ``S_cut = slope * ln T + c0`` (nats) by ordinary least squares.

    Args:
        lengths: window lengths ``T`` (at least two distinct values, each >= 2).
        cut_entropy: the row|column entropy at each length, nats.

    Returns:
        :class:`LengthLaw` (``r2`` is 1.0 for two points, which a line always fits).

    Raises:
        ValueError: fewer than two distinct lengths, lengths below 2, non-finite entropies or a
            length and entropy count that differ.
    """
    T = np.asarray(lengths, dtype=float)
    y = np.asarray(cut_entropy, dtype=float)
    if T.shape != y.shape or T.ndim != 1:
        raise ValueError(
            f"lengths and cut_entropy: expected two 1-D arrays of one length, got "
            f"{T.shape} and {y.shape}"
        )
    if len(np.unique(T)) < 2 or (T < 2).any():
        raise ValueError(f"lengths: expected at least two distinct values >= 2, got {T.tolist()}")
    if not np.isfinite(y).all():
        raise ValueError("cut_entropy: expected finite values")
    x = np.log(T)
    design = np.column_stack([x, np.ones_like(x)])
    (slope, c0), *_ = np.linalg.lstsq(design, y, rcond=None)
    rss = float(((design @ np.array([slope, c0]) - y) ** 2).sum())
    tss = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - rss / tss if tss > 0 else (1.0 if rss == 0 else -math.inf)
    return LengthLaw(float(slope), float(c0), float(r2), len(T))
