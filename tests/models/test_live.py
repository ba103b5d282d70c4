"""Updates of a model in memory (artent.models.deltas.live), checked against peft's own merge."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from artent.entanglement.profile import LowRank
from artent.models.deltas.live import describe, find_targets, live_deltas, snapshot_weights
from peft_kinds import QV, adapter_config, dense

N_LAYERS = 2


KINDS = {  # test name -> (Delta.kind, factored?, rank of q_proj in layer 0, of v_proj in layer 0)
    "lora": ("lora", True, 4, 4),
    "lora_patterns": ("lora", True, 4, 2),
    "rslora": ("rslora", True, 4, 4),
    "dora": ("dora", False, 4, 4),
    "loha": ("loha", False, 4, 4),
    "lokr": ("lokr", False, 4, 4),
    "vera": ("vera", True, 4, 4),
    "adalora": ("adalora", True, 6, 6),
    "mps": ("mps", True, 4, 4),
}


def peft_model(base_model, kind: str, *, randomise: bool = True):
    import peft

    model = peft.get_peft_model(copy.deepcopy(base_model), adapter_config(kind))
    if randomise:
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for param in model.parameters():
                if param.requires_grad:
                    param.add_(0.1 * torch.randn(param.shape, generator=generator))
    return model


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_live_delta_is_what_peft_merges(base_model, kind):
    model = peft_model(base_model, kind)
    targets = find_targets(model, QV)
    assert [t.name for t in targets] == [
        f"model.layers.{i}.self_attn.{m}" for i in range(N_LAYERS) for m in QV
    ]
    deltas = list(live_deltas(targets))
    merged = copy.deepcopy(model).merge_and_unload().state_dict()
    base_sd = base_model.state_dict()
    delta_kind, factored, q_rank, v_rank = KINDS[kind]
    assert describe(targets) == delta_kind
    for d in deltas:
        assert d.kind == delta_kind and not d.is_zero
        assert isinstance(d.update, LowRank) == factored
        W = base_sd[d.name + ".weight"].double().numpy()
        assert (d.rows, d.cols) == W.shape == dense(d).shape
        np.testing.assert_allclose(
            W + dense(d), merged[d.name + ".weight"].double().numpy(), rtol=0, atol=1e-5
        )
        assert np.abs(dense(d)).max() > 1e-2
    assert (deltas[0].rank, deltas[1].rank) == (q_rank, v_rank)
    if factored:  # the factors are the live parameters, not copies of a dense product
        assert deltas[0].update.B.shape[1] == deltas[0].update.A.shape[0] < deltas[0].cols


@pytest.mark.parametrize("kind", ["lora", "dora", "mps", "adalora", "vera", "lokr"])
def test_live_delta_at_init_is_zero(base_model, kind):
    deltas = list(live_deltas(find_targets(peft_model(base_model, kind, randomise=False), QV)))
    assert len(deltas) == 2 * N_LAYERS
    assert all(d.is_zero and not np.any(dense(d)) for d in deltas)


def test_full_fine_tuning_against_the_snapshot(base_model):
    model = copy.deepcopy(base_model)
    targets = find_targets(model, ["v_proj"], layers=[1]) + find_targets(model, ["lm_head"])
    assert [(t.name, t.kind) for t in targets] == [
        ("model.layers.1.self_attn.v_proj", "dense"),
        ("lm_head", "dense"),
    ]
    snap = snapshot_weights(targets)
    assert all(v.device.type == "cpu" for v in snap.values())
    (zero, zero_head) = live_deltas(targets, snap)
    assert zero.is_zero and zero_head.is_zero
    before = {t.name: t.weight.detach().clone() for t in targets}
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for t in targets:
            t.weight.add_(1e-3 * torch.randn(t.weight.shape, generator=generator))
    for d in live_deltas(targets, snap):
        assert (d.kind, d.rank, d.is_zero) == ("dense", None, False)
        after = dict(model.named_parameters())[d.name + ".weight"].detach()
        expected = (after.double() - before[d.name].double()).numpy()
        # the update is float32: one rounding of the difference (half an ulp) apart at most
        np.testing.assert_allclose(dense(d), expected, rtol=2**-24, atol=0)
        assert np.abs(expected).max() > 1e-3
    assert describe(targets) == "fft"


def test_conv1d_updates_come_out_by_in():
    """GPT-2 stores W as (in, out): the update comes back as (out, in), for FFT and for LoRA."""
    import peft
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        n_embd=64, n_layer=1, n_head=4, vocab_size=128, n_positions=32, bos_token_id=0,
        eos_token_id=0,
    )  # fmt: skip
    base = GPT2LMHeadModel(config)
    model = copy.deepcopy(base)
    targets = find_targets(model, ["c_attn"])
    snap = snapshot_weights(targets)
    with torch.no_grad():
        model.transformer.h[0].attn.c_attn.weight.add_(0.01)
    (d,) = live_deltas(targets, snap)
    assert (d.name, d.rows, d.cols) == ("transformer.h.0.attn.c_attn", 192, 64)
    np.testing.assert_allclose(dense(d), np.full((192, 64), 0.01), atol=1e-6)

    lora = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True)
    model = peft.get_peft_model(copy.deepcopy(base), lora)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(0.1 * torch.randn_like(param))
    (d,) = live_deltas(find_targets(model, ["c_attn"]))
    merged = copy.deepcopy(model).merge_and_unload().state_dict()
    W = base.state_dict()[d.name + ".weight"].double().numpy()
    assert (d.rows, d.cols) == (192, 64)
    np.testing.assert_allclose(
        W + dense(d).T, merged[d.name + ".weight"].double().numpy(), rtol=0, atol=1e-5
    )


def test_targets_that_cannot_be_read_are_named(base_model):
    import peft

    lora = peft_model(base_model, "lora")
    with pytest.raises(ValueError, match="no module named 'qkv_proj' in the model"):
        find_targets(lora, ["q_proj", "qkv_proj"])
    with pytest.raises(ValueError, match=r"no layer 2 in the model \(layers: \[0, 1\]\)"):
        find_targets(lora, QV, layers=[2])
    with pytest.raises(ValueError, match="'o_proj' is frozen and carries no adapter"):
        find_targets(lora, ["o_proj"])
    with pytest.raises(ValueError, match=r"module 'lm_head' is in none of layers \[0\]"):
        find_targets(lora, ["q_proj", "lm_head"], layers=[0])
    ia3 = peft.get_peft_model(
        copy.deepcopy(base_model), peft.IA3Config(target_modules=list(QV), feedforward_modules=[])
    )
    with pytest.raises(ValueError, match="peft layer Linear is not supported|IA3"):
        find_targets(ia3, QV)
    lora.add_adapter("other", peft.LoraConfig(r=2, target_modules=list(QV)))
    lora.base_model.set_adapter(["default", "other"])
    with pytest.raises(ValueError, match="active adapters \\['default', 'other'\\]"):
        find_targets(lora, QV)
    sharded = copy.deepcopy(base_model)
    sharded.model.layers[0].self_attn.q_proj.weight.ds_id = 7  # what DeepSpeed ZeRO-3 marks
    with pytest.raises(ValueError, match="sharded"):
        find_targets(sharded, QV)
