"""The paper's claims, checked against the tables of a study folder (never against models).

:func:`evaluate_claims` reads what ``artent demo`` wrote (any table may be missing: an
interrupted or ``--quick`` study; see :mod:`artent.report.tables`) and returns one row per claim:
the model it was measured on, the measured figures, the numerical criterion, and whether it holds
(``True``/``False``, or ``None`` for "not measured" when a table or the runs a claim needs are
absent). The criteria table is :data:`CLAIMS`; the evaluators live in :mod:`artent.report.checks`
and the thresholds in :class:`~artent.report.thresholds.ClaimThresholds`, each criterion string
stating them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from artent.report import checks as c
from artent.report.beyond import BEYOND_CLAIMS
from artent.report.figures import figure_ref
from artent.report.tables import StudyTables, load_study
from artent.report.thresholds import ClaimThresholds

__all__ = ["CLAIMS", "CLAIM_COLUMNS", "ClaimThresholds", "evaluate_claims"]

CLAIM_COLUMNS = [
    "claim",
    "reading",
    "statement",
    "model",
    "measured",
    "criterion",
    "reproduced",
    "evidence",
]
# Where each claim is measured: the study's fine-tuned runs, the base model's long-T attention
# stage (falling back to the runs when a study has none), or random matrices alone.
WHERE = {
    "RMT baseline": "none: random matrices",
    "attention entropy vs T": "base",
    "attention law, sequence length": "base",
}
# The paper's attention law read two ways (docs/method.md): which reading each row belongs to.
READINGS = {
    "attention area law + log": "qubit chain",
    "attention entropy vs T": "qubit chain",
    "attention law, sequence length": "sequence length",
}


CLAIMS: tuple[tuple[str, str, str, Callable, str], ...] = (
    (
        "volume law",
        "Away from the row|column cut, the entanglement of LoRA updates grows about linearly "
        "with the distance to the chain end (a volume law).",
        "mean volume-law slope of the LoRA modules (final step; bonds outside the valley window) "
        "> {volume_fraction:g} x the slope of their random-LoRA RMT curves fitted the same way "
        "(x ln 2 if internal.parquet is missing)",
        c._claim_volume_law,
        "internal",
    ),
    (
        "Entanglement Valley floor",
        "LoRA (and MPS) updates dip at the row|column cut, pinned at S_cut <= ln r.",
        "every LoRA/MPS module at every trained step: S_cut <= ln r + {bound_tol:g}; "
        "and mean valley depth > 0",
        c._claim_valley_floor,
        "internal",
    ),
    (
        "valley vs rank",
        "The valley moves with the LoRA rank: S_cut rises with r.",
        "mean within-module Spearman rho(rank, S_cut) > 0 at the final step, in every "
        "(data, lr) group with two ranks or more",
        c._claim_valley_rank,
        "valley",
    ),
    (
        "valley vs learning rate",
        "The valley is sensitive to the learning rate.",
        "|mean within-module Spearman rho(lr, S_cut or depth)| >= {trend_rho:g} at the final "
        "step, in every (data, rank) group with two learning rates or more",
        c._claim_valley_lr,
        "valley",
    ),
    (
        "valley vs training step",
        "The valley moves along training.",
        "|mean Spearman rho(step, S_cut or depth)| >= {trend_rho:g} over each LoRA module's "
        "track along the trained steps (step 0 is a zero update)",
        c._claim_valley_step,
        "valley",
    ),
    (
        "FFT differs",
        "Full fine-tuning shows a far shallower valley or none: its S_cut sits well above LoRA's.",
        "for every LoRA run, against the FFT run on the same data (same layers and modules, final "
        "step): mean S_cut(FFT) - S_cut(LoRA) >= {fft_margin:.3g} nats and mean depth(FFT) <= "
        "{fft_depth_fraction:g} x depth(LoRA)",
        c._claim_fft_differs,
        "internal",
    ),
    (
        "RMT baseline",
        "Random LoRA and full-rank updates follow their random-matrix predictions.",
        "every random update within {rmt_error:g} nats per bond (mean) of its closed form",
        c._claim_rmt,
        "rmt",
    ),
    (
        "attention area law + log",
        "Attention matrices follow an area law with logarithmic corrections (the Attention "
        "Cardy Formula).",
        "profile far below the volume law (mean S_l / S_Page(l) < {area_page_fraction:g}), "
        "area+log beats the volume law (AIC) in > {area_fraction:.0%} of fits and mean R^2 > "
        "{r2_min:g} (amplitude encoding, sequential order, every run and step)",
        c._claim_area_law,
        "attention",
    ),
    (
        "attention entropy vs T",
        "Across sequence lengths T the row|column entropy follows the Cardy law of the site "
        "chain (N = 2 log2 T sites): it grows as (c/3) ln N (an area law with a logarithmic "
        "correction), not linearly in N (a volume law, linear in ln T).",
        "mean cut entropy against T (amplitude): the fit linear in ln N beats the fit linear in N "
        "by AIC and has R^2 > {log_scaling_r2:g}",
        c._claim_log_scaling,
        "length_scaling",
    ),
    (
        "attention law, sequence length",
        "Read with the window length T as the subsystem size, the Attention Cardy Formula says "
        "the row|column entropy grows as (c/3) ln T + c0: an area law with a logarithmic "
        "correction, far below the volume law of a random state (Page: ln T - 1/2, slope 1 in "
        "ln T).",
        "mean cut entropy against ln T (amplitude): the line has R^2 > {log_scaling_r2:g} and a "
        "slope in (0, {area_page_fraction:g} x 1), i.e. below {area_page_fraction:g} of the "
        "volume law's slope (the same fraction as the area-law row)",
        c._claim_length_law,
        "sequence_length",
    ),
    (
        "central charge robust",
        "The central charge c stays nearly constant across methods, hyper-parameters and "
        "training steps.",
        "coefficient of variation (sample std / |mean|) of the per-(run, step) mean c < {c_cv:g}, "
        "over steps > 0 (step 0 is the base model, excluded so it is not counted once per run)",
        c._claim_c_robust,
        "central_charge",
    ),
    (
        "no-hair",
        "LoRA and FFT differ internally far more than in their attention (a small no-hair "
        "ratio: external / internal contrast).",
        "every tuned-vs-tuned pair: external / internal contrast < {nohair_ratio:g}",
        c._claim_nohair,
        "nohair",
    ),
    (
        "attention outputs agree",
        "The internal differences do not manifest in the attention outputs.",
        "every tuned-vs-tuned pair: cosine of the per-head attention contexts (A V) > "
        "{context_cos:g}",
        c._claim_outputs_agree,
        "nohair",
    ),
    (
        "MPS like LoRA",
        "MPS adaptation behaves like LoRA: the same floor and a valley of the same sign.",
        "every MPS module at every trained step: S_cut <= ln r + {bound_tol:g}; and mean depth "
        "(final step) of the same sign as LoRA's",
        c._claim_mps,
        "internal",
    ),
    *BEYOND_CLAIMS,  # beyond the paper: artent.report.beyond
)


def _where(t: StudyTables, claim: str) -> str:
    """The model a claim was measured on (the report's model column)."""
    where = WHERE.get(claim, "runs")
    if where == "base" and t.base_scaling is not None and not t.base_scaling.empty:
        return f"{t.model_name}, base"
    if where in ("base", "runs"):
        return f"{t.model_name}, fine-tuned runs"
    return where


def evaluate_claims(
    study_dir: str | Path | StudyTables, thresholds: ClaimThresholds | None = None
) -> pd.DataFrame:
    """One row per claim: ``claim, reading, statement, model, measured, criterion, reproduced,
    evidence``.

    Args:
        study_dir: a study folder (see :mod:`artent.pipelines.study`), or tables already loaded.
        thresholds: what counts as reproduced (defaults: :class:`ClaimThresholds`).

    Returns:
        A DataFrame; ``reading`` says which reading of the attention law a row belongs to
        (``qubit chain`` or ``sequence length``; empty for the other claims); ``model`` names
        the model each claim was measured on; ``reproduced`` is
        ``True``, ``False`` or ``None`` (not measured: the ``measured`` cell says which table or
        runs were missing).
    """
    t = study_dir if isinstance(study_dir, StudyTables) else load_study(study_dir)
    th = thresholds or ClaimThresholds()
    values = asdict(th)
    rows = []
    for name, statement, criterion, fn, fig in CLAIMS:
        try:
            measured, ok = fn(t, th)
        except c.NotMeasured as e:
            measured, ok = f"not measured: {e}", None
        rows.append(
            dict(
                claim=name,
                reading=READINGS.get(name, ""),
                statement=statement,
                model=_where(t, name),
                measured=measured,
                criterion=criterion.format(**values),
                reproduced=ok,
                evidence=figure_ref(fig),
            )
        )
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS).astype({"reproduced": object})
