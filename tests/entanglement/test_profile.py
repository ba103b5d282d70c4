"""entanglement_profile against independent answers: dense SVDs, closed forms, product states."""

from math import log

import numpy as np
import pytest
import torch

from artent import LowRank, entanglement_profile


def svd_profile(psi: np.ndarray, dims: list[int], renyi: float = 1.0) -> np.ndarray:
    """Independent reference: normalise, reshape at every bond, full SVD, entropy by hand."""
    psi = np.asarray(psi, dtype=np.float64).ravel()
    psi = psi / np.linalg.norm(psi)
    out = []
    for l in range(1, len(dims)):
        left = int(np.prod(dims[:l]))
        s = np.linalg.svd(psi.reshape(left, -1), compute_uv=False)
        p = s[s > 1e-15] ** 2
        if renyi == 1:
            out.append(-(p * np.log(p)).sum())
        elif np.isinf(renyi):
            out.append(-np.log(p.max()))
        else:
            out.append(np.log((p**renyi).sum()) / (1 - renyi))
    return np.array(out)


def factor(n: int) -> list[int]:
    out, p = [], 2
    while n > 1:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    return out


@pytest.mark.parametrize("shape", [(96, 40), (7, 30), (64, 64), (32, 128), (2, 3), (1, 48)])
@pytest.mark.parametrize("renyi", [1.0, 0.5, 2.0, np.inf])
def test_dense_matches_svd(shape, renyi):
    rng = np.random.default_rng(sum(shape))
    M = rng.standard_normal(shape)
    got = entanglement_profile(M, renyi=renyi)
    want = svd_profile(M, factor(shape[0]) + factor(shape[1]), renyi)
    assert got.shape == (len(factor(shape[0])) + len(factor(shape[1])) - 1,)
    np.testing.assert_allclose(got, want, atol=1e-8, rtol=0)


def test_explicit_mixed_radix_dims_and_bits():
    rng = np.random.default_rng(1)
    M = rng.standard_normal((12, 10))
    got = entanglement_profile(M, dims=([4, 3], [5, 2]))
    np.testing.assert_allclose(got, svd_profile(M, [4, 3, 5, 2]), atol=1e-10)
    bits = entanglement_profile(M, dims=([4, 3], [5, 2]), base=2)
    np.testing.assert_allclose(bits, got / log(2), atol=1e-12)


def test_state_and_tensor_inputs():
    rng = np.random.default_rng(2)
    T = rng.standard_normal((3, 4, 5, 2))
    want = svd_profile(T, [3, 4, 5, 2])
    np.testing.assert_allclose(entanglement_profile(T), want, atol=1e-10)
    np.testing.assert_allclose(entanglement_profile(T.ravel(), [3, 4, 5, 2]), want, atol=1e-10)
    # a 1-D state with no dims splits into prime factors: 120 = 2*2*2*3*5
    np.testing.assert_allclose(
        entanglement_profile(T.ravel()), svd_profile(T, [2, 2, 2, 3, 5]), atol=1e-10
    )


def test_torch_inputs_any_float_dtype_computed_in_float64():
    rng = np.random.default_rng(3)
    M32 = torch.from_numpy(rng.standard_normal((32, 16))).to(torch.float32)
    want = svd_profile(M32.double().numpy(), [2] * 9)
    np.testing.assert_allclose(entanglement_profile(M32), want, atol=1e-9)
    Mbf = M32.to(torch.bfloat16)
    np.testing.assert_allclose(
        entanglement_profile(Mbf), svd_profile(Mbf.double().numpy(), [2] * 9), atol=1e-9
    )


def test_torch_backend_matches_numpy():
    """The GPU code path (torch.linalg), run here on the CPU."""
    rng = np.random.default_rng(4)
    M = rng.standard_normal((64, 32))
    np.testing.assert_allclose(
        entanglement_profile(M, device="cpu"), entanglement_profile(M), atol=1e-10
    )
    B, A = rng.standard_normal((64, 4)), rng.standard_normal((4, 32))
    np.testing.assert_allclose(
        entanglement_profile(LowRank(B, A), device="cpu"),
        svd_profile(B @ A, [2] * 11),
        atol=1e-10,
    )


def test_product_state_has_zero_entropy_everywhere():
    rng = np.random.default_rng(5)
    vecs = [rng.standard_normal(d) for d in (2, 3, 2, 5, 2)]
    psi = vecs[0]
    for v in vecs[1:]:
        psi = np.kron(psi, v)
    np.testing.assert_allclose(entanglement_profile(psi, [2, 3, 2, 5, 2]), 0.0, atol=1e-10)
    # a rank-1 matrix: a product across the row|column cut
    u, v = rng.standard_normal(16), rng.standard_normal(8)
    prof = entanglement_profile(np.outer(u, v))
    assert abs(prof[3]) < 1e-10  # bond 4 of 4 row qubits + 3 column qubits


