"""artent's heavy paths on a GPU against the same on the CPU, in one prepared run (never in CI).

    PYTHONPATH=src python3 benchmarks/gpu_suite.py            # from the repository root
    PYTHONPATH=src python3 benchmarks/gpu_suite.py --smoke    # toy sizes, "GPU" = torch on CPU

Items, each timed on the GPU and on the CPU (every core) with the same inputs, and checked to
agree:

1. dense profile of a 2048^2 and a 4096^2 float64 matrix (``entanglement_profile``; on the GPU
   through torch.linalg), beside the floor ``eigvalsh(M @ M.T)`` on each device;
2. ``run_internal`` on a LLaMA-3.1-8B-shaped LoRA adapter (q/v of 32 layers, rank 16: 64 updates);
3. ``run_internal --modules all`` on two LLaMA-3.1-8B-shaped layers (a bf16 base/tuned pair
   written here: q 4096^2, k/v 1024 x 4096, o 4096^2, gate/up 14336 x 4096, down 4096 x 14336);
4. ``run_external`` on SmolLM2-135M at T = 1024, every layer and head (one text, amplitude
   encoding, sequential order, cut scaling at T = 256 and 512, 2 baseline samples per beta);
5. one LoRA training step of SmolLM2-135M (r = 16 on q/v, AdamW, 4 x 512 tokens, float32; bf16
   autocast on the GPU beside it).

SmolLM2's weights are loaded from ``--smollm2 DIR`` (a local folder with config.json and
safetensors) or from artent's cache (``--model smollm2`` converted there); otherwise the model is
randomly initialised with SmolLM2-135M's exact
config (30 layers, hidden 576, 9 heads, 3 key/value heads, MLP 1536, vocabulary 49152, tied
embeddings), which costs the same time, and every figure says so. Needs torch, transformers,
peft, safetensors, pandas (scipy optional). Figures go to ``$OUT/gpu_suite.{json,md}`` (or
``--out``). The CPU sizes keep the whole run under 5 minutes on a 16-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from model_shapes import SMOLLM2_CONFIG, llama8b_shapes, write_pair  # noqa: E402

RESULTS: list[dict] = []


def sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int = 1):
    """Best wall time of ``repeats`` calls (after the device finishes), and the last result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


def record(item: str, cpu_s: float, gpu_s: float, agree: str, note: str = "") -> None:
    row = dict(item=item, cpu_s=cpu_s, gpu_s=gpu_s, speedup=cpu_s / gpu_s, agree=agree, note=note)
    RESULTS.append(row)
    print(
        f"  {item:<52s} CPU {cpu_s:8.3f} s   GPU {gpu_s:8.3f} s   CPU/GPU {cpu_s / gpu_s:7.1f}"
        f"   {agree}{'   ' + note if note else ''}",
        flush=True,
    )


# ----- 1. dense profiles ----------------------------------------------------------------------


def dense(n: int, device: str, repeats: int) -> None:
    from artent import entanglement_profile

    M = np.random.default_rng(n).standard_normal((n, n))
    Mg = torch.from_numpy(M).to(device)
    entanglement_profile(Mg[:64, :64], device=device)  # solver and kernels initialised
    t_cpu, p_cpu = timed(lambda: entanglement_profile(M), "cpu", repeats)
    t_gpu, p_gpu = timed(lambda: entanglement_profile(Mg, device=device), device, repeats)
    diff = float(np.abs(p_cpu - p_gpu).max())
    assert diff < 1e-8, f"dense {n}: GPU and CPU profiles differ by {diff}"
    record(f"dense profile {n} x {n} float64", t_cpu, t_gpu, f"max |dS| {diff:.0e}")
    f_cpu, _ = timed(lambda: np.linalg.eigvalsh(M @ M.T), "cpu", repeats)
    f_gpu, _ = timed(lambda: torch.linalg.eigvalsh(Mg @ Mg.T), device, repeats)
    record(
        f"  floor eigvalsh(M @ M.T) {n}",
        f_cpu,
        f_gpu,
        "",
        f"artent/floor: CPU {t_cpu / f_cpu:.2f}, GPU {t_gpu / f_gpu:.2f}",
    )


# ----- 2, 3. internal analysis ------------------------------------------------------------------


def internal(item: str, source, modules: str, device: str) -> None:
    from artent.analysis.internal import InternalConfig, run_internal

    def run(dev):
        cfg = InternalConfig(modules=modules, device=None if dev == "numpy" else dev)
        return run_internal([source], cfg, progress=False)

    t_cpu, (prof_cpu, summ_cpu) = timed(lambda: run("numpy"), "cpu")
    t_gpu, (prof_gpu, summ_gpu) = timed(lambda: run(device), device)
    diff = float(np.abs(prof_cpu.entropy.values - prof_gpu.entropy.values).max())
    assert diff < 1e-8, f"{item}: GPU and CPU profiles differ by {diff}"
    record(item, t_cpu, t_gpu, f"max |dS| {diff:.0e}", f"{len(summ_cpu)} updates")


