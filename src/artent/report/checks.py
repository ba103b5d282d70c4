"""The evaluators of the report's claims: each reads a study's tables and returns its verdict.

Every evaluator takes the tables (:class:`~artent.report.tables.StudyTables`) and the
:class:`~artent.report.thresholds.ClaimThresholds`, and returns ``(measured, reproduced)``: the
figures it computed, as text, and whether they meet the criterion; it raises :class:`NotMeasured`
when a table or the runs it needs are missing. The table of claims that names them, with their
statements and criteria, is :data:`artent.report.claims.CLAIMS`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from artent.analysis.external.readings import (
    SINK_HEAD_SHARE,
    amplitude_sequential,
    length_law,
    page_ratio,
    sink_heads,
)
from artent.entanglement.fits import fit_volume
from artent.entanglement.length import PAGE_LENGTH_SLOPE
from artent.report.tables import (
    MADE_BY,
    TABLES,
    StudyTables,
    final_rows,
    length_scaling_fit,
    trained_updates,
    within_trend,
)
from artent.report.thresholds import LN2, ClaimThresholds


def g3(x: float) -> str:
    """A number in a claim's reading: three significant digits, ``nan`` when not finite."""
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


def need_tables(t: StudyTables, *names: str) -> None:
    """Raise :class:`NotMeasured` naming the first of ``names`` the study lacks, and what
    makes it."""
    for name in names:
        if t.tables.get(name) is None:
            raise NotMeasured(f"{TABLES[name][0]} missing ({MADE_BY[name]})")


