"""MPS adapter: maths against independent numpy answers, and the peft life cycle on a tiny LLaMA."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import peft
import pytest
import torch
import transformers
from torch import nn

import artent
from artent.adapters.mps import (
    MPSConfig,
    MPSLinear,
    balanced_factorization,
    mps_num_parameters,
)

QV = ("q_proj", "v_proj")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # The models here are tiny: with several threads on a busy machine, thread hand-offs cost
    # ~100x the arithmetic.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def tiny_llama_config() -> transformers.LlamaConfig:
    return transformers.LlamaConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        vocab_size=256,
        max_position_embeddings=64,
    )


def tiny_llama(seed: int = 0) -> transformers.LlamaForCausalLM:
    torch.manual_seed(seed)
    return transformers.LlamaForCausalLM(tiny_llama_config()).eval()


def token_ids(seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 256, (2, 9), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def logits_of(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=ids).logits


def mps_layers(model: nn.Module) -> dict[str, MPSLinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, MPSLinear)}


def randomise_b(model: nn.Module, seed: int = 3, std: float = 0.3) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in mps_layers(model).values():
            for b in layer.mps_B.values():
                b.copy_(std * torch.randn(b.shape, generator=gen))


def numpy_delta(layer: MPSLinear, adapter: str = "default") -> np.ndarray:
    """Delta W from the cores by an einsum independent of the layer's code (float64)."""
    b = layer.mps_B[adapter].detach().double().numpy()
    g1 = layer.mps_G1[adapter].detach().double().numpy()
    g2 = layer.mps_G2[adapter].detach().double().numpy()
    r = g1.shape[0]
    scale = layer.scaling[adapter]
    assert math.isclose(scale, 8.0 / r) or math.isclose(scale, 8.0 / math.sqrt(r))
    a = np.einsum("kic,cj->kij", g1, g2).reshape(r, -1)  # row-major over (i_1, i_2)
    return scale * b @ a


def numerical_rank(matrix: np.ndarray) -> int:
    s = np.linalg.svd(matrix, compute_uv=False)
    return int((s > 1e-10 * s.max()).sum()) if s.max() > 0 else 0


# ----- parameter count and factorisation ---------------------------------------------------------


def test_parameter_count_matches_paper_example() -> None:
    # the MPS method (docs/training.md): m = n = 4096, r = 256, chi = 32, n_1 = n_2 = 64
    # -> 1,574,912 (LoRA: 2,097,152).
    config = MPSConfig(r=256, chi=32)
    assert config.input_split(4096) == (64, 64)
    assert config.num_parameters(4096, 4096) == 1_574_912
    assert MPSConfig(r=256, chi=32, n_1=64).num_parameters(4096, 4096) == 1_574_912
    assert mps_num_parameters(4096, 4096, 256, 32) < 4096 * 256 * 2
    # The layer built from the same config holds exactly that many adapter weights.
    layer = MPSLinear(nn.Linear(4096, 4096, bias=False, device="meta"), "default", config)
    assert layer.num_parameters() == config.num_parameters(4096, 4096)
    assert sum(p.numel() for n, p in layer.named_parameters() if n.startswith("mps_")) == 1_574_912


def test_balanced_factorization_against_brute_force() -> None:
    assert balanced_factorization(4096) == (64, 64)
    assert balanced_factorization(64) == (8, 8)
    assert balanced_factorization(128) == (8, 16)
    for n in range(1, 300):
        n_1, n_2 = balanced_factorization(n)
        divisors = [d for d in range(1, n + 1) if n % d == 0 and d * d <= n]
        assert (n_1 * n_2, n_1) == (n, max(divisors))
        assert n_1 <= n_2


def test_prime_in_features_warns_and_degenerates() -> None:
    with pytest.warns(UserWarning, match="prime"):
        layer = MPSLinear(nn.Linear(7, 3), "default", MPSConfig(r=2, chi=2))
    assert (layer.n_1["default"], layer.n_2["default"]) == (1, 7)


