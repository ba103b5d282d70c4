"""Delta W from (base, tuned) pairs and from every adapter kind, checked against peft's merge."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import safetensors.torch
import torch
from safetensors.torch import load_file, save_file

from artent.entanglement.profile import LowRank
from artent.models.checkpoints import CheckpointError
from artent.models.deltas import count_deltas, deltas_from_adapter, deltas_from_pair
from peft_kinds import QV, adapter_config, dense

N_LAYERS = 2


def weight(state_dict, name: str) -> np.ndarray:
    return state_dict[name + ".weight"].double().numpy()


# ----- pairs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("sharded", [False, True])
def test_pair_deltas_are_the_weight_differences(
    base_model, base_dir, tuned_model, tuned_dir, tuned_sharded_dir, sharded
):
    tuned = tuned_sharded_dir if sharded else tuned_dir
    deltas = list(deltas_from_pair(base_dir, tuned))
    names = [f"model.layers.{i}.self_attn.{m}" for i in range(N_LAYERS) for m in QV]
    assert [d.name for d in deltas] == names
    base_sd, tuned_sd = base_model.state_dict(), tuned_model.state_dict()
    for d in deltas:
        assert (d.kind, d.rank, d.is_zero) == ("dense", None, False)
        assert d.module == d.name.rsplit(".", 1)[1] and d.layer == int(d.name.split(".")[2])
        assert isinstance(d.update, torch.Tensor) and d.update.dtype == torch.float32
        assert (d.rows, d.cols) == tuple(base_sd[d.name + ".weight"].shape)
        expected = (tuned_sd[d.name + ".weight"] - base_sd[d.name + ".weight"]).numpy()
        np.testing.assert_allclose(dense(d), expected, rtol=0, atol=1e-7)
    assert count_deltas(base=base_dir, tuned=tuned) == len(deltas)


def test_pair_never_loads_a_whole_file(monkeypatch, base_dir, tuned_sharded_dir):
    def refuse(*args, **kwargs):
        raise AssertionError("a whole state dict was loaded")

    monkeypatch.setattr(safetensors.torch, "load_file", refuse)
    monkeypatch.setattr(safetensors.torch, "load", refuse)
    all_linear = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    assert len(list(deltas_from_pair(base_dir, tuned_sharded_dir, modules=all_linear))) == 14


def test_pair_same_checkpoint_is_zero(base_dir):
    deltas = list(deltas_from_pair(base_dir, base_dir))
    assert deltas and all(d.is_zero and not d.update.any() for d in deltas)


def test_pair_precision(tmp_path, base_model):
    base_sd = {k: v.clone() for k, v in base_model.state_dict().items()}
    key = "model.layers.0.self_attn.q_proj.weight"
    tuned_sd = {k: v.clone() for k, v in base_sd.items()}
    tuned_sd[key] = tuned_sd[key] + 1e-3
    for dtype in (torch.float64, torch.bfloat16):
        (tmp_path / str(dtype)).mkdir()
        save_file(
            {k: v.to(dtype) for k, v in base_sd.items()}, tmp_path / str(dtype) / "b.safetensors"
        )
        save_file(
            {k: v.to(dtype) for k, v in tuned_sd.items()}, tmp_path / str(dtype) / "t.safetensors"
        )
        (d,) = deltas_from_pair(
            tmp_path / str(dtype) / "b.safetensors",
            tmp_path / str(dtype) / "t.safetensors",
            modules=["q_proj"],
            layers=[0],
        )
        expected = tuned_sd[key].to(dtype).double() - base_sd[key].to(dtype).double()
        assert d.update.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
        np.testing.assert_allclose(d.update.double().numpy(), expected.numpy(), rtol=0, atol=0)


def test_pair_selection(base_dir, tuned_dir):
    deltas = list(deltas_from_pair(base_dir, tuned_dir, modules=["v_proj", "k_proj"], layers={1}))
    assert [d.name for d in deltas] == [
        "model.layers.1.self_attn.v_proj",
        "model.layers.1.self_attn.k_proj",
    ]
    (head,) = deltas_from_pair(base_dir, tuned_dir, modules=["lm_head"])
    assert (head.layer, head.module, head.rows, head.cols) == (None, "lm_head", 128, 64)
    with pytest.raises(ValueError, match=r"modules=: no module named 'xyz' in .*base"):
        deltas_from_pair(base_dir, tuned_dir, modules=["q_proj", "xyz"])
    with pytest.raises(ValueError, match="layers=: no layer 5"):
        deltas_from_pair(base_dir, tuned_dir, layers=[0, 5])
    with pytest.raises(ValueError, match="not a matrix"):
        deltas_from_pair(base_dir, tuned_dir, modules=["input_layernorm"])


def test_pair_architecture_mismatch_names_first_tensor(tmp_path, base_dir, base_model, make_tiny):
    # Different MLP width: the first differing tensor in sorted key order is layer 0's down_proj.
    make_tiny(0, intermediate_size=96).save_pretrained(tmp_path / "wide")
    with pytest.raises(
        CheckpointError, match=r"'model\.layers\.0\.mlp\.down_proj\.weight' has shape"
    ):
        deltas_from_pair(base_dir, tmp_path / "wide")
    # A missing tensor, the earlier of two differences in sorted order.
    state_dict = {k: v.clone() for k, v in base_model.state_dict().items()}
    del state_dict["model.layers.1.self_attn.k_proj.weight"]
    state_dict["model.layers.1.self_attn.v_proj.weight"] = torch.zeros(3, 3)
    save_file(state_dict, tmp_path / "broken.safetensors")
    with pytest.raises(
        CheckpointError,
        match=r"'model\.layers\.1\.self_attn\.k_proj\.weight' is missing from the tuned",
    ):
        deltas_from_pair(base_dir, tmp_path / "broken.safetensors")
    with pytest.raises(CheckpointError, match=r"k_proj\.weight' is missing from the base"):
        deltas_from_pair(tmp_path / "broken.safetensors", base_dir)


def test_pair_nan_names_the_tensor(tmp_path, base_dir, base_model):
    state_dict = {k: v.clone() for k, v in base_model.state_dict().items()}
    state_dict["model.layers.1.self_attn.v_proj.weight"][3, 2] = float("nan")
    save_file(state_dict, tmp_path / "nan.safetensors")
    with pytest.raises(
        CheckpointError, match=r"'model\.layers\.1\.self_attn\.v_proj\.weight'.*NaN"
    ):
        list(deltas_from_pair(base_dir, tmp_path / "nan.safetensors"))


# ----- adapters --------------------------------------------------------------------------------


def _build_adapter(base_model, kind, folder, *, randomise=True, seed=0, **save_kwargs):
    """Save a peft adapter of ``kind`` (all adapter weights perturbed) and return peft's merge."""
    import peft

    model = peft.get_peft_model(copy.deepcopy(base_model), adapter_config(kind))
    if randomise:
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for param in model.parameters():
                if param.requires_grad:
                    param.add_(0.1 * torch.randn(param.shape, generator=generator))
    model.save_pretrained(folder, **save_kwargs)
    return model.merge_and_unload().state_dict()


