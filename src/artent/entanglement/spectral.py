"""Spectral companions of the profile: effective ranks, stable rank, norms, intruder dimensions.

What researchers who compare LoRA with full fine-tuning already measure, beside ``S_cut``
(definitions and references: docs/method.md, "Spectral companions"). With ``s_k`` the singular
values of a matrix and ``p_k = s_k^2 / sum s^2`` (the Schmidt weights at the row|column cut):

* ``effective_rank(p) = exp(-sum p ln p)``: ``exp(S_cut)``, the effective Schmidt rank;
* ``roy_vetterli_rank(p) = exp(-sum q ln q)`` with ``q_k = s_k / sum s`` (Roy and Vetterli, 2007);
* ``stable_rank(p) = sum s^2 / max s^2 = 1 / max p`` (Rudelson and Vershynin, 2007);
* ``relative_norm(update, weight) = ||dW||_F / ||W||_F``;
* ``intruder_dimensions(weight, update, k, eps)``: among the top ``k`` left singular vectors of
  ``W + dW``, those whose largest ``|cos|`` with any left singular vector of ``W`` is below
  ``eps`` (Shuttleworth et al., 2024; peft 0.21's ``reduce_intruder_dimension``).

The first three are functions of one bond's spectrum, which the profile already holds: nothing new
is formed. :func:`squared_singular_values` gives that spectrum where no profile was taken, and
keeps a :class:`~artent.entanglement.profile.LowRank` factored (QR of both factors, then the
``r x r`` core). Intruder dimensions need the singular vectors of ``W`` and ``W + dW``: two dense
SVDs, which is fine since ``W`` is dense anyway.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from artent.entanglement.backend import (
    GRAM_BLOCK_ELEMENTS,
    real_gram,
    to_numpy_float,
    to_numpy_state,
)
from artent.entanglement.profile import LowRank

#: Shuttleworth et al. (2024) examine the top 10 singular vectors; peft 0.21's
#: ``reduce_intruder_dimension`` defaults to ``top_k=10``, ``threshold_epsilon=0.5``.
INTRUDER_K = 10
INTRUDER_EPS = 0.5

__all__ = [
    "INTRUDER_EPS",
    "INTRUDER_K",
    "effective_rank",
    "frobenius_norm",
    "intruder_cosines",
    "intruder_dimensions",
    "relative_norm",
    "roy_vetterli_rank",
    "spectral_ranks",
    "squared_singular_values",
    "stable_rank",
]


def _weights(p: Any) -> np.ndarray:
    """A spectrum of squared singular values as float64 weights summing to one (noise dropped)."""
    p = np.clip(np.asarray(p, dtype=np.float64).ravel(), 0.0, None)
    if not p.size or not p.max() > 0 or not np.isfinite(p).all():
        raise ValueError("spectrum must be finite, non-negative and not all zero")
    # Gram eigenvalues carry absolute noise ~ eps * dim * max (see profile.py): weights under that
    # floor are zero, or a square root (Roy-Vetterli) would lift them into the answer.
    p = np.where(p > 8.0 * np.finfo(np.float64).eps * p.size * p.max(), p, 0.0)
    return p / p.sum()


def _entropy(q: np.ndarray) -> float:
    q = q[q > 0]
    return float(-(q * np.log(q)).sum())


def effective_rank(p: Any) -> float:
    """``exp(S)`` of the squared singular values ``p`` (any scale): ``exp(S_cut)``."""
    return float(np.exp(_entropy(_weights(p))))


def roy_vetterli_rank(p: Any) -> float:
    """Roy and Vetterli's effective rank: ``exp`` of the entropy of ``s / sum s``, ``s^2 = p``."""
    s = np.sqrt(_weights(p))
    return float(np.exp(_entropy(s / s.sum())))


def stable_rank(p: Any) -> float:
    """``||M||_F^2 / ||M||_2^2 = sum p / max p`` of the squared singular values ``p``."""
    w = _weights(p)
    return float(1.0 / w.max())


def spectral_ranks(p: Any) -> dict[str, float]:
    """``effective_rank``, ``roy_vetterli_rank`` and ``stable_rank`` of one spectrum."""
    return dict(
        effective_rank=effective_rank(p),
        roy_vetterli_rank=roy_vetterli_rank(p),
        stable_rank=stable_rank(p),
    )


def _dense(matrix: Any, *, keep_float32: bool = False) -> np.ndarray:
    """A matrix as numpy, float64; with ``keep_float32`` float32 is kept (bf16/fp16 widened to
    float32), so that a weight is read without a float64 copy and its sums and Grams are
    accumulated in float64 instead."""
    if isinstance(matrix, LowRank):
        return matrix.to_dense()
    out = (to_numpy_state if keep_float32 else to_numpy_float)(matrix)
    if out.ndim != 2:
        raise ValueError(f"expected a matrix, got shape {out.shape}")
    return out


