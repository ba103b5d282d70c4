"""Query, key and value blocks of fused projections (GPT-2 c_attn, Phi-3 qkv_proj, NeoX
query_key_value), checked against peft's own merge and against the q, k, v the model itself
computes, and aliases of the q/k/v module names."""

from __future__ import annotations

import copy
import importlib
import json

import numpy as np
import pytest
import torch

from artent.cli import main as cli_main
from artent.entanglement.profile import LowRank
from artent.models.attention import eager_attention
from artent.models.deltas import deltas_from_adapter, deltas_from_pair
from tiny_families import make_family_model

#: family -> (fused module, config overrides, modeling module, attention path in layer 0)
FUSED = {
    "gpt2": ("c_attn", {}, "gpt2", "transformer.h.0.attn"),
    "phi3": ("qkv_proj", {"num_key_value_heads": 2}, "phi3", "model.layers.0.self_attn"),
    "gpt_neox": ("query_key_value", {}, "gpt_neox", "gpt_neox.layers.0.attention"),
}


QV = ("q_proj", "v_proj")


def _dense(delta) -> torch.Tensor:
    if isinstance(delta.update, LowRank):
        return torch.from_numpy(delta.update.to_dense())
    return delta.update.double()


def _adapter(family: str, root, *, with_base: bool = True, overrides: dict | None = None):
    """A saved base folder, a LoRA adapter with random factors on its fused projection, and the
    merged model; with_base=False builds the adapter on a model that has no folder (peft then
    records no base_model_name_or_path artent could read a config from)."""
    import peft
    from transformers import AutoModelForCausalLM

    module, default_overrides, _, _ = FUSED[family]
    base = make_family_model(family, **(default_overrides if overrides is None else overrides))
    base.save_pretrained(root / "base")
    model = (
        AutoModelForCausalLM.from_pretrained(root / "base").eval()
        if with_base
        else copy.deepcopy(base)
    )
    config = peft.LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=[module],
        fan_in_fan_out=family == "gpt2",
        init_lora_weights=False,
    )
    wrapped = peft.get_peft_model(model, config)
    wrapped.save_pretrained(root / "adapter")
    merged = copy.deepcopy(wrapped).merge_and_unload().eval()
    return base, merged, root / "adapter"


def _qkv_at_position_0(model, family: str, monkeypatch) -> tuple[torch.Tensor, ...]:
    """Layer 0's attention input x and the q, k, v the model's own code splits off (one token:
    rotary embeddings are the identity at position 0)."""
    _, _, modeling_name, path = FUSED[family]
    modeling = importlib.import_module(
        f"transformers.models.{modeling_name}.modeling_{modeling_name}"
    )
    original = modeling.eager_attention_forward
    seen: list = []

    def spy(module, query, key, value, *args, **kwargs):
        seen.append((query, key, value))
        return original(module, query, key, value, *args, **kwargs)

    monkeypatch.setattr(modeling, "eager_attention_forward", spy)
    inputs: list = []
    attention = model.get_submodule(path)
    handle = attention.register_forward_pre_hook(
        lambda _m, args, kwargs: inputs.append(args[0] if args else kwargs["hidden_states"]),
        with_kwargs=True,
    )
    try:
        with eager_attention(model), torch.no_grad():
            model(input_ids=torch.tensor([[7]]))
    finally:
        handle.remove()
        monkeypatch.setattr(modeling, "eager_attention_forward", original)
    q, k, v = (t[0, :, 0, :].reshape(-1).double() for t in seen[0])  # heads concatenated
    return inputs[0][0, 0].double(), q, k, v


@pytest.mark.parametrize("family", list(FUSED))
def test_blocks_are_what_the_model_computes_and_what_peft_merges(family, tmp_path, monkeypatch):
    module = FUSED[family][0]
    base, merged, adapter = _adapter(family, tmp_path)
    deltas = list(deltas_from_adapter(adapter, modules=["query", "k", "v_proj"]))
    assert [(d.layer, d.module) for d in deltas] == [
        (i, m) for i in range(2) for m in ("q_proj", "k_proj", "v_proj")
    ]
    assert all(d.name.endswith(f"{module}[{d.module[0]}]") for d in deltas)
    assert all(isinstance(d.update, LowRank) and d.rank == 4 for d in deltas)
    # Against peft's merge: the blocks put back where the layout says give merged - base.
    name = deltas[0].name.split("[")[0]
    full = merged.get_submodule(name).weight.double() - base.get_submodule(name).weight.double()
    full = full.T if family == "gpt2" else full  # Conv1D keeps W as in x out
    blocks = {d.module: _dense(d) for d in deltas if d.layer == 0}
    if family == "gpt_neox":  # per head: [q | k | v] rows of head_dim
        heads = base.config.num_attention_heads
        rebuilt = torch.stack([blocks[m].reshape(heads, -1, 32) for m in blocks], dim=1)
        rebuilt = rebuilt.reshape(-1, 32)
    else:
        rebuilt = torch.cat([blocks["q_proj"], blocks["k_proj"], blocks["v_proj"]])
    torch.testing.assert_close(rebuilt, full, atol=1e-5, rtol=0)
    # Against the model's own split: layer 0's q, k, v move by x @ block^T.
    x, *before = _qkv_at_position_0(base, family, monkeypatch)
    _, *after = _qkv_at_position_0(merged, family, monkeypatch)
    for block, b, a in zip(("q_proj", "k_proj", "v_proj"), before, after, strict=True):
        torch.testing.assert_close(blocks[block] @ x, a - b, atol=2e-5, rtol=0)
    # A (base, tuned) pair splits the same way.
    merged.save_pretrained(tmp_path / "merged")
    pair = list(deltas_from_pair(tmp_path / "base", tmp_path / "merged"))
    assert [(d.layer, d.module) for d in pair] == [(i, m) for i in range(2) for m in QV]
    for d in pair:
        want = next(a for a in deltas if (a.layer, a.module) == (d.layer, d.module))
        assert d.name == want.name and d.kind == "dense"
        torch.testing.assert_close(_dense(d), _dense(want), atol=1e-5, rtol=0)