# ----- bad configs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"r": 0}, "r"),
        ({"r": -2}, "r"),
        ({"r": 2.5}, "r"),
        ({"chi": 0}, "chi"),
        ({"n_1": 0}, "n_1"),
        ({"dropout": 1.0}, "dropout"),
        ({"alpha": float("nan")}, "alpha"),
        ({"target_modules": []}, "target_modules"),
        ({"bias": "all"}, "bias"),
    ],
)
def test_bad_config_values_raise(kwargs: dict, option: str) -> None:
    with pytest.raises(ValueError, match=rf"MPSConfig\.{option}"):
        MPSConfig(**kwargs)


def test_n_1_not_dividing_names_the_module_and_leaves_model_intact() -> None:
    model = tiny_llama()
    with pytest.raises(ValueError, match=r"n_1=5 .*'model\.layers\.0\.self_attn\.q_proj'"):
        peft.get_peft_model(model, MPSConfig(r=2, chi=2, n_1=5))
    assert not mps_layers(model)
    # 128 divides down_proj's in_features (128) but not q_proj's (64).
    with pytest.raises(ValueError, match=r"in_features=64 of module '.*q_proj'"):
        peft.get_peft_model(
            model, MPSConfig(r=2, chi=2, n_1=128, target_modules=["down_proj", "q_proj"])
        )
    assert not mps_layers(model)


@pytest.mark.parametrize("targets", [["q_proj", "nonexistent_proj"], ["nonexistent_proj"]])
def test_unknown_target_module_is_named(targets: list[str]) -> None:
    model = tiny_llama()
    with pytest.raises(ValueError, match="nonexistent_proj"):
        peft.get_peft_model(model, MPSConfig(r=2, chi=2, target_modules=targets))
    assert not mps_layers(model)


def test_non_linear_target_is_named() -> None:
    with pytest.raises(ValueError, match=r"'model\.embed_tokens' is a Embedding"):
        peft.get_peft_model(tiny_llama(), MPSConfig(r=2, chi=2, target_modules=["embed_tokens"]))


# ----- one layer against dense maths -------------------------------------------------------------


