"""Wall time of a 4-point LoRA sweep through Ray against the same runs one after another.

Each point is a short LoRA run of a small tiny LLaMA followed by the internal analysis of its
final checkpoint. The baseline runs the points in this process, one after another (torch's
default threads); the local process pool and a local Ray (``ray.init(num_cpus=workers)``, one
torch thread per task) run the same points in fresh sweep folders. Ray's time includes starting
and stopping Ray, which is what a user of ``artent sweep --ray local`` pays.

    python benchmarks/sweep_overhead.py                  # pretrains a small tiny model first
    python benchmarks/sweep_overhead.py --model DIR --steps 20 --workers 4
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

# the package's small tiny preset (artent demo --quick)
from artent.pipelines.study_config import QUICK_TINY
from artent.pipelines.sweep import SweepSpec, run_sweep


def timed(spec: SweepSpec, out: Path, **kwargs) -> float:
    t0 = time.perf_counter()
    table = run_sweep(spec, out, **kwargs)
    wall = time.perf_counter() - t0
    if not (table.status == "ok").all():
        raise SystemExit(f"sweep in {out} had failures: {table.error.dropna().tolist()}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (default: pretrain a small tiny model)")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ.setdefault("ARTENT_CACHE", str(root / "cache"))
        model = args.model
        if model is None:
            from artent.models.tiny import pretrain_tiny

            model = str(pretrain_tiny(root / "model", progress=False, **QUICK_TINY))
        spec = SweepSpec(
            base=dict(
                method="lora",
                model=model,
                steps=args.steps,
                batch_size=4,
                seq_len=256,
                n_synthetic=200,
                save_steps=[0, args.steps],
                eval_every=0,
            ),
            grid={"rank": [2, 4], "lr": [3e-3, 6e-3]},
        )
        sequential = timed(spec, root / "sequential")
        pool = timed(spec, root / "pool", workers=args.workers)
        try:
            import ray  # noqa: F401

            on_ray = timed(spec, root / "ray", ray="local", workers=args.workers)
        except ImportError:
            on_ray = None
    print(f"4 points, {args.steps} steps each, {args.workers} workers, {os.cpu_count()} cores")
    print(f"one after another      {sequential:7.2f} s   1.00x")
    print(f"process pool           {pool:7.2f} s   {pool / sequential:.2f}x")
    if on_ray is None:
        print("ray                    not installed (pip install 'artent[ray]')")
    else:
        print(f"ray (incl. start/stop) {on_ray:7.2f} s   {on_ray / sequential:.2f}x")


if __name__ == "__main__":
    main()
