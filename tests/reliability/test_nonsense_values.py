"""Class 4: nonsense is refused, not trained or analysed: non-finite options, NaN weights, a loss
that becomes NaN, an adapter that does not fit the model; and profiles stay exact at 1e300."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from reliability_helpers import one_line_error, snapshot, train_args
from safetensors.torch import load_file, save_file

from artent import entanglement_profile


@pytest.mark.parametrize(
    "flag, value",
    [("--lr", "inf"), ("--lr", "nan"), ("--alpha", "nan"), ("--dropout", "nan"), ("--lr", "-1")],
)
def test_non_finite_or_negative_options_are_refused(
    artent, small_tiny, small_chats, tmp_path, flag, value
):
    out = tmp_path / "run"
    one_line_error(artent(*train_args(small_tiny, small_chats, out, flag, value)), flag[2:])
    assert not out.exists()


def test_a_model_with_nan_weights_is_refused_naming_the_weight(
    artent, small_tiny, small_chats, tmp_path
):
    model = tmp_path / "nan-model"
    shutil.copytree(small_tiny, model)
    weights = load_file(model / "model.safetensors")
    name = sorted(k for k in weights if k.endswith("q_proj.weight"))[0]
    weights[name][0, 0] = float("nan")
    save_file(weights, str(model / "model.safetensors"), metadata={"format": "pt"})
    before = snapshot(model)
    out = tmp_path / "run"
    one_line_error(artent(*train_args(model, small_chats, out)), name, "NaN")
    assert not out.exists() and snapshot(model) == before


def test_a_loss_that_becomes_nan_stops_the_run_naming_the_step(
    artent, small_tiny, small_chats, tmp_path
):
    out = tmp_path / "run"
    args = train_args(
        small_tiny, small_chats, out, "--method", "fft", "--lr", "1e30", quiet=tmp_path
    )
    args += ["--steps", "4", "--save-steps", "0,4"]  # every weight moves by ~1e30: NaN
    line = one_line_error(artent(*args), "training stopped", "at step")
    step = int(line.split("at step ")[1].split()[0])
    losses = pd.read_parquet(out / "losses.parquet")  # kept, up to the step that failed
    assert losses.step.max() == step and not np.isfinite(losses.loss.iloc[-1])
    assert np.isfinite(losses.loss.iloc[:-1]).all()
    assert not (out / "DONE").exists()
    assert not (out / "checkpoints" / "step-000004").exists()  # no NaN checkpoint


def test_one_fit_check_for_internal_external_and_nohair(
    artent, lora_adapter, other_base, texts_file, tmp_path
):
    before = snapshot(lora_adapter, other_base)
    lines = []
    for args in (
        ["internal", "--adapter", lora_adapter, "--base", other_base, "--out", tmp_path / "i"],
        ["external", "--model", other_base, "--adapter", lora_adapter, "--texts", texts_file]
        + ["--out", tmp_path / "e"],
        ["nohair", lora_adapter, "--base", other_base, "--texts", texts_file]
        + ["--out", tmp_path / "n"],
    ):
        lines.append(one_line_error(artent(*args), str(lora_adapter), "q_proj", str(other_base)))
    assert len(set(lines)) == 1, lines  # the same check, the same message
    assert snapshot(lora_adapter, other_base) == before
    assert not any((tmp_path / d).exists() for d in "ien")


@pytest.mark.parametrize("scale", [1e300, 1e-300])
def test_profile_is_exact_for_any_finite_scale(artent, tmp_path, scale):
    matrix = torch.randn(16, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    path = tmp_path / "w.safetensors"
    save_file({"w": matrix * scale}, str(path))
    out = tmp_path / "p.parquet"
    assert artent("profile", path, "--out", out).code == 0
    got = pd.read_parquet(out).sort_values("bond").entropy.to_numpy()
    want = entanglement_profile(matrix.numpy(), method="svd")
    assert want.max() > 0.5  # a profile with something in it, unlike the -0.00 of an overflow
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_adapter_weights_of_the_wrong_shape_are_refused(artent, small_tiny, lora_adapter, tmp_path):
    bad = Path(tmp_path / "bad")
    shutil.copytree(lora_adapter, bad)
    weights = load_file(bad / "adapter_model.safetensors")
    key = sorted(k for k in weights if "lora_A" in k)[0]
    weights[key] = torch.zeros(weights[key].shape[0], 3)
    save_file(weights, str(bad / "adapter_model.safetensors"))
    one_line_error(
        artent("internal", "--adapter", bad, "--base", small_tiny, "--out", tmp_path / "o"),
        str(bad),
        "shape",
    )


@pytest.mark.parametrize("scale", [1e300, 1e-300])
def test_factored_profile_is_exact_for_any_finite_scale(scale):
    from artent.entanglement.profile import LowRank

    g = torch.Generator().manual_seed(4)
    B = torch.randn(16, 3, generator=g, dtype=torch.float64)
    A = torch.randn(3, 8, generator=g, dtype=torch.float64)
    want = entanglement_profile((B @ A).numpy(), method="svd")
    got = entanglement_profile(LowRank(B * scale, A * scale))
    np.testing.assert_allclose(got, want, atol=1e-12)