def squared_singular_values(matrix: Any) -> np.ndarray:
    """The squared singular values of a matrix, descending, float64.

    Args:
        matrix: a numpy array or torch tensor (``m x n``), or a ``LowRank`` (``scale * B A``):
            QR of ``B`` and ``A^T`` gives ``B A = Q_B (R_B R_A^T) Q_A^T``, so its singular values
            are those of the ``r x r`` core; nothing ``m x n`` is formed.
    """
    if isinstance(matrix, LowRank):
        B, A = to_numpy_float(matrix.B), to_numpy_float(matrix.A)
        core = float(matrix.scale) * (np.linalg.qr(B)[1] @ np.linalg.qr(A.T)[1].T)
        s = np.linalg.svd(core, compute_uv=False)
    else:
        s = np.linalg.svd(_dense(matrix), compute_uv=False)
    return np.sort(s**2)[::-1]


def frobenius_norm(matrix: Any) -> float:
    """``||M||_F``; for a ``LowRank`` from ``tr((B^T B)(A A^T))``, ``r x r`` work."""
    if isinstance(matrix, LowRank):
        B, A = to_numpy_float(matrix.B), to_numpy_float(matrix.A)
        fro2 = max(float(np.trace((B.T @ B) @ (A @ A.T))), 0.0)
        return abs(float(matrix.scale)) * float(np.sqrt(fro2))
    x = _dense(matrix, keep_float32=True)
    if x.dtype == np.float64:
        return float(np.linalg.norm(x))
    # float32 (a bf16/float32 weight): squares summed in float64, a block of rows at a time
    step = max(1, GRAM_BLOCK_ELEMENTS // max(x.shape[1], 1))
    total = sum(float(np.square(x[i : i + step], dtype=np.float64).sum())
                for i in range(0, x.shape[0], step))  # fmt: skip
    return float(np.sqrt(total))


def _float64_copy(matrix: Any) -> np.ndarray:
    """``matrix`` as a float64 array of our own (free to be overwritten)."""
    out = _dense(matrix)
    if not isinstance(matrix, LowRank) and np.shares_memory(out, np.asarray(matrix)):
        out = out.copy()
    return out


def relative_norm(update: Any, weight: Any) -> float:
    """``||dW||_F / ||W||_F`` (``inf`` for a zero ``W`` under a nonzero update)."""
    w = frobenius_norm(weight)
    d = frobenius_norm(update)
    if w == 0:
        return 0.0 if d == 0 else float("inf")
    return d / w


def _check_intruder_options(k: int, eps: float) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"intruder k must be a positive integer, got {k!r}")
    if not (isinstance(eps, (int, float)) and 0 <= eps <= 1):
        raise ValueError(f"intruder eps must be a number in [0, 1], got {eps!r}")


def intruder_cosines(weight: Any, update: Any, k: int = INTRUDER_K) -> np.ndarray:
    """The largest ``|cos|`` of each of the top ``k`` left singular vectors of ``W + dW`` with
    any left singular vector of ``W``.

    ``W``'s left singular vectors come from one symmetric eigenproblem of order ``min(m, n)``
    (:class:`_Basis`), kept (by the weight's bytes) for the next update of the same base weight:
    every checkpoint of a run shares its base. The top ``k`` of
    ``W + dW`` come from the ``k`` largest eigenpairs of its smaller Gram matrix (scipy's
    ``eigh`` with ``subset_by_index``; a full SVD without scipy); tests/entanglement/
    test_spectral.py checks the cosines and counts against numpy's SVD.

    Args:
        weight: the base weight ``W`` (``m x n``, numpy or torch).
        update: ``dW``, dense or ``LowRank``, same shape.
        k: how many of the top singular vectors of ``W + dW`` to examine (at most ``min(m, n)``).

    Returns:
        float64, length ``min(k, m, n)``, in order of the singular values of ``W + dW``.
    """
    _check_intruder_options(k, 0.5)
    W = _dense(weight, keep_float32=True)  # float32 stays float32: no float64 copy of the weight
    merged = _float64_copy(update)
    if W.shape != merged.shape:
        raise ValueError(f"weight {W.shape} and update {merged.shape} differ in shape")
    merged += W  # W + dW in float64, in place
    basis = _base_basis(W)
    u_merged = _top_left_vectors(merged, min(k, *W.shape))
    del merged
    return np.abs(basis.project(W, u_merged)).max(axis=0)


