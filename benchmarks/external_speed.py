"""End-to-end speed of `artent external`, and the share of it spent in the eigen-solves.

The run is the CLI with its defaults except the sizes: both encodings, both site orders, the
length scaling and the random-attention baseline, on ``--windows`` windows of ``--seq-len``
tokens of a generated corpus. Model: SmolLM2 (``--model smollm2``) where artent has it, else the
tiny model (say which with ``--model``).

Printed:
  total        imports (torch, transformers, pandas, artent's analysis) + the CLI call, which
               loads the model, measures, fits, writes the tables and draws the figure
  phases       model load, measurement (forward passes + profiles), figure, the rest
  stage        time inside batched_matrix_spectra: Gram matrices, partial traces, eigen-solves
  eigvalsh     time inside torch.linalg.eigvalsh during the run
  floor        eigvalsh alone, re-run on the very same reduced density matrices (each right after
               its first solve; excluded from the total)
  peak RSS     of the process (``VmHWM``), imports included
  profile floor  the profiles' own floor: one dense ``entanglement_profile`` of a ``T x T``
               causal attention map, best of 3, times the maps profiled at ``T`` (heads x
               windows x encodings x orders)
The issue's target on a quiet 2-core machine (SmolLM2, 8 windows, T = 128): total <= 60 s,
stage >= half of the total. ``--long`` runs the long-attention rows instead, each in a fresh
process (its own peak RSS): one window of T = 512 and of T = 2048, amplitude encoding,
sequential order (issue 21's target at T = 2048: measurement <= 1.5x the profile floor, peak RSS
<= 2.5 GB).

    python benchmarks/external_speed.py                       # SmolLM2 (or tiny), 8 x T=128
    python benchmarks/external_speed.py --long                # T = 512 and 2048 rows
    python benchmarks/external_speed.py --model tiny --quick  # a smoke run: 2 windows, T = 32
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402


def _imports() -> float:
    """Import what the CLI imports for `external`; the seconds it took since process start."""
    import pandas  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    import artent.analysis.external  # noqa: F401
    import artent.cli  # noqa: F401
    import artent.models.loading  # noqa: F401

    return time.perf_counter() - T_START


def _default_model() -> str:
    return "smollm2" if importlib.util.find_spec("artent.models.smollm2") else "tiny"


def _corpus(path: Path, n_docs: int) -> Path:
    from artent.data.generators import pretraining_corpus

    docs = [" ".join(d.split()) for d in pretraining_corpus(n_docs, seed=11)]
    path.write_text("\n\n".join(docs) + "\n")
    return path


class Timers:
    """Wraps the functions whose time is reported; the floor re-runs are kept out of the total."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.floor = 0.0
        self.floor_solves = 0

    def add(self, key: str, seconds: float) -> None:
        self.seconds[key] = self.seconds.get(key, 0.0) + seconds
        self.calls[key] = self.calls.get(key, 0) + 1

    def wrap(self, module, name: str, key: str) -> None:
        original = getattr(module, name)

        def timed(*args, **kwargs):
            t0, floor0 = time.perf_counter(), self.floor
            try:
                return original(*args, **kwargs)
            finally:  # the floor re-runs inside the call are not the call's time
                self.add(key, time.perf_counter() - t0 - (self.floor - floor0))

        setattr(module, name, timed)

    def wrap_eigvalsh(self) -> None:
        import torch

        original = torch.linalg.eigvalsh

        def timed(matrix, *args, **kwargs):
            t0 = time.perf_counter()
            out = original(matrix, *args, **kwargs)
            self.add("eigvalsh", time.perf_counter() - t0)
            copy = matrix.contiguous().clone()
            t1 = time.perf_counter()
            original(copy, *args, **kwargs)  # the floor: the same matrices, nothing else
            self.floor += time.perf_counter() - t1
            self.floor_solves += 1
            return out

        torch.linalg.eigvalsh = timed

    def wrap_numpy_eigvalsh(self) -> None:
        """The numpy engine's eigen-solves (large maps on the CPU), timed, not re-run."""
        from artent.entanglement.backend import NumpyBackend

        original = NumpyBackend.eigvalsh

        def timed(h, overwrite=False):
            t0 = time.perf_counter()
            try:
                return original(h, overwrite=overwrite)
            finally:
                self.add("eigvalsh", time.perf_counter() - t0)

        NumpyBackend.eigvalsh = staticmethod(timed)


def profile_floor(t: int) -> float:
    """Seconds of one dense profile of a ``t x t`` causal attention map (best of 3)."""
    import numpy as np

    from artent.entanglement.profile import entanglement_profile
    from artent.entanglement.rmt import random_attention

    a = np.asarray(random_attention(t, 1.0, causal=True, rng=np.random.default_rng(0)))
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        entanglement_profile(a, order="sequential")
        best = min(best, time.perf_counter() - t0)
    return best