def rows_or_skip(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """``frame``, or :class:`NotMeasured` when it is empty (no ``what`` in the study)."""
    if frame.empty:
        raise NotMeasured(f"no {what} in the study")
    return frame


# ----- the claims: each returns (measured, reproduced) or raises NotMeasured ---------------------


def _rmt_slope(t: StudyTables, rows: pd.DataFrame, k: int) -> float:
    """Mean volume-law slope of the random-matrix curves behind ``rows``, fitted like theirs."""
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
    need_tables(t, "internal_summary")
    summ = final_rows(t.run_meta(t.internal_summary))
    summ = summ[(summ.status == "ok") & summ.volume_slope.notna()]
    lora = rows_or_skip(summ[summ.method == "lora"], "trained LoRA module with a volume fit")
    slope, rmt = float(lora.volume_slope.mean()), _rmt_slope(t, lora, th.valley_k)
    ref, ref_name = (rmt, "random-LoRA RMT") if math.isfinite(rmt) else (LN2, "ln 2")
    fft = summ[summ.method == "fft"].volume_slope
    measured = (
        f"mean LoRA slope {g3(slope)} nats/site over {len(lora)} modules (final step, min "
        f"{g3(lora.volume_slope.min())}); random-LoRA RMT slope {g3(rmt)}; FFT "
        f"{g3(fft.mean())}; threshold {th.volume_fraction:g} x {ref_name} = "
        f"{g3(th.volume_fraction * ref)}"
    )
    return measured, bool(slope > th.volume_fraction * ref)


def _claim_valley_floor(t: StudyTables, th: ClaimThresholds) -> tuple[str, bool]:
    need_tables(t, "internal_summary")
    rows = rows_or_skip(trained_updates(t, ("lora", "mps")), "trained LoRA/MPS module")
    worst, above = _floor(rows, th.bound_tol)
    depth = float(rows.valley_depth.mean())
    measured = (
        f"max S_cut - ln r = {worst:+.3g} nats over {len(rows)} LoRA/MPS module updates "
        f"(every trained step; {above} above the bound); mean valley depth {g3(depth)} nats"
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
            f"{_SHORT.get(k, k)}={g3(v) if isinstance(v, float) else v}"
            for k, v in zip(groups, key, strict=True)
        )
        trends = [within_trend(g, x, col, units) for col in y]
        means = g.groupby(x)[["center_entropy", "valley_depth"]].mean()
        path = ", ".join(f"{_SHORT[x]}={g3(v)}: {g3(s)}/{g3(d)}" for v, (s, d) in means.iterrows())
        yield name, trends, f"S_cut/depth at {path}"


def _claim_valley_rank(t: StudyTables, th: ClaimThresholds) -> tuple[str, bool]:
    need_tables(t, "internal_summary")
    rows = final_rows(trained_updates(t, ("lora",)))
    found = list(
        _by_group(rows, "nominal_rank", ["data", "lr"], ["layer", "module"], ["center_entropy"])
    )
    if not found:
        raise NotMeasured("no two LoRA ranks at the same data and learning rate")
    parts = [f"{n}: rho {g3(tr[0][0])} over {tr[0][1]} modules ({p})" for n, tr, p in found]
    return "; ".join(parts), all(tr[0][0] > 0 for _, tr, _ in found)


def _trend_claim(rows, x, groups, units, th, what: str) -> tuple[str, bool]:
    found = list(_by_group(rows, x, groups, units, ["center_entropy", "valley_depth"]))
    if not found:
        raise NotMeasured(what)
    parts, ok = [], []
    for name, ((rs, n), (rd, _)), path in found:
        parts.append(f"{name}: rho S_cut {g3(rs)}, rho depth {g3(rd)} over {n} tracks ({path})")
        strongest = max(abs(np.nan_to_num(rs)), abs(np.nan_to_num(rd)))
        ok.append(strongest >= th.trend_rho - 1e-9)  # the rhos are means of +-1: round-off
    return "; ".join(parts), bool(all(ok))


def _claim_valley_lr(t: StudyTables, th: ClaimThresholds) -> tuple[str, bool]:
    need_tables(t, "internal_summary")
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
    need_tables(t, "internal_summary")
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
    need_tables(t, "internal_summary")
    final = final_rows(t.run_meta(t.internal_summary))
    final = final[(final.status == "ok") & final.center_entropy.notna()]
    fft = rows_or_skip(final[final.method == "fft"], "trained FFT module")
    lora = rows_or_skip(final[final.method == "lora"], "trained LoRA module")
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
        parts.append(f"{label}: S_cut gap {g3(gap)}, depth FFT {g3(d_fft)} vs {g3(d_lora)}")
    # The rank bound itself, for the record: FFT above ln r only where r is small enough.
    s_fft = float(fft.center_entropy.mean())
    ranks = sorted({int(r) for r in lora.nominal_rank.dropna()})
    above = ", ".join(
        f"ln {r} = {g3(math.log(r))} {'<' if s_fft > math.log(r) else '>='}" for r in ranks
    )
    measured = (
        "; ".join(parts)
        + f" (nats, final step, {len(pairs)} module pairs); mean FFT S_cut {g3(s_fft)} against "
        f"the LoRA bounds: {above} FFT"
    )
    return measured, bool(all(ok))


def _claim_rmt(t: StudyTables, th: ClaimThresholds) -> tuple[str, bool]:
    need_tables(t, "profiles")
    p = t.profiles
    err = (p.entropy - p.prediction).abs().groupby(p.kind, sort=False).mean()
    measured = "mean |S - prediction| per bond: " + ", ".join(
        f"{k} {g3(e)}" for k, e in err.items()
    )
    return measured, bool((err <= th.rmt_error).all())


def _attention(t: StudyTables) -> pd.DataFrame:
    need_tables(t, "external_summary")
    s = t.external_summary
    s = s[(s.encoding == "amplitude") & (s.order == "sequential")]
    return rows_or_skip(s, "amplitude/sequential attention fit")


def _page_fraction(t: StudyTables) -> float:
    """Mean of ``S_l / S_Page(l)`` over the attention profiles' bonds (amplitude, sequential).

    The Page curve of a ``T x T`` matrix (row sites, then column sites) is the volume law a
    random attention-sized state follows; an area law sits far below it.
    """
    if t.external is None:
        return math.nan
    ratio = page_ratio(amplitude_sequential(t.external))
    return float(ratio.mean()) if len(ratio) else math.nan


def _r2_spread(s: pd.DataFrame, r2_min: float) -> str:
    """Mean, median and share above ``r2_min`` of the chord-fit R^2, for sink and other heads."""
    sink = sink_heads(s)
    parts = []
    for name, rows in (("sink heads", s[sink]), ("other heads", s[~sink])):
        if len(rows):
            r2 = rows.r2.astype(float)
            parts.append(
                f"{name} ({len(rows)} fits): R^2 mean {g3(r2.mean())}, median {g3(r2.median())}, "
                f"{(r2 > r2_min).mean():.0%} above {r2_min:g}, area+log "
                f"{(rows.law == 'area+log').mean():.0%}"
            )
    if "sink_share" not in s:
        parts.append("no sink share in these tables (written before it was measured)")
    return "; ".join(parts)


def _claim_area_law(t: StudyTables, th: ClaimThresholds) -> tuple[str, bool]:
    s = _attention(t)
    frac, r2, c = float((s.law == "area+log").mean()), float(s.r2.mean()), float(s.c.mean())
    page = _page_fraction(t)
    measured = (
        f"profile / Page curve {g3(page)} (mean over bonds); area+log preferred (AIC) in "
        f"{frac:.0%} of {len(s)} (run, step, layer, head) fits; mean c {g3(c)} (periodic form c/3; "
        f"open form c/6: {g3(2 * c)}), mean R^2 {g3(r2)}, median {g3(float(s.r2.median()))}, "
        f"{(s.r2 > th.r2_min).mean():.0%} above {th.r2_min:g}; by head (a sink head puts >= "
        f"{SINK_HEAD_SHARE:g} of its attention on the first token): {_r2_spread(s, th.r2_min)}"
    )
    if t.baseline is not None:
        b = t.baseline
        b = b[(b.encoding == "amplitude") & (b.order == "sequential")]
        b = b[b.beta_source == "fitted"] if (b.beta_source == "fitted").any() else b
        if len(b):
            measured += f"; random attention at the fitted beta: c {g3(b.c.mean())}"
    below = math.isfinite(page) and page < th.area_page_fraction
    return measured, bool(below and frac > th.area_fraction and r2 > th.r2_min)


def _scaling_table(t: StudyTables) -> tuple[pd.DataFrame, str]:
    """The T-scaling rows: the base model's long-T stage when the study has it, else the runs'."""
    if t.base_scaling is not None and not t.base_scaling.empty:
        return t.base_scaling, "base model"
    need_tables(t, "scaling")
    return t.scaling, "runs and steps"


def _claim_log_scaling(t: StudyTables, th: ClaimThresholds) -> tuple[str, bool]:
    scaling, source = _scaling_table(t)
    s = scaling[scaling.encoding == "amplitude"]
    mean = rows_or_skip(s, "amplitude scaling row").groupby("T").cut_entropy.mean().sort_index()
    if len(mean) < 3:
        raise NotMeasured(f"only {len(mean)} sequence length(s) in the scaling table")
    T, y = mean.index.to_numpy(dtype=float), mean.to_numpy(dtype=float)
    f = length_scaling_fit(T, y)
    measured = (
        f"cut entropy (mean over {source}, layers, heads) at T = "
        + ", ".join(f"{int(a)}: {g3(b)}" for a, b in zip(T, y, strict=True))
        + f"; Cardy (linear in ln N, N = sites): c = 3 x slope = {g3(f['c'])}, R^2 "
        f"{g3(f['r2_cardy'])}, AIC {g3(f['aic_cardy'])} (open form: c = 6 x slope = "
        f"{g3(2 * f['c'])}); volume law (linear in N, i.e. in ln T): "
        f"{g3(f['slope_volume'])} nats per unit of ln T, R^2 {g3(f['r2_volume'])}, AIC "
        f"{g3(f['aic_volume'])}"
    )
    return measured, bool(f["aic_cardy"] < f["aic_volume"] and f["r2_cardy"] > th.log_scaling_r2)


def _scaling_baseline(t: StudyTables, source: str) -> pd.DataFrame | None:
    """Random attention at each head's fitted beta along T, from the same stage as the rows."""
    frame = t.base_scaling_baseline if source == "base model" else t.scaling_baseline
    return None if frame is None or frame.empty else frame


def _claim_length_law(t: StudyTables, th: ClaimThresholds) -> tuple[str, bool]:
    scaling, source = _scaling_table(t)
    s = rows_or_skip(scaling[scaling.encoding == "amplitude"], "amplitude scaling row")
    if s["T"].nunique() < 3:
        raise NotMeasured(f"only {s['T'].nunique()} sequence length(s) in the scaling table")
    law, mean = length_law(s)
    measured = (
        f"cut entropy (mean over {source}, layers, heads) at T = "
        + ", ".join(f"{int(a)}: {g3(b)}" for a, b in mean.items())
        + f"; S_cut = {g3(law.slope)} ln T + {g3(law.c0)}, R^2 {g3(law.r2)}: c = 3 x slope = "
        f"{g3(law.c_periodic)} (periodic form c/3), 6 x slope = {g3(law.c_open)} (open form "
        f"c/6); volume law (Page, ln T - 1/2): slope {PAGE_LENGTH_SLOPE:g}, so the slope is "
        f"{g3(law.page_fraction)} of it"
    )
    baseline = _scaling_baseline(t, source)
    if baseline is not None and baseline["T"].nunique() >= 2:
        rand, _ = length_law(baseline)
        measured += (
            f"; random causal attention at each head's fitted beta: slope {g3(rand.slope)} "
            f"(c = {g3(rand.c_periodic)}), R^2 {g3(rand.r2)}"
        )
    ok = law.r2 > th.log_scaling_r2 and 0 < law.slope < th.area_page_fraction * PAGE_LENGTH_SLOPE
    return measured, bool(ok)


def _claim_c_robust(t: StudyTables, th: ClaimThresholds) -> tuple[str, bool]:
    s = _attention(t)
    step = s.step.astype(float).fillna(-1)
    per = s[step != 0].groupby(["label", "step"], dropna=False).c.mean()
    if len(per) < 2:
        raise NotMeasured("fewer than two trained (run, step) attention fits")
    cv = float(per.std(ddof=1) / abs(per.mean()))
    by_method = t.run_meta(per.reset_index()).groupby("method").c.mean()
    base_model = s[step == 0].c
    measured = (
        f"CV {g3(cv)} over {len(per)} trained (run, step) means of c (range {g3(per.min())}"
        f" to {g3(per.max())}; by method "
        + ", ".join(f"{m} {g3(v)}" for m, v in by_method.items())
        + (f"; base (step 0) {g3(base_model.mean())}" if len(base_model) else "")
        + ")"
    )
    return measured, bool(cv < th.c_cv)


def _tuned_pairs(t: StudyTables):
    need_tables(t, "nohair")
    p = t.nohair
    p = p[(p.model != "base") & (p.reference != "base") & p.nohair_ratio.notna()]
    return rows_or_skip(p, "tuned-vs-tuned pair with an internal contrast")


def _claim_nohair(t: StudyTables, th: ClaimThresholds) -> tuple[str, bool]:
    p = _tuned_pairs(t)
    measured = "; ".join(
        f"{r.model} vs {r.reference}: ratio {g3(r.nohair_ratio)} (internal "
        f"{g3(r.internal_contrast)}, external {g3(r.external_contrast)} nats)"
        for r in p.itertuples()
    )
    return measured, bool((p.nohair_ratio < th.nohair_ratio).all())


def _claim_outputs_agree(t: StudyTables, th: ClaimThresholds) -> tuple[str, bool]:
    p = _tuned_pairs(t)
    measured = "; ".join(
        f"{r.model} vs {r.reference}: context cos {g3(r.context_cos)}, layer-output cos "
        f"{g3(r.hidden_cos)}, attention JS {g3(r.attention_js)} nats"
        for r in p.itertuples()
    )
    return measured, bool((p.context_cos > th.context_cos).all())


def _claim_mps(t: StudyTables, th: ClaimThresholds) -> tuple[str, bool]:
    need_tables(t, "internal_summary")
    mps = rows_or_skip(trained_updates(t, ("mps",)), "trained MPS module")
    lora = rows_or_skip(final_rows(trained_updates(t, ("lora",))), "trained LoRA module")
    worst, above = _floor(mps, th.bound_tol)
    d_mps, d_lora = float(final_rows(mps).valley_depth.mean()), float(lora.valley_depth.mean())
    measured = (
        f"MPS: max S_cut - ln r = {worst:+.3g} nats ({above} of {len(mps)} module updates "
        f"above); mean depth {g3(d_mps)} nats vs LoRA {g3(d_lora)} (final step)"
    )
    return measured, bool(above == 0 and d_mps * d_lora > 0)


# (name, the paper's claim, criterion (formatted with the thresholds), evaluator, figure key)