def lora_8b(tmp: Path, device: str, smoke: bool) -> None:
    from artent.analysis.internal import Source
    from internal_speed import write_adapter

    folder = tmp / "lora8b"
    if smoke:
        _write_small_adapter(folder)
    else:
        write_adapter(folder, 16)
    source = Source("a", None, "adapter", str(folder))
    internal("internal: 8B-shaped LoRA adapter, q/v, r=16", source, "q_proj,v_proj", device)


def _write_small_adapter(folder: Path) -> None:
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    t = {}
    for i in range(2):
        for mod, (m, n) in {"q_proj": (256, 256), "v_proj": (64, 256)}.items():
            key = f"base_model.model.model.layers.{i}.self_attn.{mod}"
            t[f"{key}.lora_A.weight"] = torch.randn(4, n, generator=g)
            t[f"{key}.lora_B.weight"] = torch.randn(m, 4, generator=g)
    folder.mkdir(parents=True)
    save_file(t, str(folder / "adapter_model.safetensors"))
    config = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    (folder / "adapter_config.json").write_text(json.dumps(config))


def whole_pair(tmp: Path, device: str, smoke: bool) -> None:
    from artent.analysis.internal import Source

    shapes = llama8b_shapes(2, shrink=16 if smoke else 1)
    t0 = time.perf_counter()
    base, tuned = write_pair(tmp / "pair", shapes, dtype=torch.bfloat16)
    print(f"  (wrote the 8B-shaped pair in {time.perf_counter() - t0:.0f} s)", flush=True)
    size = "1/16-size " if smoke else ""
    internal(f"internal --modules all: {size}8B-shaped 2 layers, bf16",
             Source("t", None, "pair", str(tuned), str(base)), "all", device)  # fmt: skip


# ----- 4, 5. SmolLM2 ------------------------------------------------------------------------


def smollm2(path: Path | None, smoke: bool):
    """SmolLM2-135M (float32, eval mode) and a label saying whether its weights are real."""
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    if path is None and not smoke:
        try:  # artent's converted copy (`--model smollm2`), where this machine has it cached
            from artent.models.smollm2 import RECORD, smollm2_path

            path = smollm2_path() if (smollm2_path() / RECORD).is_file() else None
        except ImportError:
            path = None
    if path is not None and (path / "config.json").is_file():
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        return model.eval(), "SmolLM2-135M weights"
    config = dict(SMOLLM2_CONFIG)
    if smoke:
        config.update(num_hidden_layers=2, vocab_size=512)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**config, dtype="float32")).float()
    return model.eval(), "SmolLM2-135M config, random weights" + (" (2 layers)" if smoke else "")


def id_windows(ids, T: int):
    """Token ids already cut into one window of ``T``: what run_external reads after tokenising."""
    from artent.data.corpus import CorpusWindows

    return CorpusWindows(ids[None, :T], T, T, True, 1, "random token ids")


