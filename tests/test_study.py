"""artent demo --quick end to end: the study, its resumption and its report (offline)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from artent.cli import main as cli_main


@pytest.fixture(scope="module")
def quick_study(artent_cache, tmp_path_factory):
    """Run the quick study once, interrupted after training and resumed."""
    import artent.pipelines.study as study

    out = tmp_path_factory.mktemp("study") / "demo"
    real = study._stage
    calls = {"n": 0}

    def stop_before_external(out_, name, done, fn, timings, log):
        if name == "external" and calls["n"] == 0:
            calls["n"] += 1
            raise KeyboardInterrupt
        return real(out_, name, done, fn, timings, log)

    mp = pytest.MonkeyPatch()
    mp.setattr(study, "_stage", stop_before_external)
    with pytest.raises(KeyboardInterrupt):
        study.run_study(out, study.StudyConfig(quick=True), progress=False)
    assert (out / "internal" / "internal_summary.parquet").is_file()
    assert not (out / "report.html").exists()
    mp.undo()
    logs: list[str] = []
    report = study.run_study(out, study.StudyConfig(quick=True), log=logs.append, progress=False)
    return out, report, logs


def test_interrupted_study_resumes_where_it_stopped(quick_study):
    out, report, logs = quick_study
    assert report == out / "report.html" and report.is_file()
    assert any("[internal] already done" in m for m in logs)
    assert any(m.startswith("[train") and "already done" in m for m in logs)
    assert any(m.startswith("[external] done") for m in logs)


def test_quick_study_reproduces_the_valley_and_writes_every_table(quick_study):
    out, _, _ = quick_study
    record = json.loads((out / "study.json").read_text())
    assert record["quick"] and len(record["runs"]) >= 6 and "torch" in record["versions"]
    s = pd.read_parquet(out / "internal" / "internal_summary.parquet")
    lora = s[(s.kind == "lora") & (s.status == "ok")]
    assert len(lora) and (lora.center_entropy <= lora.ln_rank + 1e-9).all()
    fft = s[(s.kind == "dense") & (s.status == "ok")]
    assert fft.valley_depth.mean() < lora.valley_depth.mean()
    for table in (
        "external/external_summary",
        "external/scaling",
        "nohair/nohair",
        "baselines/profiles",
    ):
        assert len(pd.read_parquet(out / f"{table}.parquet")) > 0, table


def test_claims_table_in_the_report(quick_study):
    from artent.report.claims import evaluate_claims

    out, report, _ = quick_study
    claims = evaluate_claims(out)
    assert len(claims) >= 9
    valley = claims[claims.claim.str.contains("valley", case=False)]
    assert valley.reproduced.any()
    html = report.read_text()
    assert "<table" in html and "data:image/png;base64," in html


def test_demo_refuses_a_folder_with_another_config(quick_study, capsys):
    out, _, _ = quick_study
    assert cli_main(["demo", "--out", str(out), "--seed", "3"]) == 2
    assert "another config" in capsys.readouterr().err


def test_study_precision_reaches_every_run_and_is_validated():
    from artent.pipelines.study_config import StudyConfig

    assert all(r["precision"] == "bf16" for r in StudyConfig(precision="bf16").runs())
    assert all("precision" not in r for r in StudyConfig().runs())  # fp32: the runs' default
    with pytest.raises(ValueError, match="precision"):
        StudyConfig(precision="fp16")
