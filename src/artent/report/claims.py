"""The paper's claims, checked against the tables of a study folder (never against models).

:func:`evaluate_claims` reads what ``artent demo`` wrote (any table may be missing: an
interrupted or ``--quick`` study; see :mod:`artent.report.tables`) and returns one row per claim:
the measured figures, the numerical criterion, and whether it holds (``True``/``False``, or
``None`` for "not measured" when a table or the runs a claim needs are absent). Every number is
computed from the tables; the thresholds live in :class:`ClaimThresholds` and each criterion
string states them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from artent.report.figures import figure_ref
from artent.report.tables import (
    TABLES,
    StudyTables,
    final_rows,
    length_scaling_fit,
    load_study,
    trained_updates,
    within_trend,
)

__all__ = ["ClaimThresholds", "evaluate_claims"]

LN2 = math.log(2.0)
CLAIM_COLUMNS = [
    "claim",
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
}


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


def _g(x: float) -> str:
    return "nan" if x is None or not math.isfinite(x) else f"{x:.3g}"


def _ln_rank(frame: pd.DataFrame) -> pd.Series:
    rank = frame["nominal_rank"].astype(float)
    if "ln_rank" in frame:
        return np.log(rank).fillna(frame["ln_rank"].astype(float))
    return np.log(rank)


def _floor(frame: pd.DataFrame, tol: float) -> tuple[float, int]:
    """Largest ``S_cut - ln r`` and the number of modules above ``ln r + tol``."""
    excess = frame.center_entropy.astype(float) - _ln_rank(frame)
    return float(excess.max()), int((excess > tol).sum())


class NotMeasured(Exception):
    """A claim cannot be evaluated: the message says which table or runs are missing."""


def _need(t: StudyTables, *names: str) -> None:
    for name in names:
        if t.tables.get(name) is None:
            raise NotMeasured(f"{TABLES[name][0]} missing")


def _rows_or_skip(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    if frame.empty:
        raise NotMeasured(f"no {what} in the study")
    return frame


# ----- the claims: each returns (measured, reproduced) or raises NotMeasured ---------------------


def _rmt_slope(t: StudyTables, rows: pd.DataFrame, k: int) -> float:
    """Mean volume-law slope of the random-matrix curves behind ``rows``, fitted like theirs."""
    from artent.entanglement.fits import fit_volume

    if t.internal is None:
        return math.nan
    keys = ["label", "step", "layer", "module"]
    slopes = []
    for _, g in t.internal.merge(rows[keys + ["cut"]], on=keys).groupby(keys, dropna=False):
        g = g.sort_values("bond")
        cut, n = int(g.cut.iloc[0]), len(g)
        window = [b for b in range(cut - k, cut + k + 1) if 1 <= b <= n]
        try:
            slopes.append(fit_volume(g.rmt.to_numpy(float), exclude=window).slope)
        except ValueError:  # too few bonds outside the window to fit
            continue
    return float(np.mean(slopes)) if slopes else math.nan


def _claim_volume_law(t: StudyTables, th: ClaimThresholds) -> tuple[str, bool]:
    _need(t, "internal_summary")
    summ = final_rows(t.run_meta(t.internal_summary))
    summ = summ[(summ.status == "ok") & summ.volume_slope.notna()]
    lora = _rows_or_skip(summ[summ.method == "lora"], "trained LoRA module with a volume fit")
    slope, rmt = float(lora.volume_slope.mean()), _rmt_slope(t, lora, th.valley_k)
    ref, ref_name = (rmt, "random-LoRA RMT") if math.isfinite(rmt) else (LN2, "ln 2")
    fft = summ[summ.method == "fft"].volume_slope
    measured = (
        f"mean LoRA slope {_g(slope)} nats/site over {len(lora)} modules (final step, min "
        f"{_g(lora.volume_slope.min())}); random-LoRA RMT slope {_g(rmt)}; FFT "
        f"{_g(fft.mean())}; threshold {th.volume_fraction:g} x {ref_name} = "
        f"{_g(th.volume_fraction * ref)}"
    )
    return measured, bool(slope > th.volume_fraction * ref)


def _claim_valley_floor(t: StudyTables, th: ClaimThresholds) -> tuple[str, bool]:
    _need(t, "internal_summary")
    rows = _rows_or_skip(trained_updates(t, ("lora", "mps")), "trained LoRA/MPS module")
    worst, above = _floor(rows, th.bound_tol)
    depth = float(rows.valley_depth.mean())
    measured = (
        f"max S_cut - ln r = {worst:+.3g} nats over {len(rows)} LoRA/MPS module updates "
        f"(every trained step; {above} above the bound); mean valley depth {_g(depth)} nats"
    )
    return measured, bool(above == 0 and depth > 0)


_SHORT = {"nominal_rank": "r", "lr": "lr", "step": "step", "data": "data"}


def _by_group(rows, x: str, groups: list[str], units: list[str], y: list[str]):
    """Per group with two values of ``x`` or more: its name, trends and per-``x`` means."""
    for key, g in rows.groupby(groups, dropna=False):
        if g[x].nunique() < 2:
            continue
        key = key if isinstance(key, tuple) else (key,)
        name = " ".join(
            f"{_SHORT.get(k, k)}={_g(v) if isinstance(v, float) else v}"
            for k, v in zip(groups, key, strict=True)
        )
        trends = [within_trend(g, x, col, units) for col in y]
        means = g.groupby(x)[["center_entropy", "valley_depth"]].mean()
        path = ", ".join(f"{_SHORT[x]}={_g(v)}: {_g(s)}/{_g(d)}" for v, (s, d) in means.iterrows())
        yield name, trends, f"S_cut/depth at {path}"


def _claim_valley_rank(t: StudyTables, th: ClaimThresholds) -> tuple[str, bool]:
    _need(t, "internal_summary")
    rows = final_rows(trained_updates(t, ("lora",)))
    found = list(
        _by_group(rows, "nominal_rank", ["data", "lr"], ["layer", "module"], ["center_entropy"])
    )
    if not found:
        raise NotMeasured("no two LoRA ranks at the same data and learning rate")
    parts = [f"{n}: rho {_g(tr[0][0])} over {tr[0][1]} modules ({p})" for n, tr, p in found]
    return "; ".join(parts), all(tr[0][0] > 0 for _, tr, _ in found)


def _trend_claim(rows, x, groups, units, th, what: str) -> tuple[str, bool]:
    found = list(_by_group(rows, x, groups, units, ["center_entropy", "valley_depth"]))
    if not found:
        raise NotMeasured(what)
    parts, ok = [], []
    for name, ((rs, n), (rd, _)), path in found:
        parts.append(f"{name}: rho S_cut {_g(rs)}, rho depth {_g(rd)} over {n} tracks ({path})")
        strongest = max(abs(np.nan_to_num(rs)), abs(np.nan_to_num(rd)))
        ok.append(strongest >= th.trend_rho - 1e-9)  # the rhos are means of +-1: round-off
    return "; ".join(parts), bool(all(ok))


def _claim_valley_lr(t: StudyTables, th: ClaimThresholds) -> tuple[str, bool]:
    _need(t, "internal_summary")
    rows = final_rows(trained_updates(t, ("lora",)))
    return _trend_claim(
        rows,
        "lr",
        ["data", "nominal_rank"],
        ["layer", "module"],
        th,
        "one learning rate per LoRA (data, rank)",
    )


def _claim_valley_step(t: StudyTables, th: ClaimThresholds) -> tuple[str, bool]:
    _need(t, "internal_summary")
    rows = trained_updates(t, ("lora",)).assign(LoRA="all runs")
    return _trend_claim(
        rows,
        "step",
        ["LoRA"],
        ["label", "layer", "module"],
        th,
        "fewer than two trained checkpoints per LoRA run",
    )


def _claim_fft_differs(t: StudyTables, th: ClaimThresholds) -> tuple[str, bool]:
    _need(t, "internal_summary")
    final = final_rows(t.run_meta(t.internal_summary))
    final = final[(final.status == "ok") & final.center_entropy.notna()]
    fft = _rows_or_skip(final[final.method == "fft"], "trained FFT module")
    lora = _rows_or_skip(final[final.method == "lora"], "trained LoRA module")
    # Each LoRA module against the FFT update of the same module, layer and data set.
    keys = ["data", "layer", "module"]
    pairs = lora.merge(
        fft[keys + ["center_entropy", "valley_depth"]], on=keys, suffixes=("", "_fft")
    )
    if pairs.empty:
        raise NotMeasured("no FFT run on the same data as a LoRA run")
    parts, ok = [], []
    for label, g in pairs.groupby("label", sort=False):
        gap = float((g.center_entropy_fft - g.center_entropy).mean())
        d_fft, d_lora = float(g.valley_depth_fft.mean()), float(g.valley_depth.mean())
        ok.append(gap >= th.fft_margin and d_fft <= th.fft_depth_fraction * d_lora)
        parts.append(f"{label}: S_cut gap {_g(gap)}, depth FFT {_g(d_fft)} vs {_g(d_lora)}")
    # The rank bound itself, for the record: FFT above ln r only where r is small enough.
    s_fft = float(fft.center_entropy.mean())
    ranks = sorted({int(r) for r in lora.nominal_rank.dropna()})
    above = ", ".join(
        f"ln {r} = {_g(math.log(r))} {'<' if s_fft > math.log(r) else '>='}" for r in ranks
    )
    measured = (
        "; ".join(parts)
        + f" (nats, final step, {len(pairs)} module pairs); mean FFT S_cut {_g(s_fft)} against "
        f"the LoRA bounds: {above} FFT"
    )
    return measured, bool(all(ok))


def _claim_rmt(t: StudyTables, th: ClaimThresholds) -> tuple[str, bool]:
    _need(t, "profiles")
    p = t.profiles
    err = (p.entropy - p.prediction).abs().groupby(p.kind, sort=False).mean()
    measured = "mean |S - prediction| per bond: " + ", ".join(
        f"{k} {_g(e)}" for k, e in err.items()
    )
    return measured, bool((err <= th.rmt_error).all())


def _attention(t: StudyTables) -> pd.DataFrame:
    _need(t, "external_summary")
    s = t.external_summary
    s = s[(s.encoding == "amplitude") & (s.order == "sequential")]
    return _rows_or_skip(s, "amplitude/sequential attention fit")


def _page_fraction(t: StudyTables) -> float:
    """Mean of ``S_l / S_Page(l)`` over the attention profiles' bonds (amplitude, sequential).

    The Page curve of a ``T x T`` matrix (row sites, then column sites) is the volume law a
    random attention-sized state follows; an area law sits far below it.
    """
    from artent.entanglement.rmt import page_profile
    from artent.entanglement.sites import prime_factors

    e = t.external
    if e is None:
        return math.nan
    e = e[(e.encoding == "amplitude") & (e.order == "sequential")]
    ratios = []
    for T, g in e.groupby("T"):
        page = page_profile(prime_factors(int(T)) * 2)
        bonds = g.bond.to_numpy(int)
        ratios.append(g.entropy.to_numpy(float) / page[bonds - 1])
    return float(np.concatenate(ratios).mean()) if ratios else math.nan


def _claim_area_law(t: StudyTables, th: ClaimThresholds) -> tuple[str, bool]:
    s = _attention(t)
    frac, r2, c = float((s.law == "area+log").mean()), float(s.r2.mean()), float(s.c.mean())
    page = _page_fraction(t)
    measured = (
        f"profile / Page curve {_g(page)} (mean over bonds); area+log preferred (AIC) in "
        f"{frac:.0%} of {len(s)} (run, step, layer, head) fits; mean c {_g(c)}, mean R^2 {_g(r2)}"
    )
    if t.baseline is not None:
        b = t.baseline
        b = b[(b.encoding == "amplitude") & (b.order == "sequential")]
        b = b[b.beta_source == "fitted"] if (b.beta_source == "fitted").any() else b
        if len(b):
            measured += f"; random attention at the fitted beta: c {_g(b.c.mean())}"
    below = math.isfinite(page) and page < th.area_page_fraction
    return measured, bool(below and frac > th.area_fraction and r2 > th.r2_min)


def _scaling_table(t: StudyTables) -> tuple[pd.DataFrame, str]:
    """The T-scaling rows: the base model's long-T stage when the study has it, else the runs'."""
    if t.base_scaling is not None and not t.base_scaling.empty:
        return t.base_scaling, "base model"
    _need(t, "scaling")
    return t.scaling, "runs and steps"


def _claim_log_scaling(t: StudyTables, th: ClaimThresholds) -> tuple[str, bool]:
    scaling, source = _scaling_table(t)
    s = scaling[scaling.encoding == "amplitude"]
    mean = _rows_or_skip(s, "amplitude scaling row").groupby("T").cut_entropy.mean().sort_index()
    if len(mean) < 3:
        raise NotMeasured(f"only {len(mean)} sequence length(s) in the scaling table")
    T, y = mean.index.to_numpy(dtype=float), mean.to_numpy(dtype=float)
    f = length_scaling_fit(T, y)
    measured = (
        f"cut entropy (mean over {source}, layers, heads) at T = "
        + ", ".join(f"{int(a)}: {_g(b)}" for a, b in zip(T, y, strict=True))
        + f"; Cardy (linear in ln N, N = sites): c = 3 x slope = {_g(f['c'])}, R^2 "
        f"{_g(f['r2_cardy'])}, AIC {_g(f['aic_cardy'])}; volume law (linear in N, i.e. in ln T): "
        f"{_g(f['slope_volume'])} nats per unit of ln T, R^2 {_g(f['r2_volume'])}, AIC "
        f"{_g(f['aic_volume'])}"
    )
    return measured, bool(f["aic_cardy"] < f["aic_volume"] and f["r2_cardy"] > th.log_scaling_r2)


def _claim_c_robust(t: StudyTables, th: ClaimThresholds) -> tuple[str, bool]:
    s = _attention(t)
    step = s.step.astype(float).fillna(-1)
    per = s[step != 0].groupby(["label", "step"], dropna=False).c.mean()
    if len(per) < 2:
        raise NotMeasured("fewer than two trained (run, step) attention fits")
    cv = float(per.std(ddof=1) / abs(per.mean()))
    by_method = t.run_meta(per.reset_index()).groupby("method").c.mean()
    base = s[step == 0].c
    measured = (
        f"CV {_g(cv)} over {len(per)} trained (run, step) means of c (range {_g(per.min())}"
        f" to {_g(per.max())}; by method "
        + ", ".join(f"{m} {_g(v)}" for m, v in by_method.items())
        + (f"; base (step 0) {_g(base.mean())}" if len(base) else "")
        + ")"
    )
    return measured, bool(cv < th.c_cv)


def _tuned_pairs(t: StudyTables):
    _need(t, "nohair")
    p = t.nohair
    p = p[(p.model != "base") & (p.reference != "base") & p.nohair_ratio.notna()]
    return _rows_or_skip(p, "tuned-vs-tuned pair with an internal contrast")


def _claim_nohair(t: StudyTables, th: ClaimThresholds) -> tuple[str, bool]:
    p = _tuned_pairs(t)
    measured = "; ".join(
        f"{r.model} vs {r.reference}: ratio {_g(r.nohair_ratio)} (internal "
        f"{_g(r.internal_contrast)}, external {_g(r.external_contrast)} nats)"
        for r in p.itertuples()
    )
    return measured, bool((p.nohair_ratio < th.nohair_ratio).all())


def _claim_outputs_agree(t: StudyTables, th: ClaimThresholds) -> tuple[str, bool]:
    p = _tuned_pairs(t)
    measured = "; ".join(
        f"{r.model} vs {r.reference}: context cos {_g(r.context_cos)}, layer-output cos "
        f"{_g(r.hidden_cos)}, attention JS {_g(r.attention_js)} nats"
        for r in p.itertuples()
    )
    return measured, bool((p.context_cos > th.context_cos).all())


def _claim_mps(t: StudyTables, th: ClaimThresholds) -> tuple[str, bool]:
    _need(t, "internal_summary")
    mps = _rows_or_skip(trained_updates(t, ("mps",)), "trained MPS module")
    lora = _rows_or_skip(final_rows(trained_updates(t, ("lora",))), "trained LoRA module")
    worst, above = _floor(mps, th.bound_tol)
    d_mps, d_lora = float(final_rows(mps).valley_depth.mean()), float(lora.valley_depth.mean())
    measured = (
        f"MPS: max S_cut - ln r = {worst:+.3g} nats ({above} of {len(mps)} module updates "
        f"above); mean depth {_g(d_mps)} nats vs LoRA {_g(d_lora)} (final step)"
    )
    return measured, bool(above == 0 and d_mps * d_lora > 0)


# (name, the paper's claim, criterion (formatted with the thresholds), evaluator, figure key)
CLAIMS: tuple[tuple[str, str, str, Callable, str], ...] = (
    (
        "volume law",
        "Away from the row|column cut, the entanglement of LoRA updates grows about linearly "
        "with the distance to the chain end (a volume law).",
        "mean volume-law slope of the LoRA modules (final step; bonds outside the valley window) "
        "> {volume_fraction:g} x the slope of their random-LoRA RMT curves fitted the same way "
        "(x ln 2 if internal.parquet is missing)",
        _claim_volume_law,
        "internal",
    ),
    (
        "Entanglement Valley floor",
        "LoRA (and MPS) updates dip at the row|column cut, pinned at S_cut <= ln r.",
        "every LoRA/MPS module at every trained step: S_cut <= ln r + {bound_tol:g}; "
        "and mean valley depth > 0",
        _claim_valley_floor,
        "internal",
    ),
    (
        "valley vs rank",
        "The valley moves with the LoRA rank: S_cut rises with r.",
        "mean within-module Spearman rho(rank, S_cut) > 0 at the final step, in every "
        "(data, lr) group with two ranks or more",
        _claim_valley_rank,
        "valley",
    ),
    (
        "valley vs learning rate",
        "The valley is sensitive to the learning rate.",
        "|mean within-module Spearman rho(lr, S_cut or depth)| >= {trend_rho:g} at the final "
        "step, in every (data, rank) group with two learning rates or more",
        _claim_valley_lr,
        "valley",
    ),
    (
        "valley vs training step",
        "The valley moves along training.",
        "|mean Spearman rho(step, S_cut or depth)| >= {trend_rho:g} over each LoRA module's "
        "track along the trained steps (step 0 is a zero update)",
        _claim_valley_step,
        "valley",
    ),
    (
        "FFT differs",
        "Full fine-tuning shows a far shallower valley or none: its S_cut sits well above LoRA's.",
        "for every LoRA run, against the FFT run on the same data (same layers and modules, final "
        "step): mean S_cut(FFT) - S_cut(LoRA) >= {fft_margin:.3g} nats and mean depth(FFT) <= "
        "{fft_depth_fraction:g} x depth(LoRA)",
        _claim_fft_differs,
        "internal",
    ),
    (
        "RMT baseline",
        "Random LoRA and full-rank updates follow their random-matrix predictions.",
        "every random update within {rmt_error:g} nats per bond (mean) of its closed form",
        _claim_rmt,
        "rmt",
    ),
    (
        "attention area law + log",
        "Attention matrices follow an area law with logarithmic corrections (the Attention "
        "Cardy Formula).",
        "profile far below the volume law (mean S_l / S_Page(l) < {area_page_fraction:g}), "
        "area+log beats the volume law (AIC) in > {area_fraction:.0%} of fits and mean R^2 > "
        "{r2_min:g} (amplitude encoding, sequential order, every run and step)",
        _claim_area_law,
        "attention",
    ),
    (
        "attention entropy vs T",
        "Across sequence lengths T the row|column entropy follows the Cardy law of the site "
        "chain (N = 2 log2 T sites): it grows as (c/3) ln N (an area law with a logarithmic "
        "correction), not linearly in N (a volume law, linear in ln T).",
        "mean cut entropy against T (amplitude): the fit linear in ln N beats the fit linear in N "
        "by AIC and has R^2 > {log_scaling_r2:g}",
        _claim_log_scaling,
        "length_scaling",
    ),
    (
        "central charge robust",
        "The central charge c stays nearly constant across methods, hyper-parameters and "
        "training steps.",
        "coefficient of variation (sample std / |mean|) of the per-(run, step) mean c < {c_cv:g}, "
        "over steps > 0 (step 0 is the base model, excluded so it is not counted once per run)",
        _claim_c_robust,
        "central_charge",
    ),
    (
        "no-hair",
        "LoRA and FFT differ internally far more than in their attention (a small no-hair "
        "ratio: external / internal contrast).",
        "every tuned-vs-tuned pair: external / internal contrast < {nohair_ratio:g}",
        _claim_nohair,
        "nohair",
    ),
    (
        "attention outputs agree",
        "The internal differences do not manifest in the attention outputs.",
        "every tuned-vs-tuned pair: cosine of the per-head attention contexts (A V) > "
        "{context_cos:g}",
        _claim_outputs_agree,
        "nohair",
    ),
    (
        "MPS like LoRA",
        "MPS adaptation behaves like LoRA: the same floor and a valley of the same sign.",
        "every MPS module at every trained step: S_cut <= ln r + {bound_tol:g}; and mean depth "
        "(final step) of the same sign as LoRA's",
        _claim_mps,
        "internal",
    ),
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
    """One row per claim: ``claim, statement, measured, criterion, reproduced, evidence``.

    Args:
        study_dir: a study folder (see :mod:`artent.study`), or tables already loaded.
        thresholds: what counts as reproduced (defaults: :class:`ClaimThresholds`).

    Returns:
        A DataFrame; ``model`` names the model each claim was measured on; ``reproduced`` is
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
        except NotMeasured as e:
            measured, ok = f"not measured: {e}", None
        rows.append(
            dict(
                claim=name,
                statement=statement,
                model=_where(t, name),
                measured=measured,
                criterion=criterion.format(**values),
                reproduced=ok,
                evidence=figure_ref(fig),
            )
        )
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS).astype({"reproduced": object})
