"""Fits of entanglement profiles: the Cardy (area+log) law, the volume law, the valley.

A *profile* is the 1-D array ``S_1 ... S_{N-1}`` of bond entropies (nats) of a chain of
``N`` sites, ``profile[l - 1] = S_l``, where bond ``l`` splits sites ``[1..l] | [l+1..N]``
(see docs/method.md, "The profile" and "Fits"). Every bond index in this module is 1-based.

The fits are ordinary least squares (``numpy.linalg.lstsq``) with two parameters each, so
their Akaike information criteria ``AIC = n ln(RSS / n) + 2 k`` (``k = 2``) compare directly
when both are fitted on the same bonds (:func:`compare_laws`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from artent.entanglement.page import page_entropy

__all__ = [
    "CardyFit",
    "LawComparison",
    "Valley",
    "VolumeFit",
    "chord_regressor",
    "compare_laws",
    "fit_cardy",
    "fit_volume",
    "valley",
]

Boundary = Literal["periodic", "open"]
_BOUNDARIES = ("periodic", "open")
_N_PARAMS = 2  # every law here is (coefficient, offset)
# Floor on RSS / n inside the AIC logarithm: an exact fit would otherwise give -inf.
_RSS_FLOOR_PER_POINT = 1e-300


def _frozen_array(values: np.ndarray) -> np.ndarray:
    """A read-only float copy, so the frozen dataclasses really are frozen."""
    out = np.array(values, dtype=np.float64, copy=True)
    out.setflags(write=False)
    return out


def _as_profile(profile: object, *, min_bonds: int = 3) -> np.ndarray:
    """Validate and return a profile as a 1-D float64 array."""
    try:
        arr = np.asarray(profile, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"profile: cannot read as a float array ({exc})") from exc
    if arr.ndim != 1:
        raise ValueError(f"profile: expected a 1-D array of bond entropies, got shape {arr.shape}")
    if arr.size < min_bonds:
        raise ValueError(f"profile: need at least {min_bonds} bonds, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("profile: contains NaN or Inf")
    return arr


def _as_bonds(bonds: Iterable[int], n_bonds: int, name: str) -> np.ndarray:
    """Validate 1-based bond indices (in 1..n_bonds, no duplicates); return them sorted."""
    try:
        out = np.array(sorted(int(b) for b in bonds), dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected an iterable of integer bond indices ({exc})") from exc
    if out.size and (out[0] < 1 or out[-1] > n_bonds):
        raise ValueError(f"{name}: bond indices are 1-based and must lie in 1..{n_bonds}")
    if np.unique(out).size != out.size:
        raise ValueError(f"{name}: duplicate bond indices")
    return out


def _r2(rss: float, y: np.ndarray) -> float:
    """R^2 = 1 - RSS/TSS; 1.0 for a constant target fitted exactly, -inf if fitted badly.

    "Exactly" and "constant" are judged up to float round-off of the data's scale.
    """
    tss = float(np.sum((y - y.mean()) ** 2))
    roundoff = y.size * (64 * np.finfo(np.float64).eps * max(1.0, float(np.max(np.abs(y))))) ** 2
    if tss <= roundoff:
        return 1.0 if rss <= roundoff else -math.inf
    return 1.0 - rss / tss


def _aic(rss: float, n: int) -> float:
    """Akaike information criterion for Gaussian residuals, ``n ln(RSS/n) + 2 k``."""
    return n * math.log(max(rss / n, _RSS_FLOOR_PER_POINT)) + 2 * _N_PARAMS


def _lstsq_line(x: np.ndarray, y: np.ndarray, what: str) -> tuple[float, float, np.ndarray]:
    """Fit ``y = slope * x + intercept``; return slope, intercept and residuals."""
    if np.ptp(x) == 0.0:
        raise ValueError(
            f"{what}: the bonds used give a single regressor value; choose bonds at "
            "different distances from the chain ends"
        )
    design = np.column_stack([x, np.ones_like(x)])
    (slope, intercept), *_ = np.linalg.lstsq(design, y, rcond=None)
    residuals = y - (slope * x + intercept)
    return float(slope), float(intercept), residuals


# ---------------------------------------------------------------------------------------------
# Cardy (area law with logarithmic corrections)
# ---------------------------------------------------------------------------------------------


def chord_regressor(
    bonds: np.ndarray | Sequence[int], n_sites: int, boundary: Boundary
) -> np.ndarray:
    """The coefficient of ``c`` in the Cardy law at 1-based ``bonds`` of an ``n_sites`` chain.

    ``(1/3) ln[(N/pi) sin(pi l/N)]`` (periodic) or ``(1/6) ln[(2N/pi) sin(pi l/N)]`` (open).
    """
    if boundary not in _BOUNDARIES:
        raise ValueError(f"boundary: expected one of {_BOUNDARIES}, got {boundary!r}")
    l = np.asarray(bonds, dtype=np.float64)
    sine = np.sin(np.pi * l / n_sites)
    if boundary == "periodic":
        return np.log(n_sites / np.pi * sine) / 3.0
    return np.log(2.0 * n_sites / np.pi * sine) / 6.0


@dataclass(frozen=True, eq=False)
class CardyFit:
    """Least-squares fit of the Cardy chord law to a profile.

    Attributes:
        c: effective central charge (dimensionless).
        c0: non-universal offset (nats).
        r2: coefficient of determination over the fitted bonds.
        boundary: ``"periodic"``: ``S_l = (c/3) ln[(N/pi) sin(pi l/N)] + c0``;
            ``"open"``: ``S_l = (c/6) ln[(2N/pi) sin(pi l/N)] + c0``.
        n_sites: ``N``, the number of sites (bonds + 1).
        rss: residual sum of squares (nats^2).
        aic: ``n ln(RSS/n) + 2 k`` with ``k = 2`` and ``n = len(bonds_used)``.
        residuals: data minus fit at ``bonds_used`` (nats), read-only.
        bonds_used: the 1-based bonds fitted, ascending, read-only.
    """

    c: float
    c0: float
    r2: float
    boundary: Boundary
    n_sites: int
    rss: float
    aic: float
    residuals: np.ndarray
    bonds_used: np.ndarray

    def predict(self, bonds: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """The fitted law at 1-based ``bonds`` (all ``1..N-1`` by default), in nats."""
        if bonds is None:
            bonds = np.arange(1, self.n_sites)
        return self.c * chord_regressor(bonds, self.n_sites, self.boundary) + self.c0


def fit_cardy(
    profile: Sequence[float] | np.ndarray,
    boundary: Boundary = "periodic",
    *,
    bonds: Iterable[int] | None = None,
) -> CardyFit:
    """Fit the Cardy chord law ("Attention Cardy Formula") to an entanglement profile.

    Args:
        profile: bond entropies ``S_1 .. S_{N-1}`` in nats (1-D, finite, at least 3 bonds);
            the chain has ``N = len(profile) + 1`` sites.
        boundary: ``"periodic"`` fits ``S_l = (c/3) ln[(N/pi) sin(pi l/N)] + c0``,
            ``"open"`` fits ``S_l = (c/6) ln[(2N/pi) sin(pi l/N)] + c0``.
        bonds: 1-based bonds to fit (default: all); at least 3, at two or more different
            distances from the chain ends.

    Returns:
        A :class:`CardyFit`.

    Raises:
        ValueError: bad ``boundary``, bad profile, or unusable ``bonds``.
    """
    if boundary not in _BOUNDARIES:
        raise ValueError(f"boundary: expected one of {_BOUNDARIES}, got {boundary!r}")
    y_all = _as_profile(profile)
    n_bonds = y_all.size
    n_sites = n_bonds + 1
    used = np.arange(1, n_sites) if bonds is None else _as_bonds(bonds, n_bonds, "bonds")
    if used.size < 3:
        raise ValueError(f"bonds: need at least 3 bonds to fit, got {used.size}")
    x = chord_regressor(used, n_sites, boundary)
    y = y_all[used - 1]
    c, c0, residuals = _lstsq_line(x, y, "fit_cardy")
    rss = float(residuals @ residuals)
    return CardyFit(
        c=c,
        c0=c0,
        r2=_r2(rss, y),
        boundary=boundary,
        n_sites=n_sites,
        rss=rss,
        aic=_aic(rss, used.size),
        residuals=_frozen_array(residuals),
        bonds_used=_frozen_array(used).astype(np.int64),
    )


# ---------------------------------------------------------------------------------------------
# Volume law
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class VolumeFit:
    """Least-squares fit of the volume law ``S_l = slope * min(l, N-l) + intercept``.

    Attributes:
        slope: nats per site (``ln 2`` for a Page curve of qubits, far from the middle).
        intercept: nats.
        r2: coefficient of determination over the fitted bonds.
        rss: residual sum of squares (nats^2).
        aic: ``n ln(RSS/n) + 2 k`` with ``k = 2``.
        n_points: number of bonds fitted.
        bonds_used: the 1-based bonds fitted, ascending, read-only.
        n_sites: ``N``, the number of sites (bonds + 1).
        residuals: data minus fit at ``bonds_used`` (nats), read-only.
    """

    slope: float
    intercept: float
    r2: float
    rss: float
    aic: float
    n_points: int
    bonds_used: np.ndarray
    n_sites: int
    residuals: np.ndarray

    def predict(self, bonds: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """The fitted law at 1-based ``bonds`` (all ``1..N-1`` by default), in nats."""
        l = np.arange(1, self.n_sites) if bonds is None else np.asarray(bonds)
        return self.slope * np.minimum(l, self.n_sites - l) + self.intercept


def fit_volume(
    profile: Sequence[float] | np.ndarray, exclude: Iterable[int] | None = None
) -> VolumeFit:
    """Fit the volume law ``S_l = slope * min(l, N-l) + intercept``.

    Args:
        profile: bond entropies ``S_1 .. S_{N-1}`` in nats (1-D, finite, at least 3 bonds).
        exclude: 1-based bonds left out of the fit, e.g. the valley window around the
            row|column cut (``range(a - k, a + k + 1)``). Indices outside ``1..N-1`` are an
            error; at least 3 bonds must remain.

    Returns:
        A :class:`VolumeFit`.
    """
    y_all = _as_profile(profile)
    n_bonds = y_all.size
    n_sites = n_bonds + 1
    used = _used_bonds(n_bonds, exclude)
    x = np.minimum(used, n_sites - used).astype(np.float64)
    y = y_all[used - 1]
    slope, intercept, residuals = _lstsq_line(x, y, "fit_volume")
    rss = float(residuals @ residuals)
    return VolumeFit(
        slope=slope,
        intercept=intercept,
        r2=_r2(rss, y),
        rss=rss,
        aic=_aic(rss, used.size),
        n_points=int(used.size),
        bonds_used=_frozen_array(used).astype(np.int64),
        n_sites=n_sites,
        residuals=_frozen_array(residuals),
    )


def _used_bonds(n_bonds: int, exclude: Iterable[int] | None) -> np.ndarray:
    """Bonds ``1..n_bonds`` minus ``exclude`` (validated); at least 3 must remain."""
    all_bonds = np.arange(1, n_bonds + 1)
    if exclude is None:
        return all_bonds
    excluded = _as_bonds(set(int(b) for b in exclude), n_bonds, "exclude")
    used = np.setdiff1d(all_bonds, excluded)
    if used.size < 3:
        raise ValueError(f"exclude: leaves {used.size} bonds, need at least 3 to fit")
    return used


# ---------------------------------------------------------------------------------------------
# Law selection
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LawComparison:
    """Area+log (Cardy) against volume law on the same bonds.

    Attributes:
        cardy: the :class:`CardyFit`.
        volume: the :class:`VolumeFit`.
        delta_aic: ``volume.aic - cardy.aic``; positive favours area+log.
        best: ``"area+log"`` if ``delta_aic > 0`` else ``"volume"`` (ties go to volume,
            the law with the simpler regressor).
    """

    cardy: CardyFit
    volume: VolumeFit
    delta_aic: float
    best: Literal["area+log", "volume"]


def compare_laws(
    profile: Sequence[float] | np.ndarray,
    *,
    exclude: Iterable[int] | None = None,
    boundary: Boundary = "periodic",
) -> LawComparison:
    """Fit both the Cardy law and the volume law (2 parameters each) and compare by AIC.

    Args:
        profile: bond entropies in nats (1-D, finite, at least 3 bonds).
        exclude: 1-based bonds left out of *both* fits, so their AICs share data.
        boundary: boundary form of the Cardy law, ``"periodic"`` or ``"open"``.

    Returns:
        A :class:`LawComparison`.
    """
    y_all = _as_profile(profile)
    exclude = None if exclude is None else list(exclude)
    used = _used_bonds(y_all.size, exclude)
    cardy = fit_cardy(y_all, boundary, bonds=used)
    volume = fit_volume(y_all, exclude=exclude)
    delta = volume.aic - cardy.aic
    return LawComparison(
        cardy=cardy,
        volume=volume,
        delta_aic=float(delta),
        best="area+log" if delta > 0 else "volume",
    )


# ---------------------------------------------------------------------------------------------
# The Entanglement Valley
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Valley:
    """The dip of a profile at the row|column cut.

    Attributes:
        cut: 1-based bond of the cut (the number of row sites, ``a``).
        k: half-width of the valley used for the depth.
        depth: ``(S_left + S_right)/2 - S_cut`` in nats, with ``left = max(cut - k, 1)`` and
            ``right = min(cut + k, N - 1)``.
        center_entropy: ``S_cut`` (nats).
        page: Page value at the cut (nats) for the site dimensions given.
        ratio: ``S_cut / page`` (NaN when ``page == 0``).
        rank: the rank passed, or None.
        bound: ``ln(rank)`` (nats), or None.
        within_bound: ``S_cut <= ln(rank) + tol``, or None without a rank.
        left_bond: the bond used on the left (after clipping).
        right_bond: the bond used on the right (after clipping).
    """

    cut: int
    k: int
    depth: float
    center_entropy: float
    page: float
    ratio: float
    rank: int | None
    bound: float | None
    within_bound: bool | None
    left_bond: int
    right_bond: int


def valley(
    profile: Sequence[float] | np.ndarray,
    cut: int,
    k: int = 2,
    *,
    rank: int | None = None,
    dims: Sequence[int] | None = None,
    tol: float = 1e-9,
) -> Valley:
    """Valley metrics at the row|column cut (docs/method.md, "Fits").

    Args:
        profile: bond entropies ``S_1 .. S_{N-1}`` in nats (1-D, finite, at least 3 bonds).
        cut: 1-based bond of the row|column cut, i.e. the number of row sites, in ``1..N-1``.
        k: half-width of the valley (positive). The side bonds ``cut - k`` and ``cut + k``
            are clipped to ``1..N-1`` when they fall outside the chain, so near an end the
            depth is taken against the outermost bond instead.
        rank: rank of the update, for the bound ``S_cut <= ln(rank)``.
        dims: the ``N`` site dimensions, for the Page value at the cut
            (``dA = prod(dims[:cut])``, ``dB = prod(dims[cut:])``). Default: all qubits.
        tol: slack (nats) allowed in the bound check, for round-off.

    Returns:
        A :class:`Valley`.
    """
    y = _as_profile(profile)
    n_sites = y.size + 1
    if isinstance(cut, bool) or int(cut) != cut or not 1 <= cut <= n_sites - 1:
        raise ValueError(f"cut: must be a bond index in 1..{n_sites - 1}, got {cut!r}")
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"k: must be a positive integer, got {k!r}")
    cut, k = int(cut), int(k)
    if dims is None:
        site_dims = [2] * n_sites
    else:
        site_dims = [int(d) for d in dims]
        if len(site_dims) != n_sites or any(d < 1 for d in site_dims):
            raise ValueError(
                f"dims: expected {n_sites} positive site dimensions for a profile of "
                f"{y.size} bonds, got {list(dims)}"
            )
    if rank is not None and (isinstance(rank, bool) or int(rank) != rank or rank < 1):
        raise ValueError(f"rank: must be a positive integer, got {rank!r}")

    left, right = max(cut - k, 1), min(cut + k, n_sites - 1)
    center = float(y[cut - 1])
    depth = 0.5 * (y[left - 1] + y[right - 1]) - center
    page = page_entropy(math.prod(site_dims[:cut]), math.prod(site_dims[cut:]))
    ratio = center / page if page > 0 else math.nan
    bound = math.log(rank) if rank is not None else None
    return Valley(
        cut=cut,
        k=k,
        depth=float(depth),
        center_entropy=center,
        page=float(page),
        ratio=float(ratio),
        rank=None if rank is None else int(rank),
        bound=bound,
        within_bound=None if bound is None else bool(center <= bound + tol),
        left_bond=left,
        right_bond=right,
    )
