"""The sequence-length reading's fit against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from artent.entanglement.length import PAGE_LENGTH_SLOPE, fit_length_law
from artent.entanglement.rmt import page_entropy


def test_an_exact_cardy_line_in_ln_T_gives_back_c_in_both_forms():
    T = np.array([8, 16, 32, 64, 128, 256])
    law = fit_length_law(T, 1.2 / 3 * np.log(T) + 0.3)
    assert law.slope == pytest.approx(0.4, abs=1e-12) and law.c0 == pytest.approx(0.3, abs=1e-12)
    assert law.c_periodic == pytest.approx(1.2, abs=1e-12)
    assert law.c_open == pytest.approx(2.4, abs=1e-12)
    assert law.r2 == pytest.approx(1.0, abs=1e-12) and law.n == 6


def test_the_page_cut_entropy_has_slope_one_in_ln_T():
    # Page's exact mean at the row|column cut of a T x T state: ln T - 1/2 + O(1/T^2)
    T = np.array([64, 128, 256, 512, 1024])
    law = fit_length_law(T, [page_entropy(int(t), int(t)) for t in T])
    assert law.slope == pytest.approx(PAGE_LENGTH_SLOPE, abs=1e-3)
    assert law.c0 == pytest.approx(-0.5, abs=1e-2) and law.page_fraction == pytest.approx(
        1, abs=1e-3
    )


def test_noise_lowers_r2_as_the_dense_formula_says():
    T = np.array([8.0, 16, 32, 64])
    y = 0.3 * np.log(T) + np.array([0.05, -0.05, 0.05, -0.05])
    law = fit_length_law(T, y)
    slope, c0 = np.polyfit(np.log(T), y, 1)
    rss = ((slope * np.log(T) + c0 - y) ** 2).sum()
    assert law.slope == pytest.approx(slope, abs=1e-12)
    assert law.r2 == pytest.approx(1 - rss / ((y - y.mean()) ** 2).sum(), abs=1e-12)


@pytest.mark.parametrize(
    ("T", "y", "message"),
    [
        ([8, 8], [1.0, 1.0], "two distinct values"),
        ([1, 8], [0.0, 1.0], "two distinct values >= 2"),
        ([8, 16], [1.0, math.nan], "finite"),
        ([8, 16, 32], [1.0, 2.0], "two 1-D arrays"),
    ],
)
def test_bad_input_names_the_argument(T, y, message):
    with pytest.raises(ValueError, match=message):
        fit_length_law(T, y)
