"""Attention maps and outputs: against softmax(QK^T/sqrt(d) + mask) and A V recomputed by hand."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from artent.models.attention import (
    AttentionUnavailable,
    attention_maps,
    attention_outputs,
    eager_attention,
)
from tiny_families import tiny_llama

N_HEADS, N_KV, HIDDEN = 4, 2, 64  # those of tiny_families.TINY_LLAMA
HEAD_DIM = HIDDEN // N_HEADS


@pytest.fixture(scope="module")
def model():
    # sharper than the default initializer_range 0.02, so attention is far from uniform
    m = tiny_llama(0, eval=True, initializer_range=0.2)
    assert m.config._attn_implementation == "sdpa"  # the default: the code must switch
    return m


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, 128, (2, 12), generator=torch.Generator().manual_seed(1))


def _rms_norm(x, weight, eps):
    x = x.double()
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * weight.double()


def _rope(x, theta):
    """LLaMA's rotary embedding by hand: dims i and i + d/2 rotate by angle pos * theta^(-2i/d)."""
    t, d = x.shape
    half = d // 2
    inv_freq = theta ** (-torch.arange(half, dtype=torch.float64) * 2 / d)
    angle = torch.arange(t, dtype=torch.float64)[:, None] * inv_freq[None, :]
    cos, sin = torch.cos(angle), torch.sin(angle)
    x1, x2 = x[:, :half], x[:, half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=1)


def _by_hand(model, layer_input, layer, head):
    """A and V of one head from the weights, float64: softmax(q k^T / sqrt(d) + causal mask)."""
    cfg = model.config
    attn = model.model.layers[layer].self_attn
    norm = model.model.layers[layer].input_layernorm
    x = _rms_norm(layer_input, norm.weight, cfg.rms_norm_eps)
    kv = head // (N_HEADS // N_KV)  # grouped-query attention: query heads share a kv head
    rows_q = slice(head * HEAD_DIM, (head + 1) * HEAD_DIM)
    rows_kv = slice(kv * HEAD_DIM, (kv + 1) * HEAD_DIM)
    q = x @ attn.q_proj.weight[rows_q].double().T
    k = x @ attn.k_proj.weight[rows_kv].double().T
    v = x @ attn.v_proj.weight[rows_kv].double().T
    theta = cfg.rope_parameters["rope_theta"]
    scores = _rope(q, theta) @ _rope(k, theta).T / math.sqrt(HEAD_DIM)
    t = scores.shape[0]
    scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), -math.inf)
    return torch.softmax(scores, dim=-1), v


def test_maps_are_causal_normalised_and_restore_sdpa(model, ids):
    A = attention_maps(model, ids)
    assert A.shape == (2, 2, N_HEADS, 12, 12)
    assert model.config._attn_implementation == "sdpa"
    assert torch.all(A.triu(1) == 0)
    torch.testing.assert_close(A.sum(-1), torch.ones(2, 2, N_HEADS, 12), atol=1e-5, rtol=0)
    # Not trivially uniform: the test model has sharp heads.
    uniform = torch.ones(12, 12).tril() / torch.arange(1, 13)[:, None]
    assert float((A - uniform).abs().max()) > 0.1


def test_layer0_maps_equal_hand_computation(model, ids):
    A = attention_maps(model, ids)
    emb = model.model.embed_tokens.weight[ids[1]]
    for head in range(N_HEADS):
        want, _ = _by_hand(model, emb, 0, head)
        torch.testing.assert_close(A[0, 1, head].double(), want, atol=2e-6, rtol=0)


def test_context_and_layer1_equal_hand_computation(model, ids):
    out = attention_outputs(model, ids, return_attention=True)
    assert out["context"].shape == (2, 2, 12, N_HEADS, HEAD_DIM)
    assert out["hidden"].shape == (2, 2, 12, HIDDEN)
    torch.testing.assert_close(out["attention"], attention_maps(model, ids))
    # Layer 1's input is layer 0's output, so this also checks the hidden-state capture.
    layer0_out = out["hidden"][0, 0]
    for head in (0, 3):
        A, v = _by_hand(model, layer0_out, 1, head)
        torch.testing.assert_close(out["attention"][1, 0, head].double(), A, atol=2e-6, rtol=0)
        # float32 A V against float64: a few ulps of values of order one (2e-6 failed on main)
        torch.testing.assert_close(out["context"][1, 0, :, head].double(), A @ v, atol=5e-6, rtol=0)
    # The last layer's output, through the final norm and the head, gives the model's logits.
    logits = model(input_ids=ids).logits
    torch.testing.assert_close(model.lm_head(model.model.norm(out["hidden"][-1])), logits)
    assert model.config._attn_implementation == "sdpa"


