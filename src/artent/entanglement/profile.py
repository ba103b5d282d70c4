"""Exact entanglement profiles of matrices, factored updates, states and tensors.

The object of the whole project (docs/method.md, "The profile"): a matrix or tensor is normalised to
a state ``psi`` (Frobenius norm one) over a chain of ``N`` sites, and bond ``l`` (``1 <= l <= N -
1``) splits the sites into ``[1..l] | [l+1..N]``. With ``p_k`` the squared Schmidt values across
that bond, the von Neumann entropy is ``S_l = -sum_k p_k ln p_k`` and the Renyi-``alpha`` entropy
``ln(sum_k p_k^alpha) / (1 - alpha)``; nats unless ``base=2``.

How it stays exact and cheap (no truncation, no SVD of the full state per bond):

* dense input: one Gram matrix per side of the chain, taken at the most balanced bond that side
  owns (``rho_L = X X^T`` with ``X`` the state reshaped at that bond), then every smaller bond's
  reduced density matrix by partial trace of that one. The spectra of ``rho_L`` at bond ``l`` and
  of the complementary ``rho_R`` agree, so each bond uses whichever side is smaller. For a square
  ``4096 x 4096`` matrix this is one ``M M^T``, one half-size Gram on the column side and their
  eigenvalues: about the cost of ``eigvalsh(M @ M.T)`` alone. Each matrix is traced down to the
  next bond's before its eigenvalues are taken, so the (two-stage, for the largest) eigensolver
  works in place; the state itself is never normalised or copied (each bond's weights are
  normalised instead), and a float32 state stays float32, its Gram matrix accumulated in float64
  block by block (:mod:`artent.entanglement.backend`, :mod:`artent.entanglement.lapack`).
* ``LowRank(B, A)``: QR of both factors, ``M = Q_B K Q_A^T`` with ``K`` only ``r x r``. Because
  ``Q_A`` has orthonormal columns, every bond on the row side has the spectrum of the ``m x r``
  matrix ``Q_B K`` read as a chain ``(row sites..., r)``; every bond on the column side that of the
  ``r x n`` matrix ``K Q_A^T``. Nothing of size ``m x n`` is ever formed.

Eigenvalues of a Gram matrix carry an absolute error of about ``eps * dim`` of the largest one.
Von Neumann and Renyi (``alpha >= 1``) entropies feel that noise below ``1e-10``; for
``alpha < 1`` it would be amplified, so there weights under ``8 * eps * dim`` of the largest count
as zero, and a genuine weight that small is dropped: pass ``method="svd"`` where that matters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import log, prod
from typing import Any

import numpy as np

from artent.entanglement.backend import NumpyBackend, pick_backend, to_numpy_float
from artent.entanglement.sites import ORDERS, check_dims, matrix_layout, prime_factors

METHODS = ("auto", "gram", "svd")


@dataclass(frozen=True)
class LowRank:
    """A factored matrix ``scale * B @ A`` (a LoRA update), never formed densely by the profile.

    Args:
        B: ``m x r`` factor (numpy array or torch tensor, any float dtype).
        A: ``r x n`` factor.
        scale: scalar multiplier (LoRA's ``alpha / r``); it does not change the profile, which is
            scale-free, but it is kept so that :meth:`to_dense` is the true update.
    """

    B: Any
    A: Any
    scale: float = 1.0

    def __post_init__(self) -> None:
        b_shape, a_shape = tuple(self.B.shape), tuple(self.A.shape)
        if len(b_shape) != 2 or len(a_shape) != 2:
            raise ValueError(
                f"LowRank factors must be 2-D, got B of shape {b_shape} and A of shape {a_shape}"
            )
        if b_shape[1] == 0 or a_shape[0] == 0:
            raise ValueError(f"LowRank has a rank-0 factor: B {b_shape}, A {a_shape}")
        if b_shape[1] != a_shape[0]:
            raise ValueError(
                f"LowRank factors do not chain: B is {b_shape} but A is {a_shape} "
                f"(B's columns must equal A's rows)"
            )
        if not np.isfinite(float(self.scale)):
            raise ValueError(f"LowRank scale must be finite, got {self.scale}")

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.B.shape[0]), int(self.A.shape[1]))

    @property
    def rank(self) -> int:
        """The inner dimension ``r`` (an upper bound on the true rank)."""
        return int(self.A.shape[0])

    def to_dense(self) -> np.ndarray:
        """``scale * B @ A`` in float64 (for checks; the profile never calls this)."""
        return float(self.scale) * (to_numpy_float(self.B) @ to_numpy_float(self.A))


def entropies_from_spectrum(
    p: np.ndarray, renyi: float = 1.0, base: str | int | float = "e"
) -> float:
    """Entropy of one normalised spectrum of Schmidt weights ``p`` (summing to one).

    Args:
        p: squared Schmidt values of one bond.
        renyi: Renyi index ``alpha`` (``1`` = von Neumann, ``0`` = log rank, ``inf`` = min-entropy).
        base: ``"e"`` for nats, ``2`` for bits.
    """
    if renyi < 1:
        # Gram eigenvalues carry absolute noise of ~eps * dim * max; p**alpha with alpha < 1 would
        # amplify it, so weights under that floor count as zero (see the module docstring).
        p = p[p > 8.0 * np.finfo(np.float64).eps * len(p) * p.max()]
    p = p[p > 0]
    if renyi == 1:
        s = float(-(p * np.log(p)).sum())
    elif renyi == 0:
        s = log(len(p))
    elif np.isinf(renyi):
        s = float(-np.log(p.max()))
    else:
        s = float(np.log((p**renyi).sum()) / (1.0 - renyi))
    s = max(s, 0.0)
    return s / log(2) if log_base(base) == 2 else s


def log_base(base: str | int | float) -> int:
    if base in ("e", "nats", "nat"):
        return 0
    if base in (2, "2", "bits", "bit", 2.0):
        return 2
    raise ValueError(f"unknown base {base!r}: use 'e' (nats) or 2 (bits)")


def check_renyi(renyi: float) -> float:
    try:
        alpha = float(renyi)
    except (TypeError, ValueError):
        raise ValueError(f"renyi must be a number >= 0, got {renyi!r}") from None
    if not alpha >= 0:
        raise ValueError(f"renyi must be a number >= 0, got {renyi!r}")
    return alpha


def _clean(ev: np.ndarray) -> np.ndarray:
    """Clip a Gram spectrum's rounding negatives to zero and renormalise it."""
    ev = np.clip(np.asarray(ev, dtype=np.float64), 0.0, None)
    return ev / ev.sum()


def chain_spectra(psi: Any, dims: Sequence[int], backend=None) -> list[np.ndarray]:
    """Schmidt weights at every bond of a state on a chain, by partial traces.

    Args:
        psi: the state, any shape with ``prod(dims)`` elements, in chain order (row-major), at any
            scale (each bond's weights are normalised to sum to one).
        dims: site dimensions along the chain.
        backend: a backend from :func:`artent.entanglement.backend.pick_backend` (numpy default).

    Returns:
        ``N - 1`` arrays; entry ``l - 1`` holds the normalised squared Schmidt values of bond ``l``.
    """
    bk = backend or NumpyBackend()
    n = len(dims)
    total = prod(dims)
    left = [prod(dims[:l]) for l in range(n + 1)]  # left[l] = dimension of sites [1..l]
    spectra: list[np.ndarray | None] = [None] * (n - 1)
    # Bonds whose left side is no larger than the right are read from the left, the others from
    # the right; each side starts from its most balanced bond, the only Gram matrix it forms.
    # Each matrix is traced down to the next bond's before its eigenvalues are taken, so that the
    # eigensolver may use it as workspace (no copy of the largest matrices).
    left_bonds = [l for l in range(1, n) if left[l] <= total // left[l]]
    right_bonds = [l for l in range(1, n) if left[l] > total // left[l]]
    if left_bonds:
        c = left_bonds[-1]
        rho = bk.gram_rows(psi.reshape(left[c], total // left[c]))
        for l in range(c, 0, -1):
            smaller = bk.trace_last(rho, left[l - 1], dims[l - 1]) if l > 1 else None
            spectra[l - 1] = _clean(bk.to_numpy(bk.eigvalsh(rho, overwrite=True)))
            rho = smaller
    if right_bonds:
        c = right_bonds[0]
        sigma = bk.gram_cols(psi.reshape(left[c], total // left[c]))
        for l in range(c, n):
            smaller = bk.trace_first(sigma, total // left[l + 1], dims[l]) if l < n - 1 else None
            spectra[l - 1] = _clean(bk.to_numpy(bk.eigvalsh(sigma, overwrite=True)))
            sigma = smaller
    return spectra  # type: ignore[return-value]


def chain_spectra_svd(psi: np.ndarray, dims: Sequence[int]) -> list[np.ndarray]:
    """Reference: one SVD of the full state per bond (slow; for tests and benchmarks)."""
    psi = to_numpy_float(psi)
    total = prod(dims)
    out = []
    for l in range(1, len(dims)):
        s = np.linalg.svd(psi.reshape(prod(dims[:l]), total // prod(dims[:l])), compute_uv=False)
        p = s**2
        out.append(p / p.sum())
    return out


def _validated(x: Any, what: str, backend) -> Any:
    """``x`` as the backend's state (float32 kept on numpy), checked finite and nonzero; not
    normalised: every bond's weights are normalised by their sum instead, which costs a vector
    per bond rather than a copy of the state."""
    return backend.checked(backend.state(x), what)


def _low_rank_spectra(lr: LowRank, row_dims, col_dims, backend) -> list[np.ndarray]:
    """Spectra of ``B @ A`` at every sequential bond, from ``m x r`` and ``r x n`` pieces."""
    # each factor checked and, where its entries are far from 1 (1e300), rescaled as a dense state
    # is: the profile is scale-free, and the norm of their product would overflow
    B = backend.checked(backend.asarray(lr.B), "LowRank factor B")
    A = backend.checked(backend.asarray(lr.A), "LowRank factor A")
    # B = Q_B R_B and A^T = Q_A R_A, so B A = Q_B (R_B R_A^T) Q_A^T. Only the R factors are
    # needed: B R_A^T = Q_B R_B R_A^T carries the row side, R_B A the column side.
    r_b = backend.qr_r(B)
    r_a = backend.qr_r(A.T)
    norm = backend.norm(r_b @ r_a.T)  # = ||B A||_F
    if norm == 0.0:
        raise ValueError("LowRank product B @ A is all zeros (a zero update has no state)")
    row_side = (B @ r_a.T) / norm  # m x k: the row-side bonds and the cut
    col_side = (r_b @ A) / norm  # k x n: the column-side bonds
    rows = chain_spectra(row_side, [*row_dims, row_side.shape[1]], backend)
    cols = chain_spectra(col_side, [col_side.shape[0], *col_dims], backend)
    # rows[l-1] is bond l for l = 1..a (bond a = sigma(B A)); cols[j] is bond a + j for j >= 1.
    return rows[: len(row_dims)] + cols[1:]


def schmidt_spectra(
    x: Any,
    dims: Any = None,
    *,
    order: str = "sequential",
    method: str = "auto",
    device: Any = None,
) -> list[np.ndarray]:
    """Normalised squared Schmidt values at every bond; see :func:`entanglement_profile`.

    Returns:
        a list of ``N - 1`` float64 arrays (each sums to one), entry ``l - 1`` for bond ``l``.
    """
    if order not in ORDERS:
        raise ValueError(f"unknown site order {order!r}; expected one of {ORDERS}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    x = _as_array(x)
    _check_device(device)
    if isinstance(x, LowRank):
        layout = matrix_layout(x.shape, dims, order)
        if order == "sequential" and method != "svd":
            _need_bonds(layout.n_sites, "LowRank input")
            return _low_rank_spectra(x, layout.row_dims, layout.col_dims, pick_backend(x.A, device))
        x = x.to_dense()  # interleaved chains mix rows and columns: no factored route
    backend = NumpyBackend() if method == "svd" else pick_backend(x, device)
    shape = tuple(x.shape)
    if len(shape) == 2 and not _is_flat_dims(dims):
        layout = matrix_layout(shape, dims, order)
        chain = layout.dims
        what = f"matrix of shape {shape}"
        psi = _validated(x, what, backend).reshape([*layout.row_dims, *layout.col_dims])
        if order == "interleaved":
            psi = backend.transpose(psi, layout.axes)
    else:
        if order != "sequential":
            raise ValueError("order='interleaved' applies to matrices only (pass a 2-D array)")
        size = prod(shape)
        what = f"{len(shape)}-d array of shape {shape}"
        if dims is None:
            chain = list(shape) if len(shape) > 1 else prime_factors(size)
            chain = [d for d in chain if d != 1]
        else:
            chain = check_dims(dims, size, f"the {what}")
        psi = _validated(x, what, backend)
    _need_bonds(len(chain), what)
    if method == "svd":
        return chain_spectra_svd(psi, chain)
    return chain_spectra(psi, chain, backend)


def _as_array(x: Any) -> Any:
    """``x`` as something with a shape: arrays, tensors and ``LowRank`` as they are; nested lists
    of numbers through numpy; anything else a ``TypeError`` naming ``x``."""
    if isinstance(x, LowRank):
        if float(x.scale) == 0:  # the readers mark such updates zero and never profile them
            raise ValueError("x: LowRank scale is 0, so scale * B @ A is the zero matrix")
        return x
    if hasattr(x, "shape"):
        return x
    if x is None or isinstance(x, (str, bytes, dict)) or not isinstance(x, (list, tuple)):
        raise TypeError(
            f"x must be a matrix, state or tensor (numpy, torch, nested lists) or a LowRank, "
            f"got {type(x).__name__}"
        )
    try:
        return np.asarray(x, dtype=float)
    except (ValueError, TypeError):
        raise ValueError(
            "x: a nested list whose rows differ in length or hold non-numbers is not an array"
        ) from None


def _check_device(device: Any) -> None:
    """A device named by a string must be one torch has here (``"cuda"`` without a GPU is
    refused before any work); ``None``, ``"numpy"`` and torch devices pass."""
    if isinstance(device, str) and device != "numpy":
        from artent.validation import check_device

        check_device(device, "device")
    elif device is not None and device != "numpy" and type(device).__name__ != "device":
        raise TypeError(f"device must be None, 'numpy' or a torch device, got {device!r}")


def _is_flat_dims(dims: Any) -> bool:
    return dims is not None and len(dims) > 0 and all(np.isscalar(d) for d in dims)


def _need_bonds(n_sites: int, what: str) -> None:
    if n_sites < 2:
        raise ValueError(f"{what} splits into {n_sites} site(s): a profile needs at least 2")


def entanglement_profile(
    x: Any,
    dims: Any = None,
    *,
    renyi: float = 1.0,
    base: str | int = "e",
    order: str = "sequential",
    method: str = "auto",
    device: Any = None,
) -> np.ndarray:
    """Exact entanglement entropy at every bond of a matrix, factored update, state or tensor.

    Args:
        x: one of
            * a 2-D matrix ``m x n`` (numpy or torch, any float dtype), read as
              ``vec(M) / ||M||_F`` flattened row-major, row sites before column sites;
            * ``LowRank(B, A, scale)`` meaning ``scale * B @ A`` (never formed densely);
            * a 1-D state with ``dims`` (or split into prime factors when ``dims`` is None);
            * an n-d array, one site per axis (axes of length one are dropped).
        dims: site dimensions. For a matrix ``(row_dims, col_dims)`` (default: prime factors of
            each side, smallest first) or a flat list over the row-major flattening; for a state or
            tensor a flat list whose product is its size.
        renyi: Renyi index ``alpha >= 0``; ``1`` (default) is the von Neumann entropy.
        base: ``"e"`` (nats, default) or ``2`` (bits).
        order: ``"sequential"`` (row sites then column sites; bond ``len(row_dims)`` is the
            row|column cut) or ``"interleaved"`` (row, column, row, ...; matrices only).
        method: ``"auto"``/``"gram"`` (partial traces of Gram matrices, exact) or ``"svd"`` (one SVD
            of the full state per bond: the slow reference).
        device: ``None`` computes with numpy on the CPU (or with torch where ``x`` is a GPU
            tensor); a torch device (``"cuda"``, ``"cpu"``) computes there with torch, float64.

    Returns:
        ``numpy.ndarray`` of shape ``(N - 1,)``; entry ``l - 1`` is ``S_l`` across bond ``l``.

    Raises:
        ValueError: zero, NaN or Inf input; dims whose product does not match; a rank-0 factor;
            fewer than two sites; an unknown option.
    """
    alpha = check_renyi(renyi)
    log_base(base)
    spectra = schmidt_spectra(x, dims, order=order, method=method, device=device)
    return np.array([entropies_from_spectrum(p, alpha, base) for p in spectra])
