"""Splitting array dimensions into sites, and the order of sites along the chain.

A matrix ``M`` of shape ``m x n`` is read as a state over ``N`` sites: the row index splits into
``a`` sites and the column index into ``b`` sites (``N = a + b``), most significant factor first,
exactly as a row-major reshape splits them. By default each side splits into its prime factors,
smallest first, so a power of two becomes qubits (``4096 -> [2] * 12``).

Site orders (docs/method.md, "States and sites"):

``sequential`` (default)
    all row sites, then all column sites. Bond ``a`` (between site ``a`` and ``a + 1``, 1-based) is
    exactly the row|column cut, so a rank-``r`` matrix pins that bond at ``S <= ln r``.
``interleaved``
    row site 1, column site 1, row site 2, ... (the MPO order), for sides with equal site counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import prod

ORDERS = ("sequential", "interleaved")


def prime_factors(n: int) -> list[int]:
    """Prime factors of ``n``, smallest first (``prime_factors(96) == [2, 2, 2, 2, 2, 3]``).

    ``prime_factors(1)`` is ``[]``: a dimension of one carries no site.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"cannot split dimension {n} into sites: it must be >= 1")
    out: list[int] = []
    p = 2
    while p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    if n > 1:
        out.append(n)
    return out


def check_dims(dims: Sequence[int], size: int, what: str) -> list[int]:
    """Check site dimensions ``dims`` against ``size`` elements of ``what``; return them as ints."""
    try:
        out = [int(d) for d in dims]
    except (TypeError, ValueError):
        raise ValueError(f"site dims for {what} must be a list of integers, got {dims!r}") from None
    if any(d < 2 for d in out):
        raise ValueError(f"site dims for {what} must all be >= 2, got {out}")
    if prod(out) != size:
        raise ValueError(
            f"site dims {out} for {what} multiply to {prod(out)}, but it has {size} elements"
        )
    return out


@dataclass(frozen=True)
class SiteLayout:
    """How a matrix is laid out as a chain of sites.

    Attributes:
        row_dims: site dimensions of the row index, most significant first.
        col_dims: site dimensions of the column index, most significant first.
        order: ``"sequential"`` or ``"interleaved"``.
    """

    row_dims: tuple[int, ...]
    col_dims: tuple[int, ...]
    order: str = "sequential"

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ValueError(f"unknown site order {self.order!r}; expected one of {ORDERS}")
        if self.order == "interleaved" and len(self.row_dims) != len(self.col_dims):
            raise ValueError(
                "order='interleaved' needs as many row sites as column sites, got "
                f"{len(self.row_dims)} row sites {list(self.row_dims)} and "
                f"{len(self.col_dims)} column sites {list(self.col_dims)}"
            )

    @property
    def dims(self) -> list[int]:
        """Site dimensions along the chain, in chain order."""
        if self.order == "sequential":
            return [*self.row_dims, *self.col_dims]
        return [d for pair in zip(self.row_dims, self.col_dims, strict=True) for d in pair]

    @property
    def n_sites(self) -> int:
        return len(self.row_dims) + len(self.col_dims)

    @property
    def cut(self) -> int | None:
        """1-based bond of the row|column cut (``len(row_dims)``); ``None`` when interleaved."""
        return len(self.row_dims) if self.order == "sequential" else None

    @property
    def axes(self) -> list[int]:
        """Permutation taking the ``(*row_dims, *col_dims)`` tensor to chain order."""
        a = len(self.row_dims)
        if self.order == "sequential":
            return list(range(self.n_sites))
        return [i for k in range(a) for i in (k, a + k)]


def matrix_layout(
    shape: tuple[int, int],
    dims: tuple[Sequence[int], Sequence[int]] | None = None,
    order: str = "sequential",
) -> SiteLayout:
    """Site layout of an ``m x n`` matrix.

    Args:
        shape: ``(m, n)``.
        dims: ``(row_dims, col_dims)``; ``None`` splits each side into prime factors (smallest
            first).
        order: ``"sequential"`` or ``"interleaved"``.
    """
    m, n = (int(s) for s in shape)
    if dims is None:
        row_dims, col_dims = prime_factors(m), prime_factors(n)
    else:
        if len(dims) != 2:
            raise ValueError(
                "dims for a matrix must be (row_dims, col_dims) or a flat list of site dims, "
                f"got {dims!r}"
            )
        row_dims = check_dims(dims[0], m, f"the {m} rows")
        col_dims = check_dims(dims[1], n, f"the {n} columns")
    return SiteLayout(tuple(row_dims), tuple(col_dims), order)