def external(model, label: str, device: str, smoke: bool) -> None:
    import copy

    from artent.analysis.external import ExternalConfig, run_external

    T = 64 if smoke else 1024
    ids = torch.randint(
        1, model.config.vocab_size, (T,), generator=torch.Generator().manual_seed(0)
    )
    texts = id_windows(ids, T)
    cfg = ExternalConfig(seq_len=T, n_texts=1, encodings=("amplitude",), orders=("sequential",),
                         baseline_samples=2, scaling_lengths=(T // 4, T // 2))  # fmt: skip
    gpu_model = copy.deepcopy(model).to(device)
    warm_up = ExternalConfig(seq_len=8, n_texts=1, orders=("sequential",), baseline_samples=1)
    run_external(gpu_model, None, id_windows(ids, 8), warm_up)  # kernels and solvers initialised
    t_cpu, out_cpu = timed(lambda: run_external(model, None, texts, cfg), "cpu")
    t_gpu, out_gpu = timed(lambda: run_external(gpu_model, None, texts, cfg), device)
    a, b = out_cpu["external"], out_gpu["external"]
    diff = float(np.abs(a.entropy.values - b.entropy.values).max())
    heads = a[["layer", "head"]].drop_duplicates().shape[0]
    record(f"external T={T}, {heads} heads, 1 text", t_cpu, t_gpu,
           f"max |dS| {diff:.0e} (float32 attention)", label)  # fmt: skip


def train_step(model, label: str, device: str, smoke: bool) -> None:
    import copy

    from artent.training.config import TrainConfig
    from artent.training.methods import attach_method

    batch, T, steps = (2, 32, 2) if smoke else (4, 512, 3)
    ids = torch.randint(
        1, model.config.vocab_size, (batch, T), generator=torch.Generator().manual_seed(1)
    )
    cfg = TrainConfig(method="lora", rank=16, alpha=32.0, targets=["q_proj", "v_proj"])

    def one_run(dev: str, bf16: bool) -> tuple[float, float]:
        torch.manual_seed(0)
        m = attach_method(copy.deepcopy(model), cfg).to(dev).train()
        params = [p for p in m.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4)
        x = ids.to(dev)
        times, loss = [], float("nan")
        for step in range(steps + 1):  # the first step warms up (allocations, kernels)
            sync(dev)
            t0 = time.perf_counter()
            kind = "cuda" if dev.startswith("cuda") else "cpu"
            with torch.autocast(kind, dtype=torch.bfloat16, enabled=bf16):
                out = m(input_ids=x, labels=x)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            sync(dev)
            if step:
                times.append(time.perf_counter() - t0)
            loss = float(out.loss.detach())
        return float(np.median(times)), loss

    t_cpu, loss_cpu = one_run("cpu", False)
    t_gpu, loss_gpu = one_run(device, False)
    record(f"LoRA train step, {batch} x {T} tokens, fp32", t_cpu, t_gpu,
           f"loss {loss_cpu:.4f} / {loss_gpu:.4f}", label)  # fmt: skip
    if str(device).startswith("cuda"):
        t_bf16, loss_bf16 = one_run(device, True)
        record(f"LoRA train step, {batch} x {T} tokens, GPU bf16 autocast", t_cpu, t_bf16,
               f"loss {loss_bf16:.4f}", "CPU column: fp32")  # fmt: skip


# ----- main -----------------------------------------------------------------------------------


def warm_up(tmp: Path, device: str) -> None:
    """One-time costs (imports, BLAS and solver set-up, CUDA context) paid before any timing."""
    from artent import entanglement_profile
    from artent.analysis.internal import InternalConfig, Source, run_internal

    _write_small_adapter(tmp / "warm")
    src = [Source("w", None, "adapter", str(tmp / "warm"))]
    for dev in (None, device):
        run_internal(src, InternalConfig(device=dev), progress=False)
        entanglement_profile(np.random.default_rng(0).standard_normal((64, 64)), device=dev)


def write_results(out: Path, meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_suite.json").write_text(json.dumps(dict(meta, results=RESULTS), indent=2) + "\n")
    lines = [
        f"# gpu_suite: {meta['gpu']} against {meta['cpu_cores']} CPU cores",
        "",
        f"torch {meta['torch']}, numpy {meta['numpy']}, {meta['when']}, "
        f"wall {meta['wall_s']:.0f} s",
        "",
        "| item | CPU s | GPU s | CPU / GPU | agreement | note |",
        "|---|---|---|---|---|---|",
    ]
    for r in RESULTS:
        lines.append(
            f"| {r['item'].strip()} | {r['cpu_s']:.3f} | {r['gpu_s']:.3f} | {r['speedup']:.1f} "
            f"| {r['agree']} | {r['note']} |"
        )
    (out / "gpu_suite.md").write_text("\n".join(lines) + "\n")
    print(f"\nfigures in {out}/gpu_suite.json and gpu_suite.md")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="toy sizes; without a GPU, torch on CPU")
    ap.add_argument("--device", default=None, help="default: cuda (cpu with --smoke and no GPU)")
    ap.add_argument("--smollm2", type=Path, default=None, help="a local SmolLM2-135M folder")
    ap.add_argument("--skip", default="", help="comma-separated: dense,lora,pair,external,train")
    ap.add_argument("--out", type=Path, default=None, help="default: $OUT, else no files")
    args = ap.parse_args()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" and not args.smoke:
        raise SystemExit("gpu_suite: no GPU visible; pass --smoke to try it on the CPU")
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    started = time.perf_counter()
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else "torch on the CPU"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"gpu_suite: {gpu} against {cores} CPU cores ({platform.machine()}), torch "
          f"{torch.__version__}, numpy {np.__version__}", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        warm_up(tmp, device)
        if "dense" not in skip:
            for n in (128, 256) if args.smoke else (2048, 4096):
                dense(n, device, repeats=2)
        if "lora" not in skip:
            lora_8b(tmp, device, args.smoke)
        if "pair" not in skip:
            whole_pair(tmp, device, args.smoke)
        if not {"external", "train"} <= skip:
            model, label = smollm2(args.smollm2, args.smoke)
            if "external" not in skip:
                external(model, label, device, args.smoke)
            if "train" not in skip:
                train_step(model, label, device, args.smoke)
    wall = time.perf_counter() - started
    print(f"\ngpu_suite: {wall:.0f} s in all", flush=True)
    out = args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else None)
    if out is not None:
        meta = dict(
            gpu=gpu,
            cpu_cores=cores,
            torch=torch.__version__,
            numpy=np.__version__,
            when=time.strftime("%Y-%m-%d %H:%M"),
            wall_s=wall,
            smoke=args.smoke,
        )
        write_results(out, meta)


if __name__ == "__main__":
    main()
