"""artent internal: adapters, (base, tuned) pairs and training runs, end to end through the CLI."""

from __future__ import annotations

import json
from math import log

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from artent import LowRank, entanglement_profile
from artent.cli import main as cli_main


def write_lora_adapter(folder, *, layers, shapes, r, alpha, seed=0, zero_b=False):
    """A peft-format LoRA adapter written by hand (the keys and config peft 0.21 writes)."""
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for i in range(layers):
        for mod, (m, n) in shapes.items():
            key = f"base_model.model.model.layers.{i}.self_attn.{mod}"
            tensors[f"{key}.lora_A.weight"] = torch.randn(r, n, generator=g) / n**0.5
            b = torch.zeros(m, r) if zero_b else torch.randn(m, r, generator=g) / r**0.5
            tensors[f"{key}.lora_B.weight"] = b
    folder.mkdir(parents=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(
        json.dumps(
            {
                "peft_type": "LORA",
                "r": r,
                "lora_alpha": alpha,
                "target_modules": list(shapes),
                "task_type": "CAUSAL_LM",
                "use_rslora": False,
                "use_dora": False,
                "base_model_name_or_path": None,
                "rank_pattern": {},
                "alpha_pattern": {},
                "lora_dropout": 0.0,
                "fan_in_fan_out": False,
                "bias": "none",
            }
        )
    )
    return tensors


def test_llama_8b_shaped_lora_adapter_end_to_end(tmp_path, capsys):
    # Its speed (under 30 s on 2 cores) is measured by benchmarks/internal_speed.py, not here.
    shapes = {"q_proj": (4096, 4096), "v_proj": (1024, 4096)}
    tensors = write_lora_adapter(tmp_path / "adapter", layers=32, shapes=shapes, r=16, alpha=32)
    code = cli_main(
        ["internal", "--adapter", str(tmp_path / "adapter"), "--out", str(tmp_path / "out")]
    )
    assert code == 0, capsys.readouterr().err
    summary = pd.read_parquet(tmp_path / "out" / "internal_summary.parquet")
    profiles = pd.read_parquet(tmp_path / "out" / "internal.parquet")
    assert len(summary) == 64 and set(summary.module) == {"q_proj", "v_proj"}
    assert (summary.within_bound).all() and (summary.center_entropy <= log(16) + 1e-9).all()
    assert set(summary[summary.module == "q_proj"].cut) == {12}
    assert set(summary[summary.module == "v_proj"].cut) == {10}
    assert len(profiles) == 32 * (23 + 21)
    # one module against an independent dense computation
    key = "base_model.model.model.layers.7.self_attn.v_proj"
    B, A = tensors[f"{key}.lora_B.weight"].double(), tensors[f"{key}.lora_A.weight"].double()
    dense = (B @ A).numpy()
    want = entanglement_profile(dense, method="svd")
    got = profiles[(profiles.layer == 7) & (profiles.module == "v_proj")].sort_values("bond")
    np.testing.assert_allclose(got.entropy.values, want, atol=1e-8)
    assert (tmp_path / "out" / "internal.png").stat().st_size > 1000
    assert json.loads((tmp_path / "out" / "run.json").read_text())["command"] == "internal"


def test_zero_update_is_reported_not_crashed(tmp_path, capsys):
    write_lora_adapter(
        tmp_path / "a", layers=2, shapes={"q_proj": (64, 64)}, r=4, alpha=8, zero_b=True
    )
    code = cli_main(
        [
            "internal",
            "--adapter",
            str(tmp_path / "a"),
            "--modules",
            "q_proj",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    summary = pd.read_parquet(tmp_path / "out" / "internal_summary.parquet")
    assert list(summary.status) == ["zero update", "zero update"]
    assert summary.center_entropy.isna().all()


def test_layers_and_modules_selection(tmp_path):
    write_lora_adapter(
        tmp_path / "a", layers=4, shapes={"q_proj": (32, 32), "v_proj": (16, 32)}, r=2, alpha=4
    )
    assert (
        cli_main(
            [
                "internal",
                "--adapter",
                str(tmp_path / "a"),
                "--modules",
                "v_proj",
                "--layers",
                "1-2",
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    summary = pd.read_parquet(tmp_path / "out" / "internal_summary.parquet")
    assert sorted(summary.layer) == [1, 2] and set(summary.module) == {"v_proj"}


@pytest.mark.parametrize(
    "case,match",
    [
        ("no config", "adapter_config.json"),
        ("no such module", "wq"),
        ("corrupt", "safetensors"),
        ("nan", "NaN"),
        ("pickle", "--allow-pickle"),
        ("merged without base", "--what merged needs the base weights"),
        ("what", "--what must be one of update, merged, base"),
    ],
)
def test_bad_input_exit_2_and_no_output(tmp_path, capsys, case, match):
    a = tmp_path / "a"
    tensors = write_lora_adapter(a, layers=1, shapes={"q_proj": (16, 16)}, r=2, alpha=4)
    args = ["internal", "--adapter", str(a), "--out", str(tmp_path / "out"), "--modules", "q_proj"]
    if case == "no config":
        (a / "adapter_config.json").unlink()
    elif case == "no such module":
        args[-1] = "wq"
    elif case == "corrupt":
        data = (a / "adapter_model.safetensors").read_bytes()
        (a / "adapter_model.safetensors").write_bytes(data[: len(data) // 2])
    elif case == "nan":
        key = next(k for k in tensors if k.endswith("lora_A.weight"))
        tensors[key][0, 0] = float("nan")
        save_file(tensors, str(a / "adapter_model.safetensors"))
    elif case == "pickle":
        (a / "adapter_model.safetensors").unlink()
        torch.save(tensors, a / "adapter_model.bin")
    elif case == "merged without base":
        args += ["--what", "merged"]
    elif case == "what":
        args += ["--what", "delta"]
    code = cli_main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert match in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_pair_of_different_architectures_names_the_tensor(tmp_path, capsys):
    for name, shape in (("base", (8, 8)), ("tuned", (8, 4))):
        (tmp_path / name).mkdir()
        save_file(
            {
                "model.layers.0.self_attn.q_proj.weight": torch.randn(8, 8),
                "model.layers.0.self_attn.v_proj.weight": torch.randn(*shape),
            },
            str(tmp_path / name / "model.safetensors"),
        )
    code = cli_main(
        [
            "internal",
            "--base",
            str(tmp_path / "base"),
            "--tuned",
            str(tmp_path / "tuned"),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "model.layers.0.self_attn.v_proj.weight" in err, err


def test_lowrank_profile_matches_dense_for_a_saved_adapter(tmp_path):
    tensors = write_lora_adapter(
        tmp_path / "a", layers=1, shapes={"q_proj": (64, 32)}, r=3, alpha=6
    )
    from artent.models.deltas import deltas_from_adapter

    (d,) = list(deltas_from_adapter(tmp_path / "a", modules=["q_proj"]))
    assert isinstance(d.update, LowRank) and d.rank == 3 and d.kind == "lora"
    B = tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"].double()
    A = tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"].double()
    np.testing.assert_allclose(d.update.to_dense(), 2.0 * (B @ A).numpy(), rtol=1e-6)


def test_adapter_that_does_not_fit_its_base_exit_2(tmp_path, capsys):
    write_lora_adapter(tmp_path / "a", layers=1, shapes={"q_proj": (16, 16)}, r=2, alpha=4)
    (tmp_path / "base").mkdir()
    save_file(
        {"model.layers.0.self_attn.q_proj.weight": torch.randn(16, 32)},
        str(tmp_path / "base" / "model.safetensors"),
    )
    code = cli_main(
        [
            "internal",
            "--adapter",
            str(tmp_path / "a"),
            "--base",
            str(tmp_path / "base"),
            "--modules",
            "q_proj",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "q_proj" in err and "(16, 32)" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
