"""What counts as reproduced: the thresholds every claim of the report is held to."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

LN2 = math.log(2.0)


@dataclass
class ClaimThresholds:
    """What counts as reproduced (every threshold is printed in the claim's ``criterion``).

    Args:
        volume_fraction: the LoRA volume-law slope must exceed this fraction of the random-matrix
            slope fitted the same way (0.5: past halfway from an area law, slope 0, to a random
            update, about ``ln 2`` nats per qubit).
        bound_tol: slack (nats) of the floor ``S_cut <= ln r``, for round-off.
        trend_rho: ``|Spearman rho|`` a learning-rate or step trend must reach to count as
            monotone (0.5: a clear majority of pairs ordered the same way).
        rmt_error: mean ``|S - prediction|`` (nats per bond) allowed between one sampled random
            update and its closed-form expectation.
        area_fraction: share of attention fits where the area+log law must win by AIC (strict
            majority by default).
        area_page_fraction: the attention profiles, bond by bond over the Page curve of a
            random ``T x T`` state (the volume law), must average below this ("far below the
            volume law", METHOD section 4).
        r2_min: mean R^2 of the Cardy fit.
        c_cv: coefficient of variation allowed for the per-(run, step) mean central charge.
        nohair_ratio: largest external / internal contrast allowed for tuned-vs-tuned pairs.
        context_cos: smallest cosine allowed between two tuned models' attention outputs.
        valley_k: half-width of the valley window the internal analysis excluded from its
            volume fit (``InternalConfig.k``); the random-matrix slope is fitted the same way.
        fft_margin: how far (nats) FFT's S_cut must sit above a LoRA run's, module by module
            (``ln 2``: one qubit's worth, a factor 2 in the effective Schmidt rank ``exp S``).
        fft_depth_fraction: FFT's valley depth must be at most this fraction of LoRA's ("far
            shallower").
        log_scaling_r2: R^2 the fit of the cut entropy linear in ``ln N`` (``N = 2 log2 T``
            sites) must reach; it must also beat the fit linear in ``N`` by AIC.
    """

    volume_fraction: float = 0.5
    bound_tol: float = 1e-9
    trend_rho: float = 0.5
    rmt_error: float = 0.05
    area_fraction: float = 0.5
    area_page_fraction: float = 0.5
    r2_min: float = 0.9
    c_cv: float = 0.1
    nohair_ratio: float = 0.2
    context_cos: float = 0.9
    valley_k: int = 2
    log_scaling_r2: float = 0.95
    fft_margin: float = LN2
    fft_depth_fraction: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"claim threshold {f.name}: must be a finite number >= 0")
        for name in (
            "volume_fraction",
            "area_fraction",
            "area_page_fraction",
            "r2_min",
            "context_cos",
            "trend_rho",
            "fft_depth_fraction",
        ):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"claim threshold {name}: must lie in (0, 1]")
        if int(self.valley_k) != self.valley_k or self.valley_k < 1:
            raise ValueError("claim threshold valley_k: must be a positive integer")
