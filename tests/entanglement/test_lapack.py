"""The OpenBLAS fast path (two-stage eigensolver, blocked float64 Gram) against dense SVDs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from artent import entanglement_profile
from artent.entanglement import backend, lapack, profile
from artent.entanglement.sites import prime_factors as factor


def svd_profile(M: np.ndarray, dims: list[int], renyi: float = 1.0) -> np.ndarray:
    """Independent reference: normalise, one full SVD per bond, entropy by hand (float64)."""
    psi = np.asarray(M, dtype=np.float64).ravel()
    psi = psi / np.linalg.norm(psi)
    out = []
    for l in range(1, len(dims)):
        s = np.linalg.svd(psi.reshape(int(np.prod(dims[:l])), -1), compute_uv=False)
        p = s[s > 1e-15] ** 2
        out.append(-(p * np.log(p)).sum() if renyi == 1 else np.log((p**renyi).sum()) / (1 - renyi))
    return np.array(out)


needs_lapack = pytest.mark.skipif(
    not lapack.available(), reason="numpy's bundled OpenBLAS is not available here"
)


@pytest.fixture
def small_fast_path(monkeypatch):
    """Every matrix takes the two-stage solver, and float32 Grams go in blocks of a few rows."""
    monkeypatch.setattr(lapack, "TWO_STAGE_FROM", 2)
    monkeypatch.setattr(lapack, "TWO_STAGE_FROM_THREADED", 2)
    monkeypatch.setattr(backend, "GRAM_BLOCK_ELEMENTS", 300)


@pytest.fixture
def no_lapack(monkeypatch):
    """As on a platform without numpy's OpenBLAS: plain numpy everywhere."""
    monkeypatch.setattr(lapack, "_lib", None)
    monkeypatch.setattr(lapack, "_loaded", True)


@needs_lapack
def test_syrk_lower_and_two_stage_eigvalsh_match_numpy(monkeypatch):
    monkeypatch.setattr(lapack, "TWO_STAGE_FROM", 2)
    monkeypatch.setattr(lapack, "TWO_STAGE_FROM_THREADED", 2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 90))
    rows = np.zeros((40, 40))
    assert lapack.syrk_lower(rows, np.ascontiguousarray(x[:, :50]), side="rows", beta=0.0)
    assert lapack.syrk_lower(rows, np.ascontiguousarray(x[:, 50:]), side="rows")
    np.testing.assert_allclose(np.tril(rows), np.tril(x @ x.T), atol=1e-12)
    assert not np.triu(rows, 1).any()  # the upper triangle is never written
    cols = np.zeros((90, 90))
    assert lapack.syrk_lower(cols, x[:15], side="cols", beta=0.0)
    assert lapack.syrk_lower(cols, x[15:], side="cols")
    np.testing.assert_allclose(np.tril(cols), np.tril(x.T @ x), atol=1e-12)
    h = np.tril(x @ x.T)  # only the lower triangle is read
    w = lapack.eigvalsh_inplace(h)
    np.testing.assert_allclose(w, np.linalg.eigvalsh(x @ x.T), atol=1e-10)
    with pytest.raises(ValueError, match="C-contiguous float64"):
        lapack.syrk_lower(rows, x[:, :50], side="rows")  # a strided slice is refused, not misread


@needs_lapack
def test_two_stage_is_used_from_the_threshold_up(monkeypatch):
    h = np.diag(np.arange(1.0, 6.0))
    monkeypatch.setattr(lapack, "TWO_STAGE_FROM", 6)
    monkeypatch.setattr(lapack, "TWO_STAGE_FROM_THREADED", 6)
    assert lapack.eigvalsh_inplace(h.copy()) is None  # below: left to numpy
    monkeypatch.setattr(lapack, "TWO_STAGE_FROM", 5)
    monkeypatch.setattr(lapack, "TWO_STAGE_FROM_THREADED", 5)
    np.testing.assert_allclose(lapack.eigvalsh_inplace(h.copy()), np.arange(1.0, 6.0))


