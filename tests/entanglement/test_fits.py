"""Fits of entanglement profiles against synthetic profiles built from the laws by hand."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from artent.entanglement.fits import compare_laws, fit_cardy, fit_volume, valley


def chord_profile(n_sites: int, c: float, c0: float, boundary: str) -> np.ndarray:
    """The Cardy law written out independently of the module under test."""
    l = np.arange(1, n_sites)
    chord = np.sin(np.pi * l / n_sites)
    if boundary == "periodic":
        return c / 3 * np.log(n_sites / np.pi * chord) + c0
    return c / 6 * np.log(2 * n_sites / np.pi * chord) + c0


def tent_profile(n_sites: int, slope: float, intercept: float) -> np.ndarray:
    l = np.arange(1, n_sites)
    return slope * np.minimum(l, n_sites - l) + intercept


@pytest.mark.parametrize("boundary", ["periodic", "open"])
def test_fit_cardy_recovers_exact_chord_law(boundary):
    profile = chord_profile(24, c=1.7, c0=0.31, boundary=boundary)
    fit = fit_cardy(profile, boundary)
    assert fit.c == pytest.approx(1.7, abs=1e-10)
    assert fit.c0 == pytest.approx(0.31, abs=1e-10)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
    assert fit.n_sites == 24 and fit.boundary == boundary
    assert fit.rss < 1e-20
    np.testing.assert_allclose(fit.residuals, 0.0, atol=1e-12)
    np.testing.assert_array_equal(fit.bonds_used, np.arange(1, 24))
    np.testing.assert_allclose(fit.predict(), profile, atol=1e-12)


@pytest.mark.parametrize("boundary", ["periodic", "open"])
def test_fit_cardy_with_noise(boundary):
    rng = np.random.default_rng(7)
    profile = chord_profile(40, c=1.0, c0=0.5, boundary=boundary)
    fit = fit_cardy(profile + rng.normal(0, 0.01, profile.size), boundary)
    # The standard error of c here is 0.007 (periodic) / 0.014 (open): allow 5-10 of them.
    assert fit.c == pytest.approx(1.0, abs=0.08)
    assert fit.c0 == pytest.approx(0.5, abs=0.05)
    assert fit.r2 > 0.99
    assert fit.rss == pytest.approx(float(fit.residuals @ fit.residuals))
    n = 39
    assert fit.aic == pytest.approx(n * math.log(fit.rss / n) + 4)


def test_fit_cardy_on_chosen_bonds_ignores_the_others():
    profile = chord_profile(20, c=2.0, c0=-0.2, boundary="periodic")
    corrupted = profile.copy()
    corrupted[8:11] -= 1.5  # a valley at bonds 9..11 that the law knows nothing of
    bonds = [b for b in range(1, 20) if b not in (9, 10, 11)]
    fit = fit_cardy(corrupted, bonds=bonds)
    assert fit.c == pytest.approx(2.0, abs=1e-10)
    assert fit.c0 == pytest.approx(-0.2, abs=1e-10)
    np.testing.assert_array_equal(fit.bonds_used, bonds)
    assert fit_cardy(corrupted).r2 < 0.9


def test_fit_cardy_validation():
    good = chord_profile(10, 1.0, 0.0, "periodic")
    with pytest.raises(ValueError, match="boundary"):
        fit_cardy(good, "closed")
    with pytest.raises(ValueError, match="1-D"):
        fit_cardy(good.reshape(3, 3))
    with pytest.raises(ValueError, match="at least 3"):
        fit_cardy([0.1, 0.2])
    with pytest.raises(ValueError, match="NaN or Inf"):
        fit_cardy(np.r_[good[:-1], np.nan])
    with pytest.raises(ValueError, match="1-based"):
        fit_cardy(good, bonds=[0, 1, 2])
    with pytest.raises(ValueError, match="at least 3"):
        fit_cardy(good, bonds=[1, 2])


def test_fit_volume_recovers_tent_and_exclude_works():
    n_sites = 16
    profile = tent_profile(n_sites, slope=0.65, intercept=0.05)
    fit = fit_volume(profile)
    assert fit.slope == pytest.approx(0.65, abs=1e-12)
    assert fit.intercept == pytest.approx(0.05, abs=1e-12)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
    assert fit.n_points == 15
    np.testing.assert_allclose(fit.predict(), profile, atol=1e-12)

    dipped = profile.copy()
    window = range(6, 11)  # bonds 6..10, around the cut at bond 8
    for b in window:
        dipped[b - 1] = math.log(4.0)
    plain = fit_volume(dipped)
    assert abs(plain.slope - 0.65) > 0.05
    excluded = fit_volume(dipped, exclude=window)
    assert excluded.slope == pytest.approx(0.65, abs=1e-12)
    assert excluded.intercept == pytest.approx(0.05, abs=1e-12)
    assert excluded.n_points == 10
    assert not set(excluded.bonds_used.tolist()) & set(window)
    with pytest.raises(ValueError, match="exclude"):
        fit_volume(dipped, exclude=[0])
    with pytest.raises(ValueError, match="exclude"):
        fit_volume(dipped, exclude=range(1, 14))


def test_compare_laws_tells_volume_from_area_log():
    rng = np.random.default_rng(3)
    n_sites = 20
    noise = rng.normal(0, 1e-3, n_sites - 1)
    volume = compare_laws(tent_profile(n_sites, math.log(2), 0.0) + noise)
    assert volume.best == "volume" and volume.delta_aic < 0
    assert volume.volume.slope == pytest.approx(math.log(2), abs=0.01)
    area = compare_laws(chord_profile(n_sites, 1.0, 0.2, "periodic") + noise)
    assert area.best == "area+log" and area.delta_aic > 0
    assert area.delta_aic == pytest.approx(area.volume.aic - area.cardy.aic)
    # Both fits see the same bonds, so their AICs are comparable.
    excl = compare_laws(chord_profile(n_sites, 1.0, 0.2, "open"), exclude=[9, 10, 11])
    np.testing.assert_array_equal(excl.cardy.bonds_used, excl.volume.bonds_used)
    assert excl.cardy.bonds_used.size == 16
    with pytest.raises(ValueError, match="boundary"):
        compare_laws(noise, boundary="torus")


def test_valley_against_hand_computation():
    n_sites, cut = 16, 8
    profile = tent_profile(n_sites, math.log(2), 0.0)
    # A rank-4 update: S_8 = ln 4, the next bonds one qubit above it.
    profile[cut - 1] = math.log(4)
    profile[cut - 2] = profile[cut] = math.log(8)
    v = valley(profile, cut, k=2, rank=4)
    # (S_6 + S_10)/2 - S_8 = 6 ln 2 - 2 ln 2
    assert v.depth == pytest.approx(4 * math.log(2), abs=1e-12)
    assert v.center_entropy == pytest.approx(math.log(4))
    page = math.fsum(1 / k for k in range(257, 65537)) - 255 / 512  # dA = dB = 2^8
    assert v.page == pytest.approx(page, abs=1e-12)
    assert v.ratio == pytest.approx(math.log(4) / page, abs=1e-12)
    assert v.bound == pytest.approx(math.log(4))
    assert v.within_bound is True
    assert valley(profile, cut, rank=3).within_bound is False
    assert valley(profile, cut).within_bound is None and valley(profile, cut).bound is None
    # k = 1: (S_7 + S_9)/2 - S_8 = ln 2
    assert valley(profile, cut, k=1).depth == pytest.approx(math.log(2), abs=1e-12)


def test_valley_clips_and_uses_dims():
    profile = np.array([0.5, 0.2, 0.9, 1.1, 0.7])  # N = 6 sites
    v = valley(profile, 2, k=3)  # bond -1 clips to 1, bond 5 stays
    assert (v.left_bond, v.right_bond) == (1, 5)
    assert v.depth == pytest.approx((0.5 + 0.7) / 2 - 0.2)
    v = valley(profile, 3, k=1, dims=[2, 3, 2, 3, 2, 3])  # dA = 12, dB = 18
    page = math.fsum(1 / k for k in range(19, 12 * 18 + 1)) - 11 / 36
    assert v.page == pytest.approx(page, abs=1e-12)
    with pytest.raises(ValueError, match="dims"):
        valley(profile, 3, dims=[2, 2])
    with pytest.raises(ValueError, match="cut"):
        valley(profile, 6)
    with pytest.raises(ValueError, match="k"):
        valley(profile, 3, k=0)
    with pytest.raises(ValueError, match="rank"):
        valley(profile, 3, rank=0)


def test_results_are_frozen():
    fit = fit_cardy(chord_profile(10, 1.0, 0.0, "periodic"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.c = 2.0
    with pytest.raises(ValueError):
        fit.residuals[0] = 1.0
