"""The spectral companions against dense numpy answers: ranks, norms, intruder dimensions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from artent.entanglement import LowRank, entanglement_profile
from artent.entanglement.spectral import (
    INTRUDER_EPS,
    INTRUDER_K,
    effective_rank,
    frobenius_norm,
    intruder_cosines,
    intruder_dimensions,
    relative_norm,
    roy_vetterli_rank,
    spectral_ranks,
    squared_singular_values,
    stable_rank,
)


def _reference_ranks(M: np.ndarray) -> dict[str, float]:
    s = np.linalg.svd(M, compute_uv=False)
    s = s[s > 1e-12 * s.max()]
    p = s**2 / (s**2).sum()
    q = s / s.sum()
    return dict(
        effective_rank=float(np.exp(-(p * np.log(p)).sum())),
        roy_vetterli_rank=float(np.exp(-(q * np.log(q)).sum())),
        stable_rank=float((s**2).sum() / s[0] ** 2),
    )


def _reference_intruders(W: np.ndarray, dW: np.ndarray, k: int, eps: float) -> int:
    # The definition read literally, one vector at a time, from numpy's full SVD.
    U, _, _ = np.linalg.svd(W)
    U = U[:, : min(W.shape)]
    Um, _, _ = np.linalg.svd(W + dW)
    count = 0
    for j in range(min(k, *W.shape)):
        cosines = [abs(float(Um[:, j] @ U[:, i])) for i in range(U.shape[1])]
        count += max(cosines) < eps
    return count


@pytest.mark.parametrize("shape", [(12, 20), (32, 8), (16, 16)])
def test_ranks_of_dense_matrices_equal_numpy(shape):
    rng = np.random.default_rng(0)
    M = rng.standard_normal(shape) * np.geomspace(1, 0.01, shape[1])  # a decaying spectrum
    got = spectral_ranks(squared_singular_values(M))
    for key, value in _reference_ranks(M).items():
        assert got[key] == pytest.approx(value, rel=1e-9), key
    assert frobenius_norm(torch.tensor(M)) == pytest.approx(np.linalg.norm(M), rel=1e-12)


def test_factored_ranks_and_norm_stay_factored(monkeypatch):
    rng = np.random.default_rng(1)
    B, A = rng.standard_normal((48, 4)), rng.standard_normal((4, 40))
    lr = LowRank(torch.tensor(B), torch.tensor(A), 0.3)
    dense = 0.3 * B @ A
    ref = _reference_ranks(dense)

    def refuse(*args, **kwargs):
        raise AssertionError("the factored path formed the m x n matrix")

    monkeypatch.setattr(LowRank, "to_dense", refuse)
    p = squared_singular_values(lr)
    assert len(p) == 4
    np.testing.assert_allclose(p, np.linalg.svd(dense, compute_uv=False)[:4] ** 2, rtol=1e-10)
    assert stable_rank(p) == pytest.approx(ref["stable_rank"], rel=1e-10)
    assert roy_vetterli_rank(p) == pytest.approx(ref["roy_vetterli_rank"], rel=1e-10)
    assert frobenius_norm(lr) == pytest.approx(np.linalg.norm(dense), rel=1e-10)
    W = rng.standard_normal((48, 40))
    assert relative_norm(lr, W) == pytest.approx(
        np.linalg.norm(dense) / np.linalg.norm(W), rel=1e-10
    )


def test_effective_rank_is_exp_of_the_cut_entropy():
    rng = np.random.default_rng(2)
    M = rng.standard_normal((16, 32)) @ np.diag(np.geomspace(1, 1e-3, 32))
    cut = 4  # 16 = 2^4: row sites, then the cut
    s_cut = entanglement_profile(M)[cut - 1]
    assert effective_rank(squared_singular_values(M)) == pytest.approx(np.exp(s_cut), rel=1e-9)
    # limits: rank-one -> 1; r equal singular values -> r for all three
    assert spectral_ranks([5.0, 0, 0]) == pytest.approx(
        dict(effective_rank=1, roy_vetterli_rank=1, stable_rank=1)
    )
    assert spectral_ranks([2.0] * 7) == pytest.approx(
        dict(effective_rank=7, roy_vetterli_rank=7, stable_rank=7)
    )


def test_bad_spectra_and_options_are_refused():
    with pytest.raises(ValueError, match="not all zero"):
        stable_rank([0.0, 0.0])
    with pytest.raises(ValueError, match="intruder k"):
        intruder_dimensions(np.eye(3), np.eye(3), k=0)
    with pytest.raises(ValueError, match="intruder eps"):
        intruder_dimensions(np.eye(3), np.eye(3), eps=2)
    with pytest.raises(ValueError, match="differ in shape"):
        intruder_dimensions(np.eye(3), np.eye(4))


def _weight(rng, m=40, n=30):
    # A base weight with a clear spectrum (no near-degenerate top singular values).
    U, _ = np.linalg.qr(rng.standard_normal((m, m)))
    V, _ = np.linalg.qr(rng.standard_normal((n, n)))
    s = np.geomspace(10, 0.1, min(m, n))
    return (U[:, : len(s)] * s) @ V[:, : len(s)].T, U, V, s


def test_planted_intruder_is_found_and_an_update_in_the_top_subspace_has_none():
    rng = np.random.default_rng(3)
    W, U, V, s = _weight(rng)
    # A large rank-one update along a direction orthogonal to W's column space's top vectors
    # (the last left singular vector: orthogonal to the top 10 and far below them in W).
    u, v = U[:, -1], V[:, 0]
    planted = 20 * np.outer(u, v)
    assert intruder_dimensions(W, planted) == 1
    assert (
        intruder_dimensions(W, LowRank(torch.tensor(20 * u[:, None]), torch.tensor(v[None]))) == 1
    )
    cos = intruder_cosines(W, planted)
    assert cos[0] < INTRUDER_EPS  # the new top direction is the intruder
    assert (cos[1:] > 0.99).all()
    # An update inside W's own top subspace only rescales W's singular vectors: no intruder.
    inside = (U[:, :3] * [3.0, 2.0, 1.0]) @ V[:, :3].T
    assert intruder_dimensions(W, inside) == 0
    assert intruder_dimensions(W, np.zeros_like(W)) == 0


@pytest.mark.parametrize("seed", range(6))
def test_counts_equal_a_dense_svd_reference_on_random_matrices(seed):
    rng = np.random.default_rng(seed)
    m, n = rng.integers(12, 40, size=2)
    W = rng.standard_normal((m, n))
    # Updates from small to large against W: from no intruders to many.
    dW = (0.3 + seed) * rng.standard_normal((m, 3)) @ rng.standard_normal((3, n))
    for k, eps in [(INTRUDER_K, INTRUDER_EPS), (5, 0.3), (50, 0.8)]:
        assert intruder_dimensions(W, dW, k, eps) == _reference_intruders(W, dW, k, eps)


def _reference_cosines(W: np.ndarray, dW: np.ndarray, k: int) -> np.ndarray:
    U = np.linalg.svd(W, full_matrices=False)[0]
    Um = np.linalg.svd(W + dW, full_matrices=False)[0][:, :k]
    return np.abs(Um.T @ U).max(axis=1)


@pytest.mark.parametrize("shape", [(24, 40), (40, 24), (30, 30)])
def test_cosines_from_the_eigen_basis_equal_a_dense_svd(shape):
    # W's vectors come from the eigenpairs of its smaller Gram matrix (U itself for m <= n,
    # U^T x = S^-1 V^T W^T x for m > n): the cosines must be those of the SVD's vectors.
    rng = np.random.default_rng(7)
    W, _, _, _ = _weight(rng, *shape)
    dW = 0.5 * rng.standard_normal((shape[0], 2)) @ rng.standard_normal((2, shape[1]))
    got = intruder_cosines(W, dW, k=8)
    assert np.abs(got - _reference_cosines(W, dW, 8)).max() < 1e-10


def test_cosines_of_a_rank_deficient_tall_weight_take_the_svd():
    # m > n with zero singular values: U = W V / s does not exist, the SVD is used instead.
    rng = np.random.default_rng(8)
    W = rng.standard_normal((40, 3)) @ rng.standard_normal((3, 20))
    dW = rng.standard_normal((40, 20))
    got = intruder_cosines(W, dW, k=5)
    assert np.isfinite(got).all() and (got <= 1 + 1e-12).all()
    # On W's own column space (rank 3) the three nonzero directions match the SVD's vectors.
    U = np.linalg.svd(W, full_matrices=False)[0][:, :3]
    Um = np.linalg.svd(W + dW, full_matrices=False)[0][:, :5]
    assert (got >= np.abs(Um.T @ U).max(axis=1) - 1e-10).all()