def test_peft_model_matches_its_merged_model(model, ids):
    import peft

    config = peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False
    )
    wrapped = peft.get_peft_model(copy.deepcopy(model), config).eval()
    merged = copy.deepcopy(wrapped).merge_and_unload()
    A = attention_maps(wrapped, ids)
    assert float((A - attention_maps(model, ids)).abs().max()) > 1e-3  # the adapter matters
    torch.testing.assert_close(A, attention_maps(merged, ids), atol=1e-5, rtol=0)
    got, want = attention_outputs(wrapped, ids), attention_outputs(merged, ids)
    for key in ("context", "hidden"):
        torch.testing.assert_close(got[key], want[key], atol=1e-4, rtol=1e-4)
    assert wrapped.get_base_model().config._attn_implementation == "sdpa"


def test_a_model_that_cannot_switch_raises():
    class Stuck(torch.nn.Module):
        class config:  # noqa: N801 - mimics a transformers config attribute
            _attn_implementation = "sdpa"

        def set_attn_implementation(self, name):
            pass  # transformers only warns for models that cannot switch

    with pytest.raises(AttentionUnavailable, match="does not support switching"):
        with eager_attention(Stuck()):
            pass
    with pytest.raises(AttentionUnavailable, match="PreTrainedModel"):
        attention_maps(torch.nn.Linear(2, 2), torch.zeros(1, 3, dtype=torch.long))


def test_maps_are_read_in_eval_mode_and_the_training_flag_is_restored(ids):
    # attention_dropout: in training mode it would zero half the weights
    m = tiny_llama(None, num_hidden_layers=1, attention_dropout=0.5).train()
    A = attention_maps(m, ids)
    assert m.training
    torch.testing.assert_close(A.sum(-1), torch.ones(1, 2, N_HEADS, 12), atol=1e-5, rtol=0)
    torch.testing.assert_close(attention_outputs(m, ids, return_attention=True)["attention"], A)
    assert m.training


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "opt", "bert"])
def test_per_head_context_is_a_v_on_other_architectures(family):
    """The context read at the output projection's input is A V, with V split by hand from the
    layer's own projection (GPT-2's fused c_attn, NeoX's per-head query_key_value)."""
    from tiny_families import make_family_model

    model = make_family_model(family)
    ids = torch.randint(4, 100, (2, 12), generator=torch.Generator().manual_seed(3))
    attention = {
        "gpt2": "transformer.h.1.attn",
        "gpt_neox": "gpt_neox.layers.1.attention",
        "opt": "model.decoder.layers.1.self_attn",
        "bert": "encoder.layer.1.attention.self",
    }[family]
    inputs: list = []
    handle = model.get_submodule(attention).register_forward_pre_hook(
        lambda _m, args, kwargs: inputs.append(args[0] if args else kwargs["hidden_states"]),
        with_kwargs=True,
    )
    try:
        out = attention_outputs(model, ids, return_attention=True)
    finally:
        handle.remove()
    x = inputs[0].double()  # layer 1's attention input, [batch, T, hidden]
    heads, width = 4, 32
    head_dim = width // heads
    module = model.get_submodule(attention)
    if family == "gpt2":  # Conv1D: x @ W + b, columns [q | k | v]
        qkv = x @ module.c_attn.weight.double() + module.c_attn.bias.double()
        v = qkv[..., 2 * width :].reshape(2, 12, heads, head_dim)
    elif family == "gpt_neox":  # rows interleaved per head: [heads, (q | k | v), head_dim]
        qkv = x @ module.query_key_value.weight.double().T + module.query_key_value.bias.double()
        v = qkv.reshape(2, 12, heads, 3 * head_dim)[..., 2 * head_dim :]
    else:
        proj = module.v_proj if family == "opt" else module.value
        v = (x @ proj.weight.double().T + proj.bias.double()).reshape(2, 12, heads, head_dim)
    A = out["attention"][1].double()  # [batch, heads, T, T]
    want = torch.einsum("bhij,bjhd->bihd", A, v)
    assert out["context"].shape == (2, 2, 12, heads, head_dim)
    torch.testing.assert_close(out["context"][1].double(), want, atol=2e-5, rtol=0)