def test_ghz_state_gives_ln2_at_every_bond():
    n = 10
    psi = np.zeros(2**n)
    psi[0] = psi[-1] = 1.0
    np.testing.assert_allclose(entanglement_profile(psi), log(2), atol=1e-12)
    np.testing.assert_allclose(entanglement_profile(psi, base=2), 1.0, atol=1e-12)
    np.testing.assert_allclose(entanglement_profile(psi, renyi=2), log(2), atol=1e-12)


def test_identity_closed_forms_in_both_orders():
    k = 5
    eye = np.eye(2**k)
    # sequential: a maximally entangled state between row and column qubits
    seq = entanglement_profile(eye)
    np.testing.assert_allclose(
        seq, [min(l, 2 * k - l) * log(2) for l in range(1, 2 * k)], atol=1e-10
    )
    # interleaved: a product of Bell pairs (row bit i, column bit i)
    inter = entanglement_profile(eye, order="interleaved")
    np.testing.assert_allclose(
        inter, [log(2) if l % 2 else 0.0 for l in range(1, 2 * k)], atol=1e-10
    )


@pytest.mark.parametrize("r", [1, 3, 8])
def test_rank_r_matrix_obeys_ln_r_at_the_cut(r):
    rng = np.random.default_rng(r)
    M = rng.standard_normal((64, r)) @ rng.standard_normal((r, 32))
    prof = entanglement_profile(M)
    assert prof[5] <= log(r) + 1e-10
    np.testing.assert_allclose(prof, svd_profile(M, [2] * 11), atol=1e-9)


@pytest.mark.parametrize(
    "m,n,r,dims",
    [
        (256, 128, 8, None),
        (96, 40, 5, None),
        (64, 16, 32, None),  # rank above min(m, n)
        (12, 10, 2, ([4, 3], [5, 2])),
    ],
)
def test_low_rank_equals_dense_product(m, n, r, dims):
    rng = np.random.default_rng(m + n + r)
    B, A = rng.standard_normal((m, r)), rng.standard_normal((r, n))
    lr = LowRank(B, A, scale=0.25)
    np.testing.assert_allclose(lr.to_dense(), 0.25 * B @ A)
    chain = [*dims[0], *dims[1]] if dims else factor(m) + factor(n)
    np.testing.assert_allclose(entanglement_profile(lr, dims), svd_profile(B @ A, chain), atol=1e-9)
    np.testing.assert_allclose(
        entanglement_profile(lr, dims, renyi=2), svd_profile(B @ A, chain, 2), atol=1e-9
    )


def test_low_rank_torch_factors_and_interleaved_fallback():
    rng = np.random.default_rng(7)
    B = torch.from_numpy(rng.standard_normal((32, 4))).float()
    A = torch.from_numpy(rng.standard_normal((4, 32))).float()
    dense = (B.double() @ A.double()).numpy()
    np.testing.assert_allclose(
        entanglement_profile(LowRank(B, A)), svd_profile(dense, [2] * 10), atol=1e-9
    )
    np.testing.assert_allclose(
        entanglement_profile(LowRank(B, A), order="interleaved"),
        entanglement_profile(dense, order="interleaved", method="svd"),
        atol=1e-9,
    )


def test_svd_method_is_the_same_answer():
    rng = np.random.default_rng(8)
    M = rng.standard_normal((48, 20))
    np.testing.assert_allclose(
        entanglement_profile(M, method="svd"), entanglement_profile(M), atol=1e-10
    )


@pytest.mark.parametrize(
    "x,kwargs,match",
    [
        (np.zeros((4, 4)), {}, "all zeros"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), {}, "NaN or Inf"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), {}, "NaN or Inf"),
        (np.ones((6, 4)), {"dims": ([2, 2], [2, 2])}, "multiply to 4"),
        (np.ones(12), {"dims": [2, 2, 2]}, "multiply to 8"),
        (np.ones((4, 4)), {"order": "zigzag"}, "unknown site order"),
        (np.ones((4, 8)), {"order": "interleaved"}, "as many row sites"),
        (np.ones((4, 4)), {"base": 10}, "unknown base"),
        (np.ones((4, 4)), {"renyi": -1}, "renyi must be"),
        (np.ones((4, 4)), {"method": "magic"}, "unknown method"),
        (np.ones(7), {}, "at least 2"),
    ],
)
def test_bad_input_raises_clear_value_error(x, kwargs, match):
    with pytest.raises(ValueError, match=match):
        entanglement_profile(x, **kwargs)


def test_bad_low_rank_factors():
    rng = np.random.default_rng(9)
    with pytest.raises(ValueError, match="rank-0"):
        LowRank(np.ones((4, 0)), np.ones((0, 4)))
    with pytest.raises(ValueError, match="do not chain"):
        LowRank(np.ones((4, 2)), np.ones((3, 4)))
    with pytest.raises(ValueError, match="all zeros"):
        entanglement_profile(LowRank(np.zeros((8, 2)), rng.standard_normal((2, 8))))
    bad = rng.standard_normal((8, 2))
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="factor B contains NaN"):
        entanglement_profile(LowRank(bad, rng.standard_normal((2, 8))))