KINDS = {  # test name -> (Delta.kind, factored?, rank of q_proj in layer 0)
    "lora": ("lora", True, 4),
    "lora_patterns": ("lora", True, 4),
    "rslora": ("rslora", True, 4),
    "dora": ("dora", False, 4),
    "loha": ("loha", False, 4),
    "lokr": ("lokr", False, 4),
    "lokr_decomposed": ("lokr", False, 2),
    "vera": ("vera", True, 4),
    "adalora": ("adalora", True, 6),
    "mps": ("mps", True, 4),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_adapter_delta_is_what_peft_merges(tmp_path, base_model, base_dir, kind):
    merged = _build_adapter(base_model, kind, tmp_path)
    base_sd = base_model.state_dict()
    deltas = list(deltas_from_adapter(tmp_path, base=base_dir))
    assert [d.name for d in deltas] == [
        f"model.layers.{i}.self_attn.{m}" for i in range(N_LAYERS) for m in QV
    ]
    delta_kind, factored, rank = KINDS[kind]
    for d in deltas:
        assert d.kind == delta_kind and not d.is_zero
        assert isinstance(d.update, LowRank) == factored
        assert (d.rows, d.cols) == tuple(base_sd[d.name + ".weight"].shape) == dense(d).shape
        np.testing.assert_allclose(
            weight(base_sd, d.name) + dense(d), weight(merged, d.name), rtol=0, atol=1e-5
        )
        # The update is a real change, far above the tolerance.
        assert np.abs(dense(d)).max() > 1e-2
    assert deltas[0].rank == rank
    if kind not in ("dora", "vera"):  # the others need no base
        without_base = list(deltas_from_adapter(tmp_path))
        for d, e in zip(deltas, without_base, strict=True):
            np.testing.assert_array_equal(dense(d), dense(e))
    assert count_deltas(adapter=tmp_path, base=base_dir) == len(deltas)


def test_lora_patterns_give_rank_and_scale_per_module(tmp_path, base_model):
    _build_adapter(base_model, "lora_patterns", tmp_path)
    by_name = {d.name: d for d in deltas_from_adapter(tmp_path)}
    assert by_name["model.layers.0.self_attn.v_proj"].rank == 2
    assert by_name["model.layers.1.self_attn.q_proj"].update.scale == pytest.approx(3 / 4)
    assert by_name["model.layers.0.self_attn.q_proj"].update.scale == pytest.approx(8 / 4)


def test_adalora_pruned_by_rank_pattern(tmp_path, base_model, base_dir):
    """AdaLoRA saves only the kept triplets; peft still divides by init_r (ranknum)."""
    import peft

    model = peft.get_peft_model(copy.deepcopy(base_model), adapter_config("adalora"))
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(0.1 * torch.randn_like(param))
    keep = {"model.layers.0.self_attn.q_proj": [True, False, True, False, False, True]}
    model.peft_config["default"].rank_pattern = {
        f"{name}.lora_E.default": mask for name, mask in keep.items()
    }
    model.save_pretrained(tmp_path)
    reloaded = peft.PeftModel.from_pretrained(copy.deepcopy(base_model), tmp_path)
    merged = reloaded.merge_and_unload().state_dict()
    base_sd = base_model.state_dict()
    deltas = {d.name: d for d in deltas_from_adapter(tmp_path, base=base_dir)}
    assert deltas["model.layers.0.self_attn.q_proj"].rank == 3
    for name, d in deltas.items():
        np.testing.assert_allclose(
            weight(base_sd, name) + dense(d), weight(merged, name), rtol=0, atol=1e-5
        )


@pytest.mark.parametrize("kind", ["lora", "dora", "mps", "adalora", "vera", "lokr"])
def test_step_zero_adapter_is_zero(tmp_path, base_model, base_dir, kind):
    merged = _build_adapter(base_model, kind, tmp_path, randomise=False)
    base_sd = base_model.state_dict()
    deltas = list(deltas_from_adapter(tmp_path, base=base_dir))
    assert len(deltas) == 2 * N_LAYERS
    for d in deltas:
        assert d.is_zero, d.name
        assert not np.any(dense(d))
        np.testing.assert_array_equal(weight(merged, d.name), weight(base_sd, d.name))


def test_adapter_selection_and_errors(tmp_path, base_model, base_dir):
    _build_adapter(base_model, "lora", tmp_path / "lora")
    (d,) = deltas_from_adapter(tmp_path / "lora", modules=["v_proj"], layers=[1])
    assert d.name == "model.layers.1.self_attn.v_proj" and (d.rows, d.cols) == (32, 64)
    # The weights file itself, with the config beside it.
    assert len(list(deltas_from_adapter(tmp_path / "lora" / "adapter_model.safetensors"))) == 4
    with pytest.raises(ValueError, match=r"modules=: no module named 'k_proj' in .*lora"):
        deltas_from_adapter(tmp_path / "lora", modules=["k_proj"])
    with pytest.raises(ValueError, match="layers=: no layer 2"):
        deltas_from_adapter(tmp_path / "lora", layers=[2])
    (tmp_path / "bare").mkdir()
    with pytest.raises(CheckpointError, match=r"adapter folder .*bare has no adapter_config\.json"):
        deltas_from_adapter(tmp_path / "bare")


def test_adapter_shape_must_fit_the_base(tmp_path, base_model, make_tiny):
    _build_adapter(base_model, "lora", tmp_path / "lora")
    other = tmp_path / "other"
    make_tiny(0, num_key_value_heads=4).save_pretrained(other)
    with pytest.raises(
        ValueError, match=r"'model\.layers\.0\.self_attn\.v_proj' has shape \(32, 64\).*\(64, 64\)"
    ):
        deltas_from_adapter(tmp_path / "lora", base=other)


def test_dora_and_vera_need_the_base(tmp_path, base_model):
    _build_adapter(base_model, "dora", tmp_path / "dora")
    with pytest.raises(ValueError, match=r"DoRA .*base="):
        deltas_from_adapter(tmp_path / "dora")
    _build_adapter(base_model, "vera", tmp_path / "vera")
    with pytest.raises(ValueError, match=r"VeRA .*base="):
        deltas_from_adapter(tmp_path / "vera")


def test_vera_without_saved_projections_is_refused(tmp_path, base_model, base_dir):
    import peft

    config = peft.VeraConfig(r=4, target_modules=list(QV), save_projection=False)
    peft.get_peft_model(copy.deepcopy(base_model), config).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="save_projection=False"):
        deltas_from_adapter(tmp_path, base=base_dir)


