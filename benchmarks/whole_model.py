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
  cores (issue 21): at most 1.5.
* the same against the *profile floor*: the Gram and ``eigvalsh`` at each side's most balanced
  bond, the two matrices the whole profile cannot do without. It differs from the cut's where the
  cut is not the most balanced bond: ``k/v`` (1024 x 4096: order 2048, not 1024) and ``down``
  (4096 x 14336 = 2^12 x 2^11 * 7: the column side's bond 13 needs order 7168).
* both with the intruder count (the default for a pair: every left singular vector of ``W``,
  the top 10 of ``W + dW``) and without it (``intruder_k=0``), so the companion's cost shows.
* peak RSS of the analysing process / the largest pair of stored tensors. Target: at most three
  times that pair plus 1 GB.

    python benchmarks/whole_model.py                # both pairs (needs ~4 GB of disk in /tmp)
    python benchmarks/whole_model.py --quick        # 4 SmolLM2 layers, the 8B pair at 1/4 size
    python benchmarks/whole_model.py --workers 1    # default: one worker per core
    python benchmarks/whole_model.py --only 8b --layers 1 --json-out whole_model.json
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


def child(base: str, tuned: str, workers: int, layers: list[int], intruder_k: int) -> None:
    """Run in the measured process: the analysis alone, then its figures as one JSON line."""
    from artent.analysis.internal import InternalConfig, Source, run_internal

    rss_imports = peak_rss()
    cfg = InternalConfig(modules="all", layers=layers, workers=workers, intruder_k=intruder_k)
    t0 = time.perf_counter()
    _, summary = run_internal([Source("tuned", None, "pair", tuned, base)], cfg, progress=False)
    wall = time.perf_counter() - t0
    cut = {f"{r.name}.weight": r.center_entropy for r in summary.itertuples()}
    print(json.dumps(dict(wall=wall, peak=peak_rss(), imports=rss_imports, cut=cut)))


def balanced_grams(shape: tuple[int, int]) -> list[tuple[int, int, str]]:
    """The Gram matrices the sequential profile must form: ``(rows, cols, side)`` of the state
    reshaped at each side's most balanced bond (as ``chain_spectra`` chooses them)."""
    from math import prod

    from artent.entanglement.sites import matrix_layout

    dims = matrix_layout(shape, order="sequential").dims
    total, n = prod(dims), len(dims)
    left = [prod(dims[:l]) for l in range(n + 1)]
    lefts = [l for l in range(1, n) if left[l] <= total // left[l]]
    rights = [l for l in range(1, n) if left[l] > total // left[l]]
    out = [(left[lefts[-1]], total // left[lefts[-1]], "rows")] if lefts else []
    if rights:
        out.append((left[rights[0]], total // left[rights[0]], "cols"))
    return out


def floors(base: Path, tuned: Path, keys: list[str]) -> tuple[float, float, dict[str, float]]:
    """Sums of the per-matrix floors (at the cut; at the balanced bonds), and each cut floor's
    entropy (for the check)."""
    from artent.models.checkpoints import open_checkpoint

    total, profile_total, entropy = 0.0, 0.0, {}
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
            del gram
            for rows, cols, side in balanced_grams(delta.shape):
                x = delta.reshape(rows, cols)
                t0 = time.perf_counter()
                np.linalg.eigvalsh(x @ x.T if side == "rows" else x.T @ x)
                profile_total += time.perf_counter() - t0
            del delta
    return total, profile_total, entropy


def analyse(name: str, base: Path, tuned: Path, workers: int, layers: str, k: int) -> dict:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, __file__, CHILD, str(base), str(tuned), str(workers), layers, str(k)],
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"{name}: the analysis failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_case(name: str, base: Path, tuned: Path, shapes: dict, dtype, workers: int) -> dict:
    keys = list(shapes)
    layers = ",".join(sorted({k.split(".")[2] for k in keys}, key=int))
    t_floor, t_profile_floor, floor_entropy = floors(base, tuned, keys)
    pair = pair_bytes(shapes, dtype)
    gib = 1 << 30
    limit = 3 * pair + gib
    print(f"\n{name}: {len(keys)} matrices, largest pair of tensors {pair / gib:.2f} GiB")
    print(f"  {'floor sum (eigvalsh of the Gram at the cut)':<50s} {t_floor:8.2f} s")
    print(f"  {'profile floor (Gram + eigvalsh, balanced bonds)':<50s} {t_profile_floor:8.2f} s")
    rows = {}
    for k, what in ((0, "without intruders (intruder_k=0)"), (10, "with intruders (default)")):
        res = analyse(name, base, tuned, workers, layers, k)
        assert len(res["cut"]) == len(keys), f"{name}: {len(res['cut'])} updates, not {len(keys)}"
        worst = max(abs(res["cut"][key] - floor_entropy[key]) for key in keys)
        assert worst < 1e-8, f"{name}: artent's entropy at the cut is off the floor's by {worst}"
        print(
            f"  {'artent --modules all, ' + what:<50s} {res['wall']:8.2f} s   / cut floor "
            f"{res['wall'] / t_floor:.2f} (target <= 1.5), / profile floor "
            f"{res['wall'] / t_profile_floor:.2f}; peak RSS {res['peak'] / gib:.2f} GiB "
            f"(target <= 3 x pair + 1 GiB = {limit / gib:.2f})"
        )
        rows[f"intruder_k={k}"] = dict(wall=res["wall"], peak=res["peak"], worst=worst)
    print(f"  entropy at the cut: artent = floor to {worst:.1e} nats on every matrix")
    return dict(matrices=len(keys), layers=len(layers.split(",")), floor=t_floor,
                profile_floor=t_profile_floor, pair_bytes=pair, **rows)  # fmt: skip


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
        layers = [int(i) for i in sys.argv[5].split(",")]
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), layers, int(sys.argv[6]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="4 SmolLM2 layers, the 8B pair at 1/4")
    ap.add_argument("--workers", type=int, default=None, help="default: one per core")
    ap.add_argument("--smollm2-run", type=Path, help="an artent FFT run of SmolLM2 to use")
    ap.add_argument("--only", choices=("smollm2", "8b"), help="run one of the two pairs")
    ap.add_argument("--workdir", type=Path, help="where to write the pairs (default: a temp dir)")
    ap.add_argument("--layers", type=int, default=2, help="8B-shaped layers (default 2)")
    ap.add_argument("--json-out", type=Path, help="the figures as JSON (study_cost.py reads it)")
    args = ap.parse_args()
    figures = {}
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
            figures["smollm2"] = run_case(
                f"SmolLM2-135M FFT pair ({what})", base, tuned, shapes, dtype, workers
            )
        if args.only in (None, "8b"):
            shapes = llama8b_shapes(args.layers, shrink=4 if args.quick else 1)
            t0 = time.perf_counter()
            base, tuned = write_pair(tmp / "llama8b", shapes, dtype=torch.bfloat16)
            size = "1/4-size " if args.quick else ""
            print(f"\n(wrote the {size}8B-shaped bf16 pair in {time.perf_counter() - t0:.0f} s)")
            figures["llama8b" + ("_quarter" if args.quick else "")] = run_case(
                f"LLaMA-3.1-8B-shaped {size}pair, {args.layers} layer(s) (bf16, random)", base,
                tuned, shapes, torch.bfloat16, workers)  # fmt: skip
    if args.json_out:
        figures["machine"] = dict(cores=cores, workers=workers, numpy=np.__version__)
        args.json_out.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
