"""The maths: entanglement profiles, fits and random-matrix baselines (numpy/torch only)."""

from artent.entanglement.fits import (
    CardyFit,
    LawComparison,
    Valley,
    VolumeFit,
    compare_laws,
    fit_cardy,
    fit_volume,
    valley,
)
from artent.entanglement.profile import (
    LowRank,
    entanglement_profile,
    entropies_from_spectrum,
    schmidt_spectra,
)
from artent.entanglement.rmt import (
    RandomAttentionBaseline,
    page_entropy,
    page_profile,
    random_attention,
    random_attention_profile,
    random_lora_profile,
    sample_random_lora_profile,
)
from artent.entanglement.sites import SiteLayout, matrix_layout, prime_factors

__all__ = [
    "CardyFit",
    "LawComparison",
    "LowRank",
    "RandomAttentionBaseline",
    "SiteLayout",
    "Valley",
    "VolumeFit",
    "compare_laws",
    "entanglement_profile",
    "entropies_from_spectrum",
    "fit_cardy",
    "fit_volume",
    "matrix_layout",
    "page_entropy",
    "page_profile",
    "prime_factors",
    "random_attention",
    "random_attention_profile",
    "random_lora_profile",
    "sample_random_lora_profile",
    "schmidt_spectra",
    "valley",
]