def test_unknown_peft_type_is_named(tmp_path, base_model):
    import peft

    # IA3 is read through peft's merge now (test_merged_kinds.py); prefix tuning has no weights
    # to merge.
    config = peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4)
    peft.get_peft_model(copy.deepcopy(base_model), config).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="peft_type 'PREFIX_TUNING' is not supported"):
        deltas_from_adapter(tmp_path)


def test_unsupported_lora_variant_is_refused(tmp_path, base_model):
    _build_adapter(base_model, "lora", tmp_path)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    config["use_bdlora"] = {"nblocks": 2}
    (tmp_path / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="'use_bdlora' is not supported"):
        deltas_from_adapter(tmp_path)


def test_adapter_nan_names_the_tensor(tmp_path, base_model):
    _build_adapter(base_model, "lora", tmp_path)
    path = tmp_path / "adapter_model.safetensors"
    state_dict = load_file(path)
    key = "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight"
    state_dict[key][0, 0] = float("inf")
    save_file(state_dict, path)
    with pytest.raises(CheckpointError, match=rf"'{key}'.*NaN or Inf"):
        list(deltas_from_adapter(tmp_path))


def test_pickled_adapter_needs_allow_pickle(tmp_path, base_model):
    merged = _build_adapter(base_model, "lora", tmp_path, safe_serialization=False)
    assert (tmp_path / "adapter_model.bin").is_file()
    with pytest.raises(CheckpointError, match="allow_pickle=True"):
        deltas_from_adapter(tmp_path)
    base_sd = base_model.state_dict()
    for d in deltas_from_adapter(tmp_path, allow_pickle=True):
        np.testing.assert_allclose(
            weight(base_sd, d.name) + dense(d), weight(merged, d.name), rtol=0, atol=1e-5
        )


