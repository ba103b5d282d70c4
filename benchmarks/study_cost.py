"""What a study costs: training GPU-hours from measured seconds per step, and analysis time.

Training: every run of the study config (``artent demo --config``) costs ``steps`` optimiser steps.
Seconds per step are *measured*: pass ``--calibrate RUN`` (one or more artent run folders, e.g. a
30-step run of each method at the study's model, batch and sequence length on the target GPU);
each one's median step time (from ``losses.parquet``, first steps dropped) prices the runs of its
method. A method without a calibration run is priced from one that has one by the ratio of
training FLOPs per token (FFT ``6 N``, LoRA/MPS ``4 N``: the frozen base needs no weight
gradients). Without any calibration run the price comes from a FLOP model at an assumed model
FLOP utilisation (``--mfu`` of ``--peak-tflops``), printed as an assumption.

Analyses: the internal analysis of one checkpoint profiles every q/v update. The dense profile
(FFT updates) of each distinct shape is timed here on ``--device`` (random matrices), and LoRA
updates take the factored path (timed too). Attention and no-hair forward passes are a few
hundred sequences: left out (seconds on a GPU).

    python benchmarks/study_cost.py configs/paper-llama-3.1-8b.yaml
    python benchmarks/study_cost.py configs/paper-llama-3.1-8b.yaml --calibrate runs/cal-*
    python benchmarks/study_cost.py configs/tiny-demo.yaml --calibrate runs/demo/runs/tulu-lora-r8

``--whole-model JSON`` (what ``benchmarks/whole_model.py --json-out`` wrote) adds the 8B cost
table: the measured per-layer figures of ``--modules all`` on a LLaMA-3.1-8B-shaped bf16 pair
(with and without the intruder count) and of a rank-16 q/v adapter (timed here, with and
without its base weights), extrapolated to the 32 layers of an 8B model; peak memory does not
grow with the layers (tensors are read one at a time). The GPU column is the H200 run of
``benchmarks/gpu_suite.py`` recorded in docs/benchmarks.md (2026-11-29), where it was measured.

    python benchmarks/whole_model.py --only 8b --layers 1 --json-out whole_model.json
    python benchmarks/study_cost.py configs/paper-llama-3.1-8b.yaml --whole-model whole_model.json

Checked on the tiny demo (docs/cluster.md): priced from its ``tulu-lora-r8`` run alone, the
estimate of the whole demo's training time is compared with the times ``study.json`` recorded.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from artent import LowRank, entanglement_profile
from artent.pipelines.study_config import load_study_config

# Architectures of the paper's models (from their published config.json): parameters, layers,
# hidden size, q_proj and v_proj shapes (out x in).
MODELS = {
    "meta-llama/Llama-3.2-1B": dict(params=1.236e9, layers=16, q=(2048, 2048), v=(512, 2048)),
    "meta-llama/Llama-3.1-8B": dict(params=8.030e9, layers=32, q=(4096, 4096), v=(1024, 4096)),
    "tiny": dict(params=1.246e6, layers=4, q=(128, 128), v=(64, 128)),
}
TRAIN_FLOPS_PER_PARAM = {"fft": 6.0, "lora": 4.0, "mps": 4.0}


def seconds_per_step(run: Path) -> tuple[str, float, float]:
    """Method of an artent run folder, its median step time and its loop time per step (s).

    The loop time (``wall_s`` at the last step over the steps timed) includes the held-out
    evaluations and checkpoint writes at the run's own cadence; it is what prices the study.
    """
    import pandas as pd

    record = json.loads((run / "run.json").read_text())
    method = record["config"]["method"]
    losses = pd.read_parquet(run / "losses.parquet")
    train = losses[losses.split == "train"].sort_values("step")
    wall = train.wall_s.to_numpy(float)
    if len(wall) < 5 or not (np.diff(wall) > 0).all():
        raise SystemExit(f"{run}: need 5 or more training steps in one uninterrupted session")
    dt = np.diff(wall)[len(wall) // 5 :]  # the first steps warm caches (and compile kernels)
    return method, float(np.median(dt)), float(wall[-1] / len(wall))


def profile_seconds(shape: tuple[int, int], rank: int | None, device: str | None) -> float:
    rng = np.random.default_rng(0)
    m, n = shape
    if rank is None:
        x = rng.standard_normal((m, n))
    else:
        x = LowRank(rng.standard_normal((m, rank)), rng.standard_normal((rank, n)))
    entanglement_profile(x, device=device)  # warm-up (and the GPU's first-call costs)
    t0 = time.perf_counter()
    entanglement_profile(x, device=device)
    return time.perf_counter() - t0


#: Measured on one NVIDIA H200 with 16 CPU cores (benchmarks/gpu_suite.py, 2026-11-29,
#: docs/benchmarks.md): seconds for 2 LLaMA-3.1-8B-shaped layers (--modules all, bf16, before
#: the intruder count existed) and for a whole rank-16 q/v adapter (64 updates).
GPU_MEASURED = dict(pair_2_layers=5.14, adapter_64_updates=1.465, when="2026-11-29, H200")


def adapter_layer_seconds(rank: int = 16, with_base: bool = False) -> float:
    """One 8B layer of a q/v LoRA adapter through ``analyse_delta``, timed here (numpy, CPU)."""
    import torch

    from artent.analysis.internal import InternalConfig, analyse_delta
    from artent.models.deltas import Delta

    rng = np.random.default_rng(0)
    cfg = InternalConfig(intruder_k=10 if with_base else 0)
    total = 0.0
    for name, (m, n) in (("q_proj", MODELS["meta-llama/Llama-3.1-8B"]["q"]),
                         ("v_proj", MODELS["meta-llama/Llama-3.1-8B"]["v"])):  # fmt: skip
        B = torch.tensor(rng.standard_normal((m, rank)), dtype=torch.float32)
        A = torch.tensor(rng.standard_normal((rank, n)), dtype=torch.float32)
        base = torch.randn(m, n).to(torch.bfloat16).float() if with_base else None
        delta = Delta(name=f"model.layers.0.self_attn.{name}", layer=0, module=name,
                      update=LowRank(B, A), rows=m, cols=n, rank=rank, kind="lora",
                      is_zero=False, base=base)  # fmt: skip
        t0 = time.perf_counter()
        analyse_delta(delta, cfg)
        total += time.perf_counter() - t0
    return total


def internal_8b_table(path: Path) -> None:
    """The 8B cost table from whole_model.py's figures and the adapter timed here."""
    figures = json.loads(path.read_text())
    pair = figures.get("llama8b")
    if pair is None:
        raise SystemExit(f"{path}: no full-size 8B figures (run whole_model.py --only 8b)")
    layers = MODELS["meta-llama/Llama-3.1-8B"]["layers"]
    per = pair["layers"]
    gib = 1 << 30
    cores = figures.get("machine", {}).get("cores", "?")
    print(f"\n8B internal analysis ({cores} cores here; the GPU where measured)")
    heads = ("work", "per layer s", "32 layers", "peak GiB", "GPU 32 layers")
    print(f"{heads[0]:46s} {heads[1]:>11s} {heads[2]:>10s} {heads[3]:>9s} {heads[4]:>14s}")
    gpu_pair = GPU_MEASURED["pair_2_layers"] / 2 * layers
    for key, what in (("intruder_k=0", "pair, --modules all, no intruder count"),
                      ("intruder_k=10", "pair, --modules all, with intruders")):  # fmt: skip
        row = pair[key]
        gpu = f"{gpu_pair / 60:.1f} min" if key == "intruder_k=0" else "not measured"
        print(f"{what:46s} {row['wall'] / per:11.1f} {row['wall'] / per * layers / 60:8.1f} m "
              f"{row['peak'] / gib:9.2f} {gpu:>14s}")  # fmt: skip
    print(f"{'  floor: eigvalsh at the cut':46s} {pair['floor'] / per:11.1f} "
          f"{pair['floor'] / per * layers / 60:8.1f} m")  # fmt: skip
    print(f"{'  floor: Grams at the balanced bonds':46s} {pair['profile_floor'] / per:11.1f} "
          f"{pair['profile_floor'] / per * layers / 60:8.1f} m")  # fmt: skip
    for with_base in (False, True):
        t = adapter_layer_seconds(with_base=with_base)
        what = "adapter r=16 q/v" + (", with --base (intruders)" if with_base else "")
        gpu = f"{GPU_MEASURED['adapter_64_updates']:.1f} s" if not with_base else "not measured"
        print(f"{what:46s} {t:11.2f} {t * layers / 60:8.1f} m {'':>9s} {gpu:>14s}")
    print(f"(GPU figures: {GPU_MEASURED['when']}; per-layer CPU figures measured, 32 layers "
          "extrapolated)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "config", help="a study config (YAML/JSON), e.g. configs/paper-llama-3.1-8b.yaml"
    )
    ap.add_argument("--calibrate", nargs="*", default=[], help="run folders timed on the target")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100 SXM)")
    ap.add_argument(
        "--mfu", type=float, default=0.35, help="assumed utilisation without --calibrate"
    )
    ap.add_argument("--device", default=None, help="where to time the profiles (cpu, cuda)")
    ap.add_argument("--whole-model", type=Path, help="whole_model.py --json-out figures: 8B table")
    args = ap.parse_args()

    cfg = load_study_config(args.config)
    if cfg.model not in MODELS:
        raise SystemExit(f"config model {cfg.model!r}: not one of {sorted(MODELS)}")
    arch = MODELS[cfg.model]
    runs = cfg.runs()
    tokens_per_step = cfg.batch_size * cfg.seq_len  # upper bound: every row padded to seq_len

    timed = {m: (med, loop) for m, med, loop in map(seconds_per_step, map(Path, args.calibrate))}
    measured = {m: loop for m, (_, loop) in timed.items()}
    print(f"study: {args.config}  model {cfg.model}  {len(runs)} runs x {cfg.steps} steps")
    if measured:
        ref_method, ref_s = next(iter(measured.items()))
        source = ", ".join(
            f"{m} {loop:.3g} s/step measured (loop time; median step {med:.3g} s)"
            for m, (med, loop) in timed.items()
        )
    else:
        achieved = args.mfu * args.peak_tflops * 1e12
        source = (
            f"FLOP model at {args.mfu:g} x {args.peak_tflops:g} TFLOP/s (ASSUMED, not measured)"
        )
    print(f"price: {source}; {tokens_per_step} tokens per step at most\n")

    def step_cost(method: str) -> float:
        if method in measured:
            return measured[method]
        flops = TRAIN_FLOPS_PER_PARAM[method] * arch["params"] * tokens_per_step
        if measured:  # scale a measured method by the FLOP ratio
            ref = TRAIN_FLOPS_PER_PARAM[ref_method] * arch["params"] * tokens_per_step
            return ref_s * flops / ref
        return flops / achieved

    total = 0.0
    print(f"{'run':28s} {'method':6s} {'s/step':>8s} {'hours':>8s}")
    for run in runs:
        s = step_cost(run["method"])
        total += s * run["steps"]
        print(f"{run['name']:28s} {run['method']:6s} {s:8.3g} {s * run['steps'] / 3600:8.3g}")
    print(f"training: {total / 3600:.3g} device-hours ({total:.0f} s)\n")

    checkpoints = sum(len(r["save_steps"]) - 1 for r in runs)  # step 0 is the zero update
    fft_checkpoints = sum(len(r["save_steps"]) - 1 for r in runs if r["method"] == "fft")
    dense = sum(profile_seconds(arch[k], None, args.device) for k in ("q", "v"))
    lowrank = sum(profile_seconds(arch[k], max(cfg.ranks), args.device) for k in ("q", "v"))
    analysis = arch["layers"] * (
        fft_checkpoints * dense + (checkpoints - fft_checkpoints) * lowrank
    )
    print(
        f"internal analysis ({args.device or 'cpu'}, timed here): dense q+v profile {dense:.3g} s, "
        f"factored (rank {max(cfg.ranks)}) {lowrank:.3g} s per layer; {checkpoints} checkpoints x "
        f"{arch['layers']} layers: {analysis / 3600:.3g} hours ({analysis:.0f} s)"
    )
    if args.whole_model:
        internal_8b_table(args.whole_model)


if __name__ == "__main__":
    main()
