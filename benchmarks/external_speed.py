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
The issue's target on a quiet 2-core machine (SmolLM2, 8 windows, T = 128): total <= 60 s,
stage >= half of the total.

    python benchmarks/external_speed.py                       # SmolLM2 (or tiny), 8 x T=128
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--model", default=None, help="smollm2 (default where available), tiny, a folder"
    )
    ap.add_argument("--windows", type=int, default=8, help="--n-texts: windows of T tokens")
    ap.add_argument("--seq-len", type=int, default=128, help="T")
    ap.add_argument("--device", default="cpu", help="torch device (default cpu)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 windows, T = 32")
    args = ap.parse_args()
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
        corpus = _corpus(Path(tmp) / "corpus.txt", n_docs=8 * args.windows)
        timers.wrap_eigvalsh()
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