@pytest.mark.parametrize("use_dora", [False, True])
def test_fan_in_fan_out_updates_are_in_out_by_in_layout(tmp_path, use_dora):
    """GPT-2's Conv1D stores W transposed; the update still comes as (out, in), like B @ A."""
    import peft
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        n_embd=64, n_layer=1, n_head=4, vocab_size=128, n_positions=32, bos_token_id=0,
        eos_token_id=0,
    )  # fmt: skip
    base = GPT2LMHeadModel(config).eval()
    base.save_pretrained(tmp_path / "base")
    lora = peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True, use_dora=use_dora
    )
    model = peft.get_peft_model(copy.deepcopy(base), lora)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(0.1 * torch.randn_like(param))
    model.save_pretrained(tmp_path / "adapter")
    merged, base_sd = model.merge_and_unload().state_dict(), base.state_dict()
    (d,) = deltas_from_adapter(tmp_path / "adapter", base=tmp_path / "base", modules=["c_attn"])
    assert (d.name, d.rows, d.cols) == ("transformer.h.0.attn.c_attn", 192, 64)
    np.testing.assert_allclose(
        weight(base_sd, d.name) + dense(d).T, weight(merged, d.name), rtol=0, atol=1e-5
    )


def test_count_deltas_needs_a_source(base_dir):
    with pytest.raises(ValueError, match="give adapter, or both base and tuned"):
        count_deltas(base=base_dir)
