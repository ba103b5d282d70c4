"""The maths: entanglement profiles, fits and random-matrix baselines (numpy/torch only)."""

from artent.entanglement.profile import (
    LowRank,
    entanglement_profile,
    entropies_from_spectrum,
    schmidt_spectra,
)
from artent.entanglement.sites import SiteLayout, matrix_layout, prime_factors

__all__ = [
    "LowRank",
    "SiteLayout",
    "entanglement_profile",
    "entropies_from_spectrum",
    "matrix_layout",
    "prime_factors",
    "schmidt_spectra",
]