def long_rows(args) -> None:
    """The T = 512 and 2048 rows, each a fresh process running this script."""
    import json
    import subprocess
    import sys

    print(
        f"{'T':>5s} {'total s':>8s} {'measure s':>9s} {'floor s':>8s} {'measure/floor':>13s} "
        f"{'eig/total':>9s} {'peak RSS GB':>11s}"
    )
    for t in (512, 2048):
        cmd = [sys.executable, __file__, "--windows", "1", "--seq-len", str(t),
               "--encodings", "amplitude", "--orders", "sequential", "--device", args.device,
               "--json"]  # fmt: skip
        if args.model:
            cmd += ["--model", args.model]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"T = {t}: the run failed:\n{out.stderr[-3000:]}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{t:5d} {r['total']:8.1f} {r['measurement']:9.1f} {r['floor']:8.1f} "
            f"{r['measurement'] / r['floor']:13.2f} {r['eig_share']:9.0%} "
            f"{r['peak_rss'] / 1e9:11.2f}",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--model", default=None, help="smollm2 (default where available), tiny, a folder"
    )
    ap.add_argument("--windows", type=int, default=8, help="--n-texts: windows of T tokens")
    ap.add_argument("--seq-len", type=int, default=128, help="T")
    ap.add_argument("--device", default="cpu", help="torch device (default cpu)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 windows, T = 32")
    ap.add_argument("--encodings", default="amplitude,born")
    ap.add_argument("--orders", default="sequential,interleaved")
    ap.add_argument("--long", action="store_true", help="the T = 512 and 2048 rows")
    ap.add_argument("--json", action="store_true", help="one JSON line (what --long reads)")
    args = ap.parse_args()
    if args.long:
        return long_rows(args)
    if args.quick:
        args.windows, args.seq_len = 2, 32
    t_imports = _imports()

    import torch

    from artent.analysis import external as external_pkg
    from artent.analysis.external import measure
    from artent.cli import main as cli_main
    from artent.entanglement import batched
    from artent.models import loading

    model = args.model or _default_model()
    # Prepared outside the timing: a converted or pretrained model in artent's cache.
    loading.load_base(model)
    timers = Timers()
    timers.wrap(loading, "load_for_forward", "model load")
    timers.wrap(measure, "measure_attention", "measurement")
    timers.wrap(external_pkg, "plot_external", "figure")
    timers.wrap(batched, "batched_matrix_spectra", "stage")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = _corpus(Path(tmp) / "corpus.txt", n_docs=max(8, args.seq_len // 25) * args.windows)
        timers.wrap_eigvalsh()
        timers.wrap_numpy_eigvalsh()
        t0 = time.perf_counter()
        code = cli_main(
            [
                "external",
                "--model",
                model,
                "--texts",
                str(corpus),
                "--seq-len",
                str(args.seq_len),
                "--n-texts",
                str(args.windows),
                "--device",
                args.device,
                "--encodings",
                args.encodings,
                "--orders",
                args.orders,
                "--out",
                str(Path(tmp) / "out"),
            ]
        )
        t_cli = time.perf_counter() - t0 - timers.floor
    if code != 0:
        raise SystemExit(f"artent external failed with exit code {code}")
    total = t_imports + t_cli
    s = timers.seconds
    rest = t_cli - s.get("model load", 0) - s.get("measurement", 0) - s.get("figure", 0)
    if args.json:
        import json

        from artent.models.attention import attention_layers
        from whole_model import peak_rss  # this folder is on the path: run as a script

        base = loading.load_base(model)[0]
        heads = base.config.num_attention_heads * len(attention_layers(base))
        maps = heads * args.windows * len(args.encodings.split(",")) * len(args.orders.split(","))
        print(json.dumps(dict(
            total=total, measurement=s.get("measurement", 0.0), eig=s.get("eigvalsh", 0.0),
            eig_share=s.get("eigvalsh", 0.0) / total,
            floor=maps * profile_floor(args.seq_len), maps=maps, peak_rss=peak_rss(),
        )))  # fmt: skip
        return
    print(
        f"artent external on {model}: {args.windows} windows of T = {args.seq_len}, both "
        f"encodings and orders, scaling and baseline; {platform.machine()}, "
        f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}, device {args.device}"
    )
    print(f"total           {total:7.1f} s   (target <= 60 s for SmolLM2, 8 x T=128)")
    print(f"  imports       {t_imports:7.1f} s")
    for key in ("model load", "measurement", "figure"):
        print(f"  {key:13s} {s.get(key, 0.0):7.1f} s")
    print(f"  rest          {rest:7.1f} s   (tables, fits, baseline, parquet, the CLI)")
    stage, eig = s.get("stage", 0.0), s.get("eigvalsh", 0.0)
    print(
        f"stage           {stage:7.1f} s = {stage / total:.0%} of total   (target >= 50%; "
        f"{timers.calls.get('stage', 0)} batched_matrix_spectra calls)"
    )
    print(f"  eigvalsh      {eig:7.1f} s = {eig / total:.0%} of total")
    print(
        f"floor           {timers.floor:7.1f} s   (eigvalsh alone on the same "
        f"{timers.floor_solves} batches of reduced density matrices; stage / floor = "
        f"{stage / max(timers.floor, 1e-9):.2f})"
    )


if __name__ == "__main__":
    main()