class _Basis:
    """``W``'s left singular vectors, held as cheaply as they can be applied.

    With ``m <= n`` they are the eigenvectors ``U`` of ``W W^T`` (``m x m``). With ``m > n`` they
    are ``U = W V S^-1`` from the eigenpairs of ``W^T W`` (``n x n``), never formed: ``U^T x =
    S^-1 V^T W^T x``, so only ``R = V S^-1`` is kept. Either way one symmetric eigenproblem of
    order ``min(m, n)`` with vectors, about a third of the time of the SVD it replaces.
    """

    def __init__(self, U: np.ndarray | None = None, R: np.ndarray | None = None) -> None:
        self.U, self.R = U, R

    @property
    def nbytes(self) -> int:
        return (self.U if self.U is not None else self.R).nbytes

    def project(self, W: np.ndarray, x: np.ndarray) -> np.ndarray:
        """``U^T x``: the cosines of the unit columns of ``x`` with every singular vector of W."""
        if self.U is not None:
            return self.U.T @ x
        if W.dtype == np.float64:
            return self.R.T @ (W.T @ x)
        # W^T x in float64 from a float32 W, a block of rows at a time (no float64 copy of W)
        step = max(1, GRAM_BLOCK_ELEMENTS // max(W.shape[1], 1))
        wx = sum(W[i : i + step].astype(np.float64).T @ x[i : i + step]
                 for i in range(0, W.shape[0], step))  # fmt: skip
        return self.R.T @ wx


_CACHE: OrderedDict[bytes, _Basis] = OrderedDict()
_CACHE_BYTES = 256 << 20  # at most this much of singular vectors kept
_CACHE_LOCK = threading.Lock()


def _base_basis(W: np.ndarray) -> _Basis:
    """The left singular vectors of ``W`` (see :class:`_Basis`), cached by its bytes."""
    key = hashlib.blake2b(np.ascontiguousarray(W).view(np.uint8), digest_size=20).digest()
    key += repr(W.shape).encode()
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    basis = _eigen_basis(W)
    with _CACHE_LOCK:
        _CACHE[key] = basis
        while sum(b.nbytes for b in _CACHE.values()) > _CACHE_BYTES and len(_CACHE) > 1:
            _CACHE.popitem(last=False)
    return basis


def _eigen_basis(W: np.ndarray) -> _Basis:
    m, n = W.shape
    if m <= n:  # the Grams in float64 (lower triangles), a float32 W a block at a time
        return _Basis(U=np.linalg.eigh(real_gram(W, "rows"), UPLO="L")[1])
    s2, V = np.linalg.eigh(real_gram(W, "cols"), UPLO="L")
    # U = W V / s needs every s well above the Gram's rounding (eps * n * s_max^2): a W with
    # (numerically) zero singular values has no such U, and takes the SVD instead.
    if not s2.min() > 1e3 * np.finfo(np.float64).eps * n * max(float(s2.max()), 1e-300):
        return _Basis(U=np.linalg.svd(W.astype(np.float64), full_matrices=False)[0])
    return _Basis(R=V / np.sqrt(s2))


def _top_left_vectors(M: np.ndarray, k: int) -> np.ndarray:
    """The top ``k`` left singular vectors of ``M``, largest first."""
    try:
        from scipy.linalg import eigh
    except ImportError:  # a bare machine: the full SVD
        return np.linalg.svd(M, full_matrices=False)[0][:, :k]
    m, n = M.shape
    # evx (bisection and inverse iteration) finds a few eigenpairs faster than evr, the default.
    if m <= n:
        G = M @ M.T
        return eigh(G, subset_by_index=[m - k, m - 1], driver="evx", overwrite_a=True,
                    check_finite=False)[1][:, ::-1]  # fmt: skip
    G = M.T @ M
    V = eigh(G, subset_by_index=[n - k, n - 1], driver="evx", overwrite_a=True,
             check_finite=False)[1][:, ::-1]  # fmt: skip
    U = M @ V  # u_j = M v_j / s_j
    norms = np.linalg.norm(U, axis=0)
    if not (norms > 1e-12 * max(float(norms.max()), 1e-300)).all():  # a zero singular value
        return np.linalg.svd(M, full_matrices=False)[0][:, :k]
    return U / norms


def intruder_dimensions(
    weight: Any, update: Any, k: int = INTRUDER_K, eps: float = INTRUDER_EPS
) -> int:
    """How many of the top ``k`` singular vectors of ``W + dW`` are intruders against ``W``:
    their largest ``|cos|`` with any singular vector of ``W`` (:func:`intruder_cosines`) is
    below ``eps``. The defaults are Shuttleworth et al.'s ``k`` and peft's ``eps``.
    """
    _check_intruder_options(k, eps)
    return int((intruder_cosines(weight, update, k) < eps).sum())
