"""Internal analysis along training: real LoRA, MPS and FFT runs of the small tiny model."""

from __future__ import annotations

from math import log

import pandas as pd
import pytest

from artent.cli import main as cli_main


@pytest.fixture(scope="module")
def runs(tiny_runs):
    return tiny_runs


def test_lora_valley_floor_and_fft_shallower_along_training(runs, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli_main(
        [
            "internal",
            "--run",
            str(runs["lora"]),
            "--run",
            str(runs["mps"]),
            "--run",
            str(runs["fft"]),
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    s = pd.read_parquet(out / "internal_summary.parquet")
    assert set(s.label) == {"lora", "mps", "fft"}
    assert sorted(s.step.unique()) == [0, 10, 20]
    # step 0: LoRA and MPS start from Delta W = 0; FFT's checkpoint 0 equals its base
    assert (s[s.step == 0].status == "zero update").all()
    trained = s[(s.step > 0)]
    assert (trained.status == "ok").all()
    for label in ("lora", "mps"):
        g = trained[trained.label == label]
        assert (g.center_entropy <= log(4) + 1e-9).all(), g.center_entropy.max()
        assert g.within_bound.all()
    lora, fft = (trained[(trained.label == k) & (trained.step == 20)] for k in ("lora", "fft"))
    assert fft.valley_depth.mean() < lora.valley_depth.mean()
    assert fft.center_entropy.mean() > log(4)  # FFT is not pinned by a rank
    p = pd.read_parquet(out / "internal.parquet")
    assert {"label", "step", "layer", "module", "bond", "entropy", "rmt"} <= set(p.columns)
    # The spectral companions: every run's checkpoints come with their base.
    assert (s[s.step == 0].relative_norm == 0).all() and (s[s.step == 0].intruders == 0).all()
    assert trained.relative_norm.gt(0).all() and trained.intruders.notna().all()
    assert (trained[trained.label != "fft"].stable_rank <= 4 + 1e-9).all()  # rank 4 at most
    assert (trained.effective_rank >= 1).all()
    assert (trained.effective_rank <= trained.roy_vetterli_rank + 1e-9).all()
    assert set(s.what) == {"update"}