@needs_lapack
@pytest.mark.parametrize("shape", [(96, 40), (7, 30), (64, 64), (32, 128), (576, 192), (448, 64)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_path_matches_svd(small_fast_path, shape, dtype):
    rng = np.random.default_rng(sum(shape))
    M = rng.standard_normal(shape).astype(dtype)
    dims = factor(shape[0]) + factor(shape[1])
    want = svd_profile(M.astype(np.float64), dims)
    np.testing.assert_allclose(entanglement_profile(M), want, atol=1e-8, rtol=0)
    # Renyi 1/2 feels every small weight: the blocked float64 Gram keeps them.
    np.testing.assert_allclose(
        entanglement_profile(M, renyi=0.5), svd_profile(M.astype(np.float64), dims, 0.5), atol=1e-8
    )


@pytest.mark.parametrize("shape", [(96, 40), (64, 64), (576, 192)])
def test_numpy_fallback_matches_svd(no_lapack, monkeypatch, shape):
    monkeypatch.setattr(backend, "GRAM_BLOCK_ELEMENTS", 300)
    rng = np.random.default_rng(sum(shape) + 1)
    for dtype in (np.float64, np.float32):
        M = rng.standard_normal(shape).astype(dtype)
        want = svd_profile(M.astype(np.float64), factor(shape[0]) + factor(shape[1]))
        np.testing.assert_allclose(entanglement_profile(M), want, atol=1e-8, rtol=0)


def test_mixed_radix_shapes_stay_on_the_gram_path(monkeypatch):
    """576 = 2^6 3^2 and 448 = 2^6 7 (as 14336 = 2^11 7): sites of 3 and 7, no SVD fallback."""

    def refuse(*args, **kwargs):
        raise AssertionError("the SVD reference was called")

    monkeypatch.setattr(profile, "chain_spectra_svd", refuse)
    rng = np.random.default_rng(7)
    for shape in ((576, 64), (448, 64)):
        M = rng.standard_normal(shape)
        dims = factor(shape[0]) + factor(shape[1])
        assert 3 in dims or 7 in dims
        np.testing.assert_allclose(entanglement_profile(M), svd_profile(M, dims), atol=1e-8)


@pytest.mark.parametrize("scale", [1e-200, 1e-120, 1e120, 1e200])
def test_extreme_scales_give_the_same_profile(scale):
    rng = np.random.default_rng(11)
    M = rng.standard_normal((32, 24))
    np.testing.assert_allclose(entanglement_profile(M * scale), entanglement_profile(M), atol=1e-10)


def test_input_is_never_modified(small_fast_path):
    rng = np.random.default_rng(12)
    for M in (rng.standard_normal((64, 32)), rng.standard_normal((64, 32)).astype(np.float32)):
        before = M.copy()
        entanglement_profile(M)
        np.testing.assert_array_equal(M, before)
    T = torch.randn(64, 32, dtype=torch.float32)
    before = T.clone()
    entanglement_profile(T)
    assert torch.equal(T, before)


def test_float32_state_is_not_widened_whole(monkeypatch):
    """A float32 state's Gram is built from float64 blocks, never from a float64 copy of it."""
    monkeypatch.setattr(backend, "GRAM_BLOCK_ELEMENTS", 64 * 8)
    blocks = []
    real = lapack.syrk_lower if lapack.available() else None

    def watched(gram, a, *, side="rows", beta=1.0):
        blocks.append(a.size)
        if real is not None:
            return real(gram, a, side=side, beta=beta)
        gram += a @ a.T if side == "rows" else a.T @ a
        return True

    monkeypatch.setattr(lapack, "syrk_lower", watched)
    M = np.random.default_rng(13).standard_normal((64, 256)).astype(np.float32)
    got = entanglement_profile(M)
    assert len(blocks) > 2 and max(blocks) <= 64 * 8 * 2  # blocks, not the 64 x 256 state
    np.testing.assert_allclose(got, svd_profile(M, [2] * 14), atol=1e-8)


# ----- the GPU code path (torch.linalg), run on the CPU so that it cannot silently break -------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_torch_backend_matches_svd_for_every_input_dtype(dtype):
    M = torch.from_numpy(np.random.default_rng(21).standard_normal((96, 40))).to(dtype)
    dense = M.double().numpy()
    want = svd_profile(dense, factor(96) + factor(40))
    np.testing.assert_allclose(entanglement_profile(M, device="cpu"), want, atol=1e-8)
    layout = dict(order="interleaved", dims=([8, 12], [8, 5]))
    inter = entanglement_profile(M, device="cpu", **layout)
    np.testing.assert_allclose(inter, entanglement_profile(dense, **layout), atol=1e-10)


@pytest.mark.parametrize("scale", [1e-200, 1e200])
def test_torch_backend_extreme_scales(scale):
    M = np.random.default_rng(22).standard_normal((32, 24))
    np.testing.assert_allclose(
        entanglement_profile(M * scale, device="cpu"), entanglement_profile(M), atol=1e-10
    )


@pytest.mark.parametrize(
    "x,match",
    [(np.zeros((4, 4)), "all zeros"), (np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN or Inf")],
)
def test_torch_backend_bad_input(x, match):
    with pytest.raises(ValueError, match=match):
        entanglement_profile(torch.from_numpy(x), device="cpu")