def test_without_a_config_only_certain_layouts_split(tmp_path):
    # GPT-2's Conv1D c_attn and an equal-heads qkv_proj are certain from their shapes alone.
    for family, overrides in (("gpt2", {}), ("phi3", {"num_key_value_heads": 4})):
        _, _, adapter = _adapter(family, tmp_path / family, with_base=False, overrides=overrides)
        recorded = json.loads((adapter / "adapter_config.json").read_text())
        assert not recorded.get("base_model_name_or_path")
        got = list(deltas_from_adapter(adapter))
        assert [d.module for d in got] == ["q_proj", "v_proj"] * 2
    # NeoX interleaves per head: without the head count there is no split, and the message says
    # what to pass.
    _, _, adapter = _adapter("gpt_neox", tmp_path / "neox", with_base=False)
    with pytest.raises(ValueError, match=r"needs the base model's config\.json \(pass base="):
        deltas_from_adapter(adapter)
    (whole,) = deltas_from_adapter(adapter, modules=["query_key_value"], layers=[0])
    assert (whole.module, whole.rows, whole.cols) == ("query_key_value", 96, 32)
    # With --base the config is found again.
    assert len(list(deltas_from_adapter(adapter, base=tmp_path / "neox" / "base"))) == 4


def _lora_on(model, folder, targets, **options):
    import peft

    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=targets, **options)
    wrapped = peft.get_peft_model(model, config)
    with torch.no_grad():  # B = 0 at creation: give the update a body
        for name, param in wrapped.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1, generator=torch.Generator().manual_seed(len(name)))
    wrapped.save_pretrained(folder)
    return folder


def test_query_and_value_aliases_are_the_same_modules(tmp_path):
    bert = make_family_model("bert")
    adapter = _lora_on(bert, tmp_path / "bert", ["query", "value"])
    for modules in (["q_proj", "v_proj"], ["query", "value"], ["q", "v"]):
        got = list(deltas_from_adapter(adapter, modules=modules))
        assert [(d.layer, d.module) for d in got] == [(i, m) for i in range(2) for m in QV]
        assert got[0].name == "encoder.layer.0.attention.self.query"
    with pytest.raises(ValueError, match=r"no module named 'k_proj' .*\(nor key, k, nor a fused"):
        deltas_from_adapter(adapter, modules=["key"])


def test_internal_reports_query_and_value_of_fused_adapters(tmp_path, capsys):
    """Must show: LoRA on GPT-2 c_attn and on Phi-3 qkv_proj, rows for q and v apart, every
    block's cut entropy under ln r."""
    import pandas as pd

    adapters = []
    for family in ("gpt2", "phi3"):
        _, _, adapter = _adapter(family, tmp_path / family)
        adapters += ["--adapter", str(adapter)]
    out = tmp_path / "out"
    code = cli_main(["internal", *adapters, "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    summary = pd.read_parquet(out / "internal_summary.parquet")
    blocks = summary.name.str.extract(r"\.(c_attn|qkv_proj)\[([qv])\]$")
    assert sorted(map(tuple, blocks.to_numpy())) == sorted(
        (m, r) for m in ("c_attn", "qkv_proj") for r in "qv" for _ in range(2)
    )
    assert (summary.module == blocks[1].map({"q": "q_proj", "v": "v_proj"})).all()
    assert len(summary) == 8 and set(summary.status) == {"ok"}
    assert summary.within_bound.all()
    assert (summary.center_entropy <= np.log(4) + 1e-9).all()
    assert (summary.ln_rank == np.log(4)).all()


def test_unknown_fused_layout_exits_2_and_writes_nothing(tmp_path, capsys):
    from transformers import FalconConfig, FalconForCausalLM

    torch.manual_seed(0)
    config = FalconConfig(
        hidden_size=32, num_attention_heads=4, num_hidden_layers=2, vocab_size=128
    )
    FalconForCausalLM(config).save_pretrained(tmp_path / "falcon")
    model = FalconForCausalLM.from_pretrained(tmp_path / "falcon")
    adapter = _lora_on(model, tmp_path / "adapter", ["query_key_value"])
    out = tmp_path / "out"
    capsys.readouterr()
    code = cli_main(["internal", "--adapter", str(adapter), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "layout artent does not know for architecture 'falcon'" in err
    assert "--modules query_key_value" in err
    assert not out.exists()
