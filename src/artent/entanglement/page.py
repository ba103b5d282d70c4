"""Page's mean entanglement of a Haar-random pure state: the curve a random dense matrix follows.

Kept apart from :mod:`artent.entanglement.rmt` because both the fits (the Page value at a
valley's cut) and the random-matrix baselines need it, and the baselines need the fits: with
Page's formula here the import graph is a line, ``page <- fits <- rmt``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

__all__ = ["page_entropy", "page_profile"]

# Above this argument psi(x + 1) - ln(x) is taken from its asymptotic series, whose first
# omitted term (x^-8 / 240) is then far below double precision; below it scipy is exact.
_SERIES_FROM = 1_000_000
# Without scipy (a bare GPU machine running benchmarks/gpu_suite.py) the series starts here,
# where that omitted term is 4e-27, and below it the harmonic sum is exactly rounded (fsum).
_SERIES_FROM_WITHOUT_SCIPY = 1_000
_EULER_GAMMA = 0.57721566490153286060651209008240243


def _scipy_digamma():
    """scipy's digamma, or ``None`` where scipy is not installed (imported on first use)."""
    try:
        from scipy.special import digamma
    except ImportError:
        return None
    return digamma


def as_dim(value: object, name: str) -> int:
    """A positive integer dimension (Python int, so products never overflow)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: expected a positive integer dimension, got {value!r}")
    if isinstance(value, numbers.Integral):
        out = int(value)
    elif float(value).is_integer():
        out = int(value)
    else:
        raise ValueError(f"{name}: expected a positive integer dimension, got {value!r}")
    if out < 1:
        raise ValueError(f"{name}: expected a positive integer dimension, got {value!r}")
    return out


def as_dims(values: Sequence[int], name: str, *, min_len: int = 1) -> list[int]:
    try:
        dims = [as_dim(v, f"{name}[{i}]") for i, v in enumerate(values)]
    except TypeError:
        raise ValueError(
            f"{name}: expected a sequence of site dimensions, got {values!r}"
        ) from None
    if len(dims) < min_len:
        raise ValueError(f"{name}: need at least {min_len} site(s), got {len(dims)}")
    return dims


def _digamma_shift_minus_log(x: int) -> float:
    """``psi(x + 1) - ln(x)`` for an integer ``x >= 1``, without cancelling two large logs."""
    if x < _SERIES_FROM:
        digamma = _scipy_digamma()
        if digamma is not None:
            return float(digamma(x + 1) - math.log(x))
        if x < _SERIES_FROM_WITHOUT_SCIPY:  # psi(x + 1) = H_x - gamma
            return math.fsum(1 / k for k in range(1, x + 1)) - _EULER_GAMMA - math.log(x)
    inv = 1 / x  # int / int: exact rounding even for integers beyond the float range
    inv2 = inv * inv
    return inv / 2 - inv2 / 12 + inv2 * inv2 / 120 - inv2**3 / 252


def page_entropy(dA: int, dB: int) -> float:
    """Page's exact mean entanglement entropy of a Haar-random pure state on ``dA x dB``.

    ``S = sum_{k=dB+1}^{dA dB} 1/k - (dA - 1)/(2 dB)`` for ``dA <= dB`` (the arguments are
    swapped otherwise: the formula is symmetric). The harmonic sum is
    ``psi(dA dB + 1) - psi(dB + 1)``, evaluated as ``ln dA + g(dA dB) - g(dB)`` with
    ``g(x) = psi(x + 1) - ln x``, so that any size (``2^1000`` included) costs the same and keeps
    full precision. For large dimensions ``S ~ ln dA - dA / (2 dB)``.

    Args:
        dA: dimension of one side (positive integer).
        dB: dimension of the other side (positive integer).

    Returns:
        The mean entropy in nats (``0`` when either dimension is ``1``). Exact for complex
        Gaussian states; see the module docstring for real ones.
    """
    a, b = as_dim(dA, "dA"), as_dim(dB, "dB")
    if a > b:
        a, b = b, a
    if a == 1:
        return 0.0
    harmonic = math.log(a) + _digamma_shift_minus_log(a * b) - _digamma_shift_minus_log(b)
    return float(harmonic - (a - 1) / (2 * b))


def page_profile(dims: Sequence[int]) -> np.ndarray:
    """Page's value at every bond of a chain: the mean profile of a random dense state.

    Args:
        dims: site dimensions ``d_1 .. d_N`` (``N >= 2``).

    Returns:
        ``N - 1`` entropies in nats; entry ``l - 1`` is ``page_entropy(d_1..d_l, d_{l+1}..d_N)``.
    """
    sites = as_dims(dims, "dims", min_len=2)
    total = math.prod(sites)
    left = 1
    out = []
    for d in sites[:-1]:
        left *= d
        out.append(page_entropy(left, total // left))
    return np.array(out)
