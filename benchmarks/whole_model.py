"""Whole-model internal analysis (``--modules all`` on a base/tuned pair): time and memory.

Two pairs, each analysed by ``run_internal`` in a fresh process (so its peak RSS is its own):

* SmolLM2-135M, full fine-tune: its 210 projections, base against the last checkpoint of a short
  FFT run: ``--smollm2-run RUN`` (an artent run folder), else a 2-step run made here when
  ``--model smollm2`` is available (its converted folder in the artent cache), else a random
  float32 pair with SmolLM2's shapes (said so in the output);
* two LLaMA-3.1-8B-shaped layers written here (q 4096^2, k/v 1024 x 4096, o 4096^2, gate/up
  14336 x 4096, down 4096 x 14336; bf16 as 8B checkpoints ship).

Printed against named baselines:

* wall time of the analysis / the sum over matrices of the floor ``eigvalsh`` of the Gram matrix
  at the row|column cut (``M M^T`` or ``M^T M``, whichever is smaller, float64, Gram included,
  reading excluded; each floor's entropy is checked against artent's at the cut). Target on 2
  cores: at most 1.3.
* peak RSS of the analysing process / the largest pair of stored tensors. Target: at most three
  times that pair plus 1 GB.

    python benchmarks/whole_model.py                # both pairs (needs ~4 GB of disk in /tmp)
    python benchmarks/whole_model.py --quick        # 4 SmolLM2 layers, the 8B pair at 1/4 size
    python benchmarks/whole_model.py --workers 1    # default: one worker per core
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from model_shapes import llama8b_shapes, pair_bytes, smollm2_shapes, write_pair  # noqa: E402

CHILD = "--child"


def peak_rss() -> int:
    """This process's peak resident memory in bytes.

    ``VmHWM`` where the platform has it: ``ru_maxrss`` survives ``exec`` on Linux, so a child of
    a large parent would report the parent's peak.
    """
    import resource

    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if platform.system() == "Darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def child(base: str, tuned: str, workers: int, layers: list[int]) -> None:
    """Run in the measured process: the analysis alone, then its figures as one JSON line."""
    from artent.analysis.internal import InternalConfig, Source, run_internal

    rss_imports = peak_rss()
    cfg = InternalConfig(modules="all", layers=layers, workers=workers)
    t0 = time.perf_counter()
    _, summary = run_internal([Source("tuned", None, "pair", tuned, base)], cfg, progress=False)
    wall = time.perf_counter() - t0
    cut = {f"{r.name}.weight": r.center_entropy for r in summary.itertuples()}
    print(json.dumps(dict(wall=wall, peak=peak_rss(), imports=rss_imports, cut=cut)))


def floors(base: Path, tuned: Path, keys: list[str]) -> tuple[float, dict[str, float]]:
    """Sum of the per-matrix floors, and each floor's entropy at the cut (for the check)."""
    from artent.models.checkpoints import open_checkpoint

    total, entropy = 0.0, {}
    with open_checkpoint(base) as b, open_checkpoint(tuned) as t:
        for key in keys:
            delta = (t.get(key) - b.get(key)).double().numpy()  # as artent: float32, then float64
            t0 = time.perf_counter()
            gram = delta @ delta.T if delta.shape[0] <= delta.shape[1] else delta.T @ delta
            ev = np.linalg.eigvalsh(gram)
            total += time.perf_counter() - t0
            p = np.clip(ev, 0, None) / ev.clip(0, None).sum()
            p = p[p > 0]
            entropy[key] = float(-(p * np.log(p)).sum())
            del delta, gram
    return total, entropy


