"""The row and figure beyond the paper: intruder dimensions of LoRA, MPS and FFT."""

from __future__ import annotations

import json

import pandas as pd

from artent.report.beyond import intruders_figure
from artent.report.claims import evaluate_claims
from artent.report.figures import FIGURES, figure_ref
from artent.report.tables import load_study

INTERNAL = "internal/internal_summary.parquet"
ROW = "intruder dimensions (beyond the paper)"


def _row(root):
    return evaluate_claims(root).set_index("claim").loc[ROW]


def test_intruder_row_is_the_tables_own_and_marked_beyond_the_paper(synthetic_study):
    summ = pd.read_parquet(synthetic_study / INTERNAL)
    runs = {r["name"]: r for r in json.loads((synthetic_study / "study.json").read_text())["runs"]}
    final = summ[summ.step == summ.step.max()]
    fft = final[final.label == "tulu-fft"].intruders.mean()
    lora = final[final.label == "tulu-lora-r8"].intruders.mean()
    assert runs["tulu-lora-r8"]["method"] == "lora" and lora > fft
    row = _row(synthetic_study)
    assert row.reproduced is True
    assert row.statement.startswith("Beyond the paper")
    assert f"tulu-lora-r8: {lora:.3g} vs FFT {fft:.3g}" in row.measured
    assert row.evidence == figure_ref("intruders")
    assert list(FIGURES)[-1] == "sweep"  # numbered before the sweep, which sweep folders add


def test_fft_with_as_many_intruders_fails(study_copy):
    root, edit = study_copy

    def flood(f):
        f.loc[f.label.str.endswith("-fft"), "intruders"] = 10.0
        return f

    edit(INTERNAL, flood)
    row = _row(root)
    assert row.reproduced is False and "vs FFT 10" in row.measured


def test_an_older_study_without_intruders_is_not_measured(study_copy):
    root, edit = study_copy
    edit(INTERNAL, lambda f: f.drop(columns=["intruders"]))
    row = _row(root)
    assert row.reproduced is None and "no intruders column" in row.measured
    assert intruders_figure(load_study(root)) is None


def test_the_figure_draws(synthetic_study):
    png = intruders_figure(load_study(synthetic_study))
    assert png is not None and len(png) > 1000
