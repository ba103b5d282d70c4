"""Random-matrix baselines against brute-force sums, closed forms and sampled matrices."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import digamma

from artent.entanglement.fits import compare_laws, fit_cardy
from artent.entanglement.profile import entanglement_profile
from artent.entanglement.rmt import (
    free_product_deficit,
    page_entropy,
    page_profile,
    random_attention,
    random_attention_profile,
    random_lora_profile,
    sample_random_lora_profile,
)


def page_by_harmonic_sum(dA: int, dB: int) -> float:
    dA, dB = min(dA, dB), max(dA, dB)
    return math.fsum(1.0 / k for k in range(dB + 1, dA * dB + 1)) - (dA - 1) / (2 * dB)


def entropy_of(matrix: np.ndarray) -> float:
    p = np.linalg.svd(matrix, compute_uv=False) ** 2
    p = p / p.sum()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def test_page_entropy_two_qubits_by_hand():
    assert page_entropy(2, 2) == pytest.approx(1 / 3 + 1 / 4 - 1 / 4, abs=1e-14)


@pytest.mark.parametrize("dA,dB", [(1, 7), (2, 3), (3, 7), (4, 4), (5, 12), (16, 9), (64, 33)])
def test_page_entropy_matches_harmonic_sum(dA, dB):
    assert page_entropy(dA, dB) == pytest.approx(page_by_harmonic_sum(dA, dB), abs=1e-12)
    assert page_entropy(dB, dA) == page_entropy(dA, dB)


def test_page_entropy_large_dims():
    # Past the asymptotic-series switch (dA * dB > 1e6): against a direct float sum.
    k = np.arange(1002, 1000 * 1001 + 1, dtype=np.float64)
    direct = math.fsum(1.0 / k) - 999 / 2002
    assert page_entropy(1000, 1001) == pytest.approx(direct, abs=1e-12)
    # Leading behaviour ln dA - dA/(2 dB); the rest is O(1/dB) smaller than dA/(2 dB).
    assert page_entropy(2**40, 2**50) == pytest.approx(40 * math.log(2) - 2**-11, abs=1e-12)
    assert page_entropy(2**1000, 2**1200) == pytest.approx(1000 * math.log(2), rel=1e-14)
    with pytest.raises(ValueError, match="dA"):
        page_entropy(0, 4)
    with pytest.raises(ValueError, match="dB"):
        page_entropy(2, 2.5)


def test_page_entropy_against_complex_gaussian_states():
    rng = np.random.default_rng(11)
    shape = (200, 32, 32)
    states = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    samples = np.array([entropy_of(s) for s in states])
    stderr = samples.std(ddof=1) / math.sqrt(len(samples))
    assert abs(samples.mean() - page_entropy(32, 32)) < 4 * stderr


def test_real_states_sit_below_page():
    """The documented real-versus-complex gap: exactly 1/3 - 0.27718 at 2 x 2."""
    rng = np.random.default_rng(5)
    samples = np.array([entropy_of(s) for s in rng.standard_normal((4000, 2, 2))])
    stderr = samples.std(ddof=1) / math.sqrt(len(samples))
    assert samples.mean() == pytest.approx(0.277182, abs=4 * stderr)
    assert page_entropy(2, 2) - samples.mean() > 0.04


def test_page_profile():
    dims = [2, 3, 5, 2]
    expected = [page_by_harmonic_sum(2, 30), page_by_harmonic_sum(6, 10)]
    expected.append(page_by_harmonic_sum(30, 2))
    np.testing.assert_allclose(page_profile(dims), expected, atol=1e-12)
    qubits = page_profile([2] * 12)
    np.testing.assert_allclose(qubits, qubits[::-1], atol=1e-14)
    with pytest.raises(ValueError, match="dims"):
        page_profile([4])


def test_free_product_deficit_closed_forms():
    for c in (0.0, 0.1, 0.5, 1.0):  # Page's dA/(2 dB)
        assert free_product_deficit(c, 0.0) == pytest.approx(c / 2, abs=1e-14)
    for c in (2.0, 7.0):  # a wide random state, read from its small side: ln c + 1/(2c)
        assert free_product_deficit(c, 0.0) == pytest.approx(math.log(c) + 0.5 / c, abs=1e-14)
    # Two square Gaussian factors: the Fuss-Catalan law, int x ln x = psi(4) - psi(2) = 5/6.
    fuss_catalan = float(digamma(4) - digamma(2))
    assert free_product_deficit(1.0, 1.0) == pytest.approx(fuss_catalan, abs=1e-14)
    assert free_product_deficit(0.3, 0.7) == free_product_deficit(0.7, 0.3)


def test_free_product_deficit_against_sampled_product():
    rng = np.random.default_rng(2)
    r, m, n = 300, 600, 900
    B, A = rng.standard_normal((m, r)), rng.standard_normal((r, n))
    x = np.linalg.svd(B @ A, compute_uv=False)[:r] ** 2  # the r nonzero ones
    x = x / x.mean()
    # Finite-size error is O(1/r); one 300-eigenvalue sample fluctuates by ~1e-3.
    assert float(np.mean(x * np.log(x))) == pytest.approx(
        free_product_deficit(r / m, r / n), abs=0.01
    )


@pytest.mark.parametrize("rank", [4, 16])
def test_random_lora_profile_against_samples(rank):
    dims = [2] * 8
    predicted = random_lora_profile(dims, dims, rank)
    samples = 16
    mean, std = sample_random_lora_profile(dims, dims, rank, samples=samples, seed=0)
    # Two parts: sampling noise (3 standard errors), and 0.02 nats for the finite-size gap
    # between real Gaussian factors (sampled) and complex ones (Page's formula), which the
    # docstring measures at 0.014 (rank 4) and 0.008 (rank 16) with 96 samples.
    tolerance = 0.02 + 3 * std / math.sqrt(samples)
    assert np.all(np.abs(predicted - mean) <= tolerance)
    assert predicted[7] <= math.log(rank)
    assert np.all(mean[7] <= math.log(rank) + 1e-9)
    np.testing.assert_allclose(predicted, predicted[::-1], atol=1e-12)
    assert np.all(predicted <= page_profile(dims + dims) + 1e-12)


def test_random_lora_profile_free_beats_second_order():
    dims = [2] * 8
    mean, _ = sample_random_lora_profile(dims, dims, 16, samples=16, seed=1)
    free = np.abs(random_lora_profile(dims, dims, 16) - mean).max()
    plain = np.abs(random_lora_profile(dims, dims, 16, approximation="second_order") - mean).max()
    assert free < 0.015 < plain
    # The second-order cut value, by hand.
    cut = random_lora_profile(dims, dims, 16, approximation="second_order")[7]
    assert cut == pytest.approx(math.log(16) - 16 / 512 - 16 / 512, abs=1e-12)


def test_random_lora_profile_limits():
    # Rank 1 is a product state: zero at the cut, exactly Page of each factor elsewhere.
    rows, cols = [2] * 5, [2] * 6
    profile = random_lora_profile(rows, cols, 1)
    assert profile[4] == 0.0
    expected = [page_entropy(2**l, 2 ** (5 - l)) for l in range(1, 5)]
    expected += [page_entropy(2**j, 2 ** (6 - j)) for j in range(1, 6)]
    np.testing.assert_allclose(np.delete(profile, 4), expected, atol=1e-14)
    # Square factors with r = m = n: the cut is ln m - 5/6 at large m.
    big = random_lora_profile([2] * 12, [2] * 12, 4096)
    assert big[11] == pytest.approx(12 * math.log(2) - 5 / 6, abs=1e-3)
    with pytest.raises(ValueError, match="rank"):
        random_lora_profile(rows, cols, 0)
    with pytest.raises(ValueError, match="approximation"):
        random_lora_profile(rows, cols, 2, approximation="exact")


def test_sample_random_lora_profile_is_seeded():
    a = sample_random_lora_profile([2] * 3, [2] * 4, 2, samples=3, seed=9)
    b = sample_random_lora_profile([2] * 3, [2] * 4, 2, samples=3, seed=9)
    c = sample_random_lora_profile([2] * 3, [2] * 4, 2, samples=3, seed=10)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert a[0].shape == (6,)


def test_random_attention_rows_mask_and_seed():
    T = 12
    att = random_attention(T, 2.0, rng=np.random.default_rng(4))
    np.testing.assert_allclose(att.sum(axis=1), 1.0, atol=1e-14)
    assert np.all(att[np.triu_indices(T, k=1)] == 0.0)
    assert np.all(att[np.tril_indices(T)] > 0.0)
    again = random_attention(T, 2.0, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(att, again)
    other = random_attention(T, 2.0, rng=np.random.default_rng(5))
    assert not np.array_equal(att, other)
    uniform = random_attention(T, 0.0, rng=np.random.default_rng(0))
    np.testing.assert_allclose(uniform, np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None])
    full = random_attention(T, 50.0, causal=False, rng=np.random.default_rng(0))
    np.testing.assert_allclose(full.sum(axis=1), 1.0, atol=1e-14)
    assert np.all(np.isfinite(full))
    with pytest.raises(ValueError, match="beta"):
        random_attention(T, -1.0, rng=np.random.default_rng(0))


def test_random_attention_profile_fields_and_encodings():
    base = random_attention_profile(16, 1.5, samples=4, seed=3, encoding="born")
    again = random_attention_profile(16, 1.5, samples=4, seed=3, encoding="born")
    np.testing.assert_array_equal(base.mean, again.mean)
    rng = np.random.default_rng(3)
    by_hand = np.mean(
        [entanglement_profile(np.sqrt(random_attention(16, 1.5, rng=rng))) for _ in range(4)],
        axis=0,
    )
    np.testing.assert_allclose(base.mean, by_hand, atol=1e-12)
    fit = fit_cardy(base.mean)
    assert (base.c, base.c0, base.r2) == pytest.approx((fit.c, fit.c0, fit.r2))
    assert (base.T, base.beta, base.encoding, base.samples, base.seed) == (16, 1.5, "born", 4, 3)
    assert base.mean.shape == base.std.shape == (7,)
    for bad, match in [
        (dict(encoding="sqrt"), "encoding"),
        (dict(T=3), "T"),
        (dict(beta=-0.5), "beta"),
        (dict(T=5), "bond"),
    ]:
        kwargs = dict(T=16, beta=1.0, samples=1) | bad
        with pytest.raises(ValueError, match=match):
            random_attention_profile(**kwargs)


def test_random_attention_profile_is_volume_like():
    """I.i.d. Gaussian scores give a near-tent profile: the volume law wins the AIC.

    Measured (8 samples, amplitude): delta_aic = volume - cardy = -8.5 at T = 64, beta = 2;
    it stays negative for T = 32..256 and beta = 0..5, both encodings.
    """
    base = random_attention_profile(64, 2.0, samples=8, seed=0)
    comparison = compare_laws(base.mean)
    assert comparison.best == "volume"
    assert comparison.volume.r2 > 0.95
    # Sharper scores mean more entanglement: the effective c grows with beta.
    flat = random_attention_profile(64, 0.5, samples=8, seed=0)
    assert flat.c < base.c


def test_page_entropy_without_scipy_agrees(monkeypatch):
    """The scipy-free digamma (harmonic sum, then the series from 1000) matches scipy's."""
    from artent.entanglement import page

    dims = [(2, 2), (2, 16), (7, 999), (3, 1000), (48, 112), (64, 4096), (1024, 1024), (3, 5**9)]
    want = [page_entropy(a, b) for a, b in dims]
    monkeypatch.setattr(page, "_scipy_digamma", lambda: None)
    got = [page_entropy(a, b) for a, b in dims]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-13)