def run_case(name: str, base: Path, tuned: Path, shapes: dict, dtype, workers: int) -> None:
    keys = list(shapes)
    layers = ",".join(sorted({k.split(".")[2] for k in keys}, key=int))
    t_floor, floor_entropy = floors(base, tuned, keys)
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, __file__, CHILD, str(base), str(tuned), str(workers), layers],
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"{name}: the analysis failed:\n{out.stderr}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(res["cut"]) == len(keys), f"{name}: {len(res['cut'])} updates, expected {len(keys)}"
    worst = max(abs(res["cut"][k] - floor_entropy[k]) for k in keys)
    assert worst < 1e-8, f"{name}: artent's entropy at the cut differs from the floor's by {worst}"
    pair = pair_bytes(shapes, dtype)
    gib = 1 << 30
    print(f"\n{name}: {len(keys)} matrices, largest pair of tensors {pair / gib:.2f} GiB")
    print(f"  {'floor sum (eigvalsh of the Gram at the cut)':<46s} {t_floor:8.2f} s")
    print(
        f"  {'artent run_internal, --modules all':<46s} {res['wall']:8.2f} s   "
        f"artent / floor = {res['wall'] / t_floor:.2f} (target <= 1.3 on 2 cores)"
    )
    limit = 3 * pair + gib
    print(
        f"  {'peak RSS of the analysing process':<46s} {res['peak'] / gib:8.2f} GiB "
        f"(at start {res['imports'] / gib:.2f}); target <= 3 x pair + 1 GiB = "
        f"{limit / gib:.2f} GiB: peak / target = {res['peak'] / limit:.2f}"
    )
    print(f"  entropy at the cut: artent = floor to {worst:.1e} nats on every matrix")


def smollm2_pair(run: Path | None, tmp: Path, quick: bool):
    """(base, tuned, description) of a short SmolLM2 FFT run, or ``(None, None, ...)``."""
    from artent.analysis.runs import run_checkpoints

    if run is None:
        from artent.models.smollm2 import RECORD, smollm2_path

        if not (smollm2_path() / RECORD).is_file():
            return None, None, "random weights with SmolLM2's shapes (--model smollm2 not cached)"
        from artent.training.config import TrainConfig
        from artent.training.loop import train

        run = tmp / "smollm2-fft"
        t0 = time.perf_counter()
        train(TrainConfig(method="fft", model="smollm2", out=str(run), steps=2, save_steps=[2],
                          batch_size=2, seq_len=256, n_synthetic=64, eval_batches=1,
                          device="cpu", progress=False))  # fmt: skip
        print(f"(a 2-step SmolLM2 FFT run made in {time.perf_counter() - t0:.0f} s)")
    last = run_checkpoints(run)[-1]
    if not last.is_full:
        raise SystemExit(f"--smollm2-run {run}: a {last.method} run; whole_model needs FFT")
    return Path(last.base), Path(last.path), f"SmolLM2 FFT run, step {last.step}"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == CHILD:
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), [int(i) for i in sys.argv[5].split(",")])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="4 SmolLM2 layers, the 8B pair at 1/4")
    ap.add_argument("--workers", type=int, default=None, help="default: one per core")
    ap.add_argument("--smollm2-run", type=Path, help="an artent FFT run of SmolLM2 to use")
    ap.add_argument("--only", choices=("smollm2", "8b"), help="run one of the two pairs")
    ap.add_argument("--workdir", type=Path, help="where to write the pairs (default: a temp dir)")
    args = ap.parse_args()
    from artent.analysis.internal import available_cores
    from artent.entanglement import lapack

    cores = available_cores()
    workers = args.workers or cores
    print(
        f"artent whole_model on {platform.machine()}, {cores} cores, {workers} workers, numpy "
        f"{np.__version__}, OpenBLAS fast path: {lapack.available()}"
    )
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        tmp = Path(tmp)
        if args.only in (None, "smollm2"):
            shapes = smollm2_shapes(4 if args.quick else 30)
            base, tuned, what = smollm2_pair(args.smollm2_run, tmp, args.quick)
            if base is None:
                base, tuned = write_pair(tmp / "smollm2", shapes, dtype=torch.float32)
            dtype = torch.float32  # artent's FFT checkpoints, and the random pair, are float32
            run_case(f"SmolLM2-135M FFT pair ({what})", base, tuned, shapes, dtype, workers)
        if args.only in (None, "8b"):
            shapes = llama8b_shapes(2, shrink=4 if args.quick else 1)
            t0 = time.perf_counter()
            base, tuned = write_pair(tmp / "llama8b", shapes, dtype=torch.bfloat16)
            size = "1/4-size " if args.quick else ""
            print(f"\n(wrote the {size}8B-shaped bf16 pair in {time.perf_counter() - t0:.0f} s)")
            run_case(f"LLaMA-3.1-8B-shaped {size}pair, 2 layers (bf16, random)", base, tuned,
                     shapes, torch.bfloat16, workers)  # fmt: skip


if __name__ == "__main__":
    main()