@pytest.mark.parametrize("use_rslora", [False, True])
def test_layer_forward_equals_dense_weight_plus_delta(use_rslora: bool) -> None:
    torch.manual_seed(0)
    m, n, r, chi, n_1, alpha = 10, 24, 3, 2, 4, 5.0
    base = nn.Linear(n, m, bias=True).double()
    config = MPSConfig(
        r=r, chi=chi, n_1=n_1, alpha=alpha, use_rslora=use_rslora, init_weights=False
    )
    layer = MPSLinear(base, "default", config).double()
    g1 = layer.mps_G1["default"].detach().numpy()
    g2 = layer.mps_G2["default"].detach().numpy()
    b = layer.mps_B["default"].detach().numpy()
    assert g1.shape == (r, n_1, chi) and g2.shape == (chi, n // n_1) and b.shape == (m, r)
    # A_MPS entry by entry from its definition, column j = i_1 * n_2 + i_2.
    n_2 = n // n_1
    a = np.zeros((r, n))
    for k in range(r):
        for i_1 in range(n_1):
            for i_2 in range(n_2):
                a[k, i_1 * n_2 + i_2] = sum(g1[k, i_1, c] * g2[c, i_2] for c in range(chi))
    scale = alpha / (math.sqrt(r) if use_rslora else r)
    delta = scale * b @ a
    weight = base.weight.detach().numpy() + delta
    for shape in [(5, n), (2, 3, n)]:
        x = torch.randn(shape, dtype=torch.float64)
        expected = x.numpy() @ weight.T + base.bias.detach().numpy()
        np.testing.assert_allclose(layer(x).detach().numpy(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.delta_weight().detach().numpy(), delta, rtol=1e-12, atol=1e-14)
    b_f, a_f, s_f = layer.factors()
    assert a_f.shape == (r, n) and s_f == pytest.approx(scale)
    np.testing.assert_allclose(a_f.detach().numpy(), a, rtol=1e-12, atol=1e-14)


def test_forward_never_forms_a_mps_or_delta_w(monkeypatch: pytest.MonkeyPatch) -> None:
    layer = MPSLinear(nn.Linear(64, 32), "default", MPSConfig(r=4, chi=3, init_weights=False))
    x = torch.randn(3, 64)
    expected = layer(x)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("forward formed a dense A_MPS or Delta W")

    monkeypatch.setattr(layer, "a_mps", forbidden)
    monkeypatch.setattr(layer, "get_delta_weight", forbidden)
    monkeypatch.setattr(torch, "einsum", forbidden)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=0)


def test_init_gives_zero_delta_and_lora_scale_rows() -> None:
    torch.manual_seed(0)
    n = 1024
    layer = MPSLinear(nn.Linear(n, 16), "default", MPSConfig(r=64, chi=16))
    assert torch.count_nonzero(layer.delta_weight()) == 0
    a = layer.a_mps().detach().double()
    # LoRA's kaiming-uniform A has entry variance 1 / (3 n); the MPS cores are scaled to match.
    assert a.var().item() == pytest.approx(1.0 / (3 * n), rel=0.1)


# ----- the tiny LLaMA matrix ---------------------------------------------------------------------


@pytest.mark.parametrize("targets", [QV, ALL_LINEAR], ids=["qv", "all"])
@pytest.mark.parametrize("n_1", [None, 4, 16])
@pytest.mark.parametrize("chi", [1, 3])
@pytest.mark.parametrize("r", [1, 4])
def test_tiny_llama_matrix(r: int, chi: int, n_1: int | None, targets: tuple[str, ...]) -> None:
    base = tiny_llama()
    base_state = copy.deepcopy(base.state_dict())
    ids = token_ids()
    base_logits = logits_of(base, ids)
    config = MPSConfig(r=r, chi=chi, n_1=n_1, target_modules=list(targets), task_type="CAUSAL_LM")
    # The modules that should be adapted, found independently of peft's matching.
    expected = {
        name: (mod.out_features, mod.in_features)
        for name, mod in base.named_modules()
        if isinstance(mod, nn.Linear) and name.rsplit(".", 1)[-1] in targets
    }
    model = peft.get_peft_model(base, config)
    layers = {name.removeprefix("base_model.model."): m for name, m in mps_layers(model).items()}
    assert set(layers) == set(expected)

    # Delta W = 0 at init: logits bit-identical to the base model's.
    assert torch.equal(logits_of(model, ids), base_logits)

    # Only adapter weights train, and their number is the formula's.
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    assert all(".mps_" in n for n in trainable)
    assert sum(trainable.values()) == sum(config.num_parameters(*mn) for mn in expected.values())

    randomise_b(model)
    merged_by_hand = tiny_llama()
    merged_by_hand.load_state_dict(base_state)
    for name, layer in layers.items():
        m, n = expected[name]
        n1, n2 = (n_1, n // n_1) if n_1 else balanced_factorization(n)
        delta = numpy_delta(layer)
        np.testing.assert_allclose(
            layer.delta_weight().detach().numpy(), delta, rtol=1e-5, atol=1e-7
        )
        # Schmidt ranks from numpy alone: row|column cut <= r, (rows, i_1) | i_2 cut <= chi; with
        # random cores both reach their generic values.
        rank_rc = numerical_rank(delta)
        rank_bond = numerical_rank(delta.reshape(m * n1, n2))
        assert rank_rc <= r and rank_bond <= chi
        assert rank_rc == min(m, r, n1 * min(chi, n2))
        assert rank_bond == min(chi, n2, m * n1, r * min(n1, chi))
        with torch.no_grad():
            target = merged_by_hand.get_submodule(name)
            target.weight += torch.from_numpy(delta).float()
    # The whole model equals the base model with W + Delta W (merged by hand, not by peft).
    torch.testing.assert_close(
        logits_of(model, ids), logits_of(merged_by_hand, ids), rtol=0, atol=1e-5
    )


# ----- training, saving, loading, merging --------------------------------------------------------


def test_training_moves_only_adapter_weights_and_lowers_loss() -> None:
    model = peft.get_peft_model(
        tiny_llama(), MPSConfig(r=4, chi=4, alpha=16, task_type="CAUSAL_LM")
    )
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    adapter = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert frozen and adapter and all(".mps_" in n for n in adapter)
    ids = token_ids()
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    losses = []
    for _ in range(15):
        loss = model(input_ids=ids, labels=ids).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05
    params = dict(model.named_parameters())
    assert all(torch.equal(params[n], v) for n, v in frozen.items())
    assert all(not torch.equal(params[n], v) for n, v in adapter.items())


def test_save_and_reload_gives_identical_logits(tmp_path: Path) -> None:
    base = tiny_llama()
    base.save_pretrained(tmp_path / "base")  # local folder, no hub
    model = peft.get_peft_model(base, MPSConfig(r=4, chi=3, n_1=4, task_type="CAUSAL_LM"))
    randomise_b(model)
    ids = token_ids()
    logits = logits_of(model, ids)
    model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    saved = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert (saved["peft_type"], saved["r"], saved["chi"], saved["n_1"]) == ("MPS", 4, 3, 4)

    # Same process.
    fresh = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "base").eval()
    reloaded = peft.PeftModel.from_pretrained(fresh, tmp_path / "adapter")
    assert isinstance(reloaded.peft_config["default"], MPSConfig)
    assert torch.equal(logits_of(reloaded, ids), logits)


def test_import_alone_registers_the_method_for_a_fresh_process(tmp_path: Path) -> None:
    # A fresh interpreter that only imports artent.adapters.mps before PeftModel.from_pretrained.
    base = tiny_llama()
    base.save_pretrained(tmp_path / "base")
    model = peft.get_peft_model(base, MPSConfig(r=3, chi=2, task_type="CAUSAL_LM"))
    randomise_b(model)
    ids = token_ids()
    logits = logits_of(model, ids)
    model.save_pretrained(tmp_path / "adapter")
    torch.save(ids, tmp_path / "ids.pt")
    script = textwrap.dedent(
        f"""
        import torch, transformers, peft
        import artent.adapters.mps
        base = transformers.LlamaForCausalLM.from_pretrained({str(tmp_path / "base")!r}).eval()
        model = peft.PeftModel.from_pretrained(base, {str(tmp_path / "adapter")!r})
        with torch.no_grad():
            out = model(input_ids=torch.load({str(tmp_path / "ids.pt")!r})).logits
        torch.save(out, {str(tmp_path / "logits.pt")!r})
        """
    )
    src = str(Path(artent.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
    }
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert torch.equal(torch.load(tmp_path / "logits.pt"), logits)


def test_merge_unmerge_and_merge_and_unload() -> None:
    base = tiny_llama()
    original = {n: p.detach().clone() for n, p in base.named_parameters()}
    ids = token_ids()
    base_logits = logits_of(base, ids)
    model = peft.get_peft_model(
        base, MPSConfig(r=4, chi=3, target_modules=list(ALL_LINEAR), task_type="CAUSAL_LM")
    )
    randomise_b(model)
    adapted = logits_of(model, ids)
    assert (adapted - base_logits).abs().max() > 1e-2  # the update is not negligible

    with model.disable_adapter():
        torch.testing.assert_close(logits_of(model, ids), base_logits, rtol=0, atol=0)

    model.merge_adapter()
    assert all(layer.merged for layer in mps_layers(model).values())
    torch.testing.assert_close(logits_of(model, ids), adapted, rtol=0, atol=1e-5)
    model.unmerge_adapter()
    for name, layer in mps_layers(model).items():
        key = name.removeprefix("base_model.model.") + ".weight"
        torch.testing.assert_close(layer.get_base_layer().weight, original[key], rtol=0, atol=1e-6)
    torch.testing.assert_close(logits_of(model, ids), adapted, rtol=0, atol=1e-5)

    merged = model.merge_and_unload()
    assert type(merged) is transformers.LlamaForCausalLM
    assert not mps_layers(merged)
    assert not any("mps_" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(logits_of(merged, ids), adapted, rtol=0, atol=1e-5)


def test_second_adapter_is_separate_and_frozen() -> None:
    model = peft.get_peft_model(tiny_llama(), MPSConfig(r=2, chi=2))
    model.add_adapter("wide", MPSConfig(r=6, chi=3, n_1=4))
    layer = next(iter(mps_layers(model).values()))
    assert layer.cores("wide")[1].shape == (6, 4, 3)
    assert layer.factors("default")[1].shape == (2, 64)
    assert not layer.mps_G1["wide"].requires_grad and layer.mps_G1["default"].requires_grad
    model.base_model.set_adapter(["default", "wide"])
    with pytest.raises(ValueError, match="name one"):
        layer.delta_weight()
