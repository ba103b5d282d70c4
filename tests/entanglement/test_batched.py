"""Batched profiles: item by item equal to entanglement_profile, closed forms, bad items named."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from artent.entanglement import entanglement_profile
from artent.entanglement.batched import batched_profiles, batched_spectra


@pytest.mark.parametrize(
    "dims",
    [[2] * 8, [2, 3, 2, 4], [5, 2, 3], [3, 7], [2, 2, 16, 2]],
)
def test_equals_entanglement_profile_per_item(dims):
    rng = np.random.default_rng(len(dims))
    size = math.prod(dims)
    # Items of very different scales and structure: Gaussian, low-rank-ish, nearly product.
    states = rng.standard_normal((5, size)) * rng.uniform(0.01, 100.0, size=(5, 1))
    states[1] = np.kron(rng.standard_normal(dims[0]), rng.standard_normal(size // dims[0]))
    states[2] += 10 * np.kron(np.ones(dims[0]), rng.standard_normal(size // dims[0]))
    got = batched_profiles(states, dims)
    assert got.shape == (5, len(dims) - 1)
    want = np.array([entanglement_profile(s, dims=dims) for s in states])
    np.testing.assert_allclose(got, want, atol=1e-9, rtol=0)


@pytest.mark.parametrize("renyi", [0.0, 0.5, 2.0, 3.5, math.inf])
def test_renyi_and_bits_match_entanglement_profile(renyi):
    rng = np.random.default_rng(7)
    dims = [2, 2, 3, 2, 2]
    states = rng.standard_normal((4, math.prod(dims)))
    states[3, 12:] = 0.0  # a state with zero weights: the rank counts for renyi=0 must agree
    got = batched_profiles(states, dims, renyi=renyi, base=2)
    want = np.array([entanglement_profile(s, dims=dims, renyi=renyi, base=2) for s in states])
    np.testing.assert_allclose(got, want, atol=1e-9, rtol=0)


def test_closed_forms_maximally_entangled_and_product():
    # vec(I_4) / 2 on sites [r1, r2, c1, c2] is two Bell pairs (r1, c1) and (r2, c2): bond 2
    # cuts both (ln 4), bonds 1 and 3 one each (ln 2). A product state holds zero everywhere.
    bell = np.eye(4).reshape(-1)
    product = np.kron(np.kron([1.0, 2.0], [3.0, -1.0]), np.kron([0.5, 0.5], [1.0, 0.0]))
    got = batched_profiles(np.stack([bell, product]), [2, 2, 2, 2])
    np.testing.assert_allclose(got[0], [math.log(2), math.log(4), math.log(2)], atol=1e-12)
    np.testing.assert_allclose(got[1], 0.0, atol=1e-12)
    # Interleaved (r1, c1, r2, c2) the pairs sit side by side: the middle bond cuts none.
    inter = np.eye(4).reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(1, -1)
    np.testing.assert_allclose(
        batched_profiles(inter, [2, 2, 2, 2])[0], [math.log(2), 0.0, math.log(2)], atol=1e-12
    )


def test_torch_float32_and_complex_input():
    g = torch.Generator().manual_seed(0)
    x32 = torch.randn(3, 64, generator=g, dtype=torch.float32)
    want = np.array(
        [entanglement_profile(x.numpy().astype(np.float64), dims=[4, 4, 4]) for x in x32]
    )
    np.testing.assert_allclose(batched_profiles(x32, [4, 4, 4]), want, atol=1e-9, rtol=0)
    z = torch.randn(3, 32, dtype=torch.complex128, generator=g)
    want = np.array([entanglement_profile(v.numpy(), dims=[2, 4, 4]) for v in z])
    np.testing.assert_allclose(batched_profiles(z, [2, 4, 4]), want, atol=1e-9, rtol=0)


def test_spectra_are_normalised_and_sized_by_the_smaller_side():
    rng = np.random.default_rng(1)
    spectra = batched_spectra(rng.standard_normal((2, 2, 3, 4, 5)), [2, 3, 4, 5])
    assert [tuple(p.shape) for p in spectra] == [(2, 2), (2, 6), (2, 5)]
    for p in spectra:
        np.testing.assert_allclose(p.sum(dim=1).numpy(), 1.0, atol=1e-12)


def test_bad_items_are_named_by_batch_index():
    states = np.ones((4, 16))
    states[2] = 0.0
    with pytest.raises(ValueError, match="batch item 2 is all zeros"):
        batched_profiles(states, [4, 4])
    states[2] = 1.0
    states[1, 3] = np.nan
    with pytest.raises(ValueError, match="batch item 1 contains NaN or Inf"):
        batched_profiles(states, [4, 4])
    with pytest.raises(ValueError, match="multiply to 15"):
        batched_profiles(np.ones((2, 16)), [3, 5])
    with pytest.raises(ValueError, match="renyi"):
        batched_profiles(np.ones((2, 16)), [4, 4], renyi=-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_matches_cpu():
    rng = np.random.default_rng(3)
    states = rng.standard_normal((16, 2**12))
    cpu = batched_profiles(states, [2] * 12)
    gpu = batched_profiles(torch.from_numpy(states).cuda(), [2] * 12)
    np.testing.assert_allclose(gpu, cpu, atol=1e-10, rtol=0)
    np.testing.assert_allclose(batched_profiles(states, [2] * 12, device="cuda"), cpu, atol=1e-10)


@pytest.mark.parametrize(
    ("shape", "dims", "order"),
    [
        ((16, 16), None, "sequential"),
        ((16, 16), None, "interleaved"),
        ((12, 12), None, "interleaved"),
        ((8, 32), None, "sequential"),
        ((32, 4), None, "sequential"),
        ((6, 20), ([3, 2], [2, 5, 2]), "sequential"),
        ((36, 36), ([6, 6], [4, 9]), "sequential"),
        ((36, 36), ([6, 6], [4, 9]), "interleaved"),
    ],
)
def test_matrix_profiles_equal_entanglement_profile_per_item(shape, dims, order):
    from artent.entanglement.batched import batched_matrix_profiles

    rng = np.random.default_rng(sum(shape))
    mats = rng.standard_normal((4, *shape)) * rng.uniform(0.01, 100.0, size=(4, 1, 1))
    mats[1] = np.outer(rng.standard_normal(shape[0]), rng.standard_normal(shape[1]))  # rank 1
    mats[2] = np.tril(np.abs(mats[2]))  # causal-like
    got = batched_matrix_profiles(mats, order=order, dims=dims)
    want = np.array([entanglement_profile(m, dims=dims, order=order) for m in mats])
    np.testing.assert_allclose(got, want, atol=1e-9, rtol=0)
    complex_mats = torch.from_numpy(mats + 1j * rng.standard_normal((4, *shape)))
    got = batched_matrix_profiles(complex_mats, order=order, dims=dims)
    want = np.array([entanglement_profile(m.numpy(), dims=dims, order=order) for m in complex_mats])
    np.testing.assert_allclose(got, want, atol=1e-9, rtol=0)


def test_matrix_items_with_nan_inf_or_zeros_are_named():
    from artent.entanglement.batched import batched_matrix_profiles

    mats = np.ones((3, 4, 4))
    mats[1, 2, 3] = np.inf
    with pytest.raises(ValueError, match="matrices: batch item 1 contains NaN or Inf"):
        batched_matrix_profiles(mats)
    mats[1] = 0.0
    with pytest.raises(ValueError, match="matrices: batch item 1 is all zeros"):
        batched_matrix_profiles(mats)
