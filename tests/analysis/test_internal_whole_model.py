"""--modules all on a (base, tuned) pair: every projection, read tensor by tensor, in parallel."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import rich.console
import rich.progress
import safetensors
import safetensors.torch
import torch
from safetensors.torch import save_file

from artent.analysis import internal
from artent.analysis.internal import InternalConfig, Source, run_internal
from artent.cli import main as cli_main

# Mixed-radix widths, as in real models: 48 = 2^4 3, 112 = 2^4 7 (14336 = 2^11 7 in LLaMA-3-8B).
HIDDEN, KV, INTER, VOCAB, LAYERS = 48, 16, 112, 50, 2
SHAPES = {
    "self_attn.q_proj": (HIDDEN, HIDDEN),
    "self_attn.k_proj": (KV, HIDDEN),
    "self_attn.v_proj": (KV, HIDDEN),
    "self_attn.o_proj": (HIDDEN, HIDDEN),
    "mlp.gate_proj": (INTER, HIDDEN),
    "mlp.up_proj": (INTER, HIDDEN),
    "mlp.down_proj": (HIDDEN, INTER),
}


def llama_tensors(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {
        "model.embed_tokens.weight": torch.randn(VOCAB, HIDDEN, generator=g),
        "lm_head.weight": torch.randn(VOCAB, HIDDEN, generator=g),
        "model.norm.weight": torch.ones(HIDDEN),
    }
    for i in range(LAYERS):
        for name, shape in SHAPES.items():
            out[f"model.layers.{i}.{name}.weight"] = torch.randn(*shape, generator=g)
        out[f"model.layers.{i}.input_layernorm.weight"] = torch.ones(HIDDEN)
        out[f"model.layers.{i}.post_attention_layernorm.weight"] = torch.ones(HIDDEN)
    return out


def write_sharded(folder, tensors: dict[str, torch.Tensor]) -> None:
    """Two shards and a model.safetensors.index.json, as transformers writes large models."""
    folder.mkdir(parents=True)
    keys = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": keys[::2]}
    shards["model-00002-of-00002.safetensors"] = keys[1::2]
    weight_map = {}
    for file, names in shards.items():
        save_file({k: tensors[k].contiguous() for k in names}, str(folder / file))
        weight_map.update({k: file for k in names})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


@pytest.fixture
def pair(tmp_path):
    base = llama_tensors(0)
    g = torch.Generator().manual_seed(1)
    tuned = {k: v + 0.01 * torch.randn(v.shape, generator=g) for k, v in base.items()}
    write_sharded(tmp_path / "base", base)
    write_sharded(tmp_path / "tuned", tuned)
    return tmp_path / "base", tmp_path / "tuned", base, tuned


def svd_profile(M: np.ndarray) -> np.ndarray:
    """Independent reference: one full SVD per bond of the normalised matrix, prime-factor sites."""
    from artent.entanglement.sites import prime_factors

    dims = prime_factors(M.shape[0]) + prime_factors(M.shape[1])
    psi = (M / np.linalg.norm(M)).ravel()
    out = []
    for l in range(1, len(dims)):
        s = np.linalg.svd(psi.reshape(int(np.prod(dims[:l])), -1), compute_uv=False)
        p = s[s > 1e-15] ** 2
        out.append(-(p * np.log(p)).sum())
    return np.array(out)


def test_whole_model_reads_tensor_by_tensor(pair, monkeypatch):
    base_dir, tuned_dir, base, tuned = pair

    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint file was loaded whole")

    for module, name in (
        (safetensors.torch, "load_file"),
        (safetensors.torch, "load"),
        (safetensors.torch, "safe_load_file"),
        (torch, "load"),
    ):
        if hasattr(module, name):
            monkeypatch.setattr(module, name, refuse)
    reads: Counter = Counter()
    real_safe_open = safetensors.safe_open

    class CountingHandle:
        def __init__(self, *args, **kwargs):
            self.inner = real_safe_open(*args, **kwargs)

        def get_tensor(self, key):
            reads[key] += 1
            return self.inner.get_tensor(key)

        def __getattr__(self, name):  # keys(), get_slice(): headers only
            return getattr(self.inner, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.inner.__exit__(*exc)

    monkeypatch.setattr(safetensors, "safe_open", CountingHandle)
    cfg = InternalConfig(modules="all", workers=2)
    profiles, summary = run_internal(
        [Source("tuned", None, "pair", str(tuned_dir), str(base_dir))], cfg, progress=False
    )
    weights = [f"model.layers.{i}.{n}.weight" for i in range(LAYERS) for n in SHAPES]
    # Each projection of each checkpoint read once, one tensor per call; nothing else read.
    assert reads == Counter({k: 2 for k in weights})
    assert len(summary) == LAYERS * len(SHAPES)
    order = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert list(summary.module) == order * LAYERS
    assert list(summary.layer) == [i for i in range(LAYERS) for _ in order]
    for layer, name in ((1, "mlp.gate_proj"), (0, "self_attn.k_proj"), (1, "mlp.down_proj")):
        key = f"model.layers.{layer}.{name}.weight"
        want = svd_profile((tuned[key].double() - base[key].double()).numpy())
        module = name.split(".")[1]
        got = profiles[(profiles.layer == layer) & (profiles.module == module)]
        np.testing.assert_allclose(got.sort_values("bond").entropy.values, want, atol=1e-6)


def test_parallel_workers_hold_at_most_workers_updates(pair, monkeypatch):
    base_dir, tuned_dir, _, _ = pair
    state = {"read": 0, "done": 0, "most": 0}
    real_iter, real_analyse = internal.iter_deltas, internal.analyse_delta

    def counting_iter(src, cfg):
        for delta in real_iter(src, cfg):
            state["read"] += 1
            state["most"] = max(state["most"], state["read"] - state["done"])
            yield delta

    def counting_analyse(delta, cfg):
        out = real_analyse(delta, cfg)
        state["done"] += 1
        return out

    monkeypatch.setattr(internal, "iter_deltas", counting_iter)
    monkeypatch.setattr(internal, "analyse_delta", counting_analyse)
    src = [Source("tuned", None, "pair", str(tuned_dir), str(base_dir))]
    prof2, summ2 = run_internal(src, InternalConfig(modules="all", workers=2), progress=False)
    assert state["read"] == state["done"] == LAYERS * len(SHAPES)
    assert state["most"] <= 2
    prof1, summ1 = run_internal(src, InternalConfig(modules="all", workers=1), progress=False)
    pd.testing.assert_frame_equal(prof1, prof2)  # same rows, same order, whatever the workers
    pd.testing.assert_frame_equal(summ1, summ2)


def test_modules_all_through_the_cli(pair, tmp_path, capsys):
    base_dir, tuned_dir, _, _ = pair
    code = cli_main(
        ["internal", "--base", str(base_dir), "--tuned", str(tuned_dir), "--modules", "all",
         "--layers", "1", "--workers", "2", "--out", str(tmp_path / "out")]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    summary = pd.read_parquet(tmp_path / "out" / "internal_summary.parquet")
    assert set(summary.module) == {n.split(".")[1] for n in SHAPES}
    assert set(summary.layer) == {1}
    assert set(summary[summary.module == "gate_proj"].cut) == {5}  # 112 = 2^4 7: five row sites
    for args, match in (
        (["--modules", "all,q_proj"], "'all' stands alone"),
        (["--workers", "0"], "--workers must be a positive integer"),
    ):
        code = cli_main(
            ["internal", "--base", str(base_dir), "--tuned", str(tuned_dir), *args,
             "--out", str(tmp_path / "bad")]
        )  # fmt: skip
        assert code == 2 and match in capsys.readouterr().err
        assert not (tmp_path / "bad").exists()


def test_modules_all_without_any_projection_is_a_clear_error(tmp_path, capsys):
    g = torch.Generator().manual_seed(0)
    # GPT-2's fused c_attn holds q, k and v (issue 11): without a config.json there is no telling
    # its layout, and the message says what to pass. A model with no projection at all: none.
    gpt2 = {f"h.{i}.attn.c_attn.weight": torch.randn(8, 24, generator=g) for i in range(2)}
    bare = {f"h.{i}.mlp.fc_in.weight": torch.randn(8, 24, generator=g) for i in range(2)}
    for kind, tensors, message in (
        ("gpt2", gpt2, "'h.0.attn.c_attn' fuses query, key and value; splitting it needs"),
        ("bare", bare, "--modules all: none of q_proj"),
    ):
        for name in ("base", "tuned"):
            (tmp_path / kind / name).mkdir(parents=True)
            save_file(tensors, str(tmp_path / kind / name / "model.safetensors"))
        code = cli_main(
            ["internal", "--base", str(tmp_path / kind / "base"), "--tuned",
             str(tmp_path / kind / "tuned"), "--modules", "all", "--out", str(tmp_path / "out")]
        )  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and message in err, err
        assert not (tmp_path / "out").exists()


def test_torch_device_path_matches_numpy(pair):
    """--device (the GPU path: torch.linalg, one update at a time), run here on the CPU."""
    base_dir, tuned_dir, _, _ = pair
    src = [Source("tuned", None, "pair", str(tuned_dir), str(base_dir))]
    cfg = dict(modules="all", layers=[1])
    prof_np, summ_np = run_internal(src, InternalConfig(**cfg), progress=False)
    prof_t, summ_t = run_internal(src, InternalConfig(**cfg, device="cpu"), progress=False)
    np.testing.assert_allclose(prof_t.entropy.values, prof_np.entropy.values, atol=1e-10)
    np.testing.assert_allclose(
        summ_t.center_entropy.values, summ_np.center_entropy.values, atol=1e-10
    )


@pytest.mark.slow
def test_gpu_suite_smoke_runs_on_the_cpu(tmp_path):
    """benchmarks/gpu_suite.py at toy sizes with torch on the CPU: its code paths still run."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root / "src"), OUT=str(tmp_path))
    out = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "gpu_suite.py"), "--smoke"],
        cwd=root, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "gpu_suite.json").read_text())["results"]
    assert len(results) >= 8 and all(r["cpu_s"] > 0 and r["gpu_s"] > 0 for r in results)


def test_a_progress_line_per_layer(pair):
    # A plain line as each layer's last matrix is profiled (a log file shows nothing of the bar).
    import io

    base, tuned = pair[:2]
    stream = io.StringIO()
    console = rich.console.Console(file=stream, force_terminal=False, width=200)
    original = rich.progress.Progress.__init__

    def with_console(self, *args, **kwargs):
        original(self, *args, **{**kwargs, "console": console})

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rich.progress.Progress, "__init__", with_console)
        _, summary = run_internal(
            [Source("tuned", None, "pair", str(tuned), str(base))],
            InternalConfig(modules="all", workers=2),
            progress=True,
        )
    lines = [line for line in stream.getvalue().splitlines() if " layer " in line]
    per_layer = Counter(summary.layer)
    assert len(lines) == LAYERS == len(per_layer)
    for line, (layer, n) in zip(lines, sorted(per_layer.items()), strict=True):
        assert line.startswith(f"tuned: layer {layer}: {n} matrices in ")
