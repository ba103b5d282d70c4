"""Adapter kinds read through peft's own merge (IA3, OFT, BOFT, HRA, FourierFT, LoRA on MoE
experts), each against peft's ``merge_and_unload`` on a tiny random model."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from test_deltas import dense
from test_spectral_kinds import _check

from artent.analysis.internal import InternalConfig, profile_deltas
from artent.cli import main as cli_main
from artent.models.deltas import count_deltas, deltas_from_adapter

QV = ["q_proj", "v_proj"]


def _config(kind: str):
    import peft

    return {
        "ia3": lambda: peft.IA3Config(
            target_modules=[*QV, "down_proj"], feedforward_modules=["down_proj"]
        ),
        "oft": lambda: peft.OFTConfig(r=0, oft_block_size=8, target_modules=QV),
        "boft": lambda: peft.BOFTConfig(
            boft_block_size=8, boft_n_butterfly_factor=2, target_modules=QV
        ),
        "hra": lambda: peft.HRAConfig(r=4, target_modules=QV),
        "fourierft": lambda: peft.FourierFTConfig(n_frequency=40, scaling=10.0, target_modules=QV),
        "lora_experts": lambda: peft.LoraConfig(
            r=4,
            lora_alpha=8,
            target_modules=[],
            target_parameters=["mlp.experts.gate_up_proj", "mlp.experts.down_proj"],
        ),
    }[kind]()


def _moe_model():
    from transformers import MixtralConfig, MixtralForCausalLM

    torch.manual_seed(0)
    config = MixtralConfig(
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=3,
        num_experts_per_tok=2,
        vocab_size=128,
        max_position_embeddings=64,
    )
    return MixtralForCausalLM(config).eval()


@pytest.fixture(scope="module")
def moe(tmp_path_factory):
    model = _moe_model()
    folder = tmp_path_factory.mktemp("moe")
    model.save_pretrained(folder)
    return model, folder


def _build(model, kind, folder):
    import peft

    wrapped = peft.get_peft_model(copy.deepcopy(model), _config(kind))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in wrapped.parameters():
            if param.requires_grad:
                param.add_(0.1 * torch.randn(param.shape, generator=generator))
    wrapped.save_pretrained(folder)
    return wrapped.merge_and_unload().state_dict()


EXPECTED = {  # kind -> (Delta.kind, modules asked for, updates per layer)
    "ia3": ("ia3", [*QV, "down_proj"], 3),
    "oft": ("oft", QV, 2),
    "boft": ("boft", QV, 2),
    "hra": ("hra", QV, 2),
    "fourierft": ("fourierft", QV, 2),
    "lora_experts": ("lora", ["gate_up_proj", "down_proj"], 2 * 3),
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_merged_kind_equals_peft_merge(tmp_path, base_model, base_dir, moe, kind):
    model, folder = moe if kind == "lora_experts" else (base_model, base_dir)
    merged = _build(model, kind, tmp_path)
    delta_kind, modules, per_layer = EXPECTED[kind]
    deltas = list(deltas_from_adapter(tmp_path, base=folder, modules=modules))
    assert len(deltas) == 2 * per_layer
    assert count_deltas(adapter=tmp_path, base=folder, modules=modules) == len(deltas)
    state = model.state_dict()
    for d in deltas:
        assert d.kind == delta_kind and not d.is_zero
        name, _, expert = d.name.partition("[e")
        key = name if name in state else name + ".weight"
        want_base = state[key].double().numpy()
        want = merged[key].double().numpy()
        if expert:  # one (out, in) update per expert of the 3-D parameter
            e = int(expert.rstrip("]"))
            want_base, want = want_base[e], want[e]
        np.testing.assert_array_equal(d.base.numpy(), want_base)
        np.testing.assert_allclose(want_base + dense(d), want, rtol=0, atol=1e-5)
        assert np.abs(dense(d)).max() > 1e-3  # a real change, far above the tolerance
    if kind == "lora_experts":
        assert all(d.rank == 4 for d in deltas)
        assert {d.module for d in deltas} == {"gate_up_proj", "down_proj"}
    _, summary = profile_deltas(deltas, InternalConfig(), label=kind, step=None)
    _check(summary, deltas, "update")


def test_merged_kind_needs_a_base_model_folder(tmp_path, base_model, capsys):
    _build(base_model, "ia3", tmp_path / "a")
    capsys.readouterr()
    code = cli_main(["internal", "--adapter", str(tmp_path / "a"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "needs the base model (--base" in err and "Traceback" not in err


def test_a_kind_peft_cannot_merge_is_one_line(tmp_path, base_model, base_dir, capsys):
    import peft

    config = peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4)
    peft.get_peft_model(copy.deepcopy(base_model), config).save_pretrained(tmp_path / "a")
    assert json.loads((tmp_path / "a" / "adapter_config.json").read_text())["peft_type"] == (
        "PROMPT_TUNING"
    )
    args = ["internal", "--adapter", str(tmp_path / "a"), "--base", str(base_dir)]
    capsys.readouterr()
    code = cli_main([*args, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "'PROMPT_TUNING' is not supported" in err and "peft merges" in err
    assert not (tmp_path / "o").exists()
