"""Internal analysis along training: real LoRA, MPS and FFT runs of the small tiny model."""

from __future__ import annotations

from math import log

import pandas as pd
import pytest

from artent.cli import main as cli_main
from artent.training.config import TrainConfig
from artent.training.loop import train


@pytest.fixture(scope="module")
def runs(small_tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    common = dict(
        model=str(small_tiny),
        data="synthetic-tulu",
        steps=20,
        batch_size=8,
        seq_len=256,
        save_steps=[0, 10, 20],
        eval_every=0,
        n_synthetic=300,
        progress=False,
    )
    return {
        "lora": train(
            TrainConfig(method="lora", rank=4, lr=5e-3, out=str(root / "lora"), **common)
        ),
        "mps": train(
            TrainConfig(method="mps", rank=4, chi=2, lr=5e-3, out=str(root / "mps"), **common)
        ),
        "fft": train(TrainConfig(method="fft", lr=1e-3, out=str(root / "fft"), **common)),
    }


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
