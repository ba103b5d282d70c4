"""Speed of entanglement_profile, printed as ratios against named baselines in one run.

Baselines:
  svd-per-bond   one numpy SVD (values only) of the full state reshaped at every bond
  quimb          quimb's MatrixProductState.from_dense, then .entropy(l) at every bond
  floor          eigvalsh(M @ M.T): the spectrum of the row|column bond alone, a lower bound
  dense          artent's own dense path on B @ A (for the factored LoRA path)

Every timing is the best of ``--repeats`` runs (one run for the slow baselines), and every
baseline's answer is checked against artent's before its time is reported.

    python benchmarks/profile_speed.py            # 2048 and 4096 (the 4096 SVD baseline: minutes)
    python benchmarks/profile_speed.py --quick    # 1024 and 2048 only
    python benchmarks/profile_speed.py --numpy-only --no-svd --no-quimb   # without lapack.py
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from math import log

import numpy as np

from artent import LowRank, entanglement_profile


def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def svd_per_bond(M: np.ndarray) -> np.ndarray:
    psi = (M / np.linalg.norm(M)).ravel()
    n = int(round(np.log2(psi.size)))
    out = []
    for l in range(1, n):
        s = np.linalg.svd(psi.reshape(2**l, -1), compute_uv=False)
        p = s[s > 0] ** 2
        out.append(-(p * np.log(p)).sum())
    return np.array(out)


def quimb_profile(M: np.ndarray) -> np.ndarray:
    import quimb.tensor as qtn

    psi = (M / np.linalg.norm(M)).ravel()
    n = int(round(np.log2(psi.size)))
    mps = qtn.MatrixProductState.from_dense(psi, [2] * n)
    return np.array([mps.entropy(l) for l in range(1, n)]) * log(2)  # quimb reports bits


def floor(M: np.ndarray) -> np.ndarray:
    return np.linalg.eigvalsh(M @ M.T)


def bench_dense(n: int, repeats: int, with_svd: bool, with_quimb: bool) -> None:
    rng = np.random.default_rng(0)
    M = rng.standard_normal((n, n))
    qubits = 2 * int(round(np.log2(n)))
    print(f"\ndense {n} x {n} ({qubits} qubits)")
    t_art, prof = best_time(lambda: entanglement_profile(M), repeats)
    t_floor, _ = best_time(lambda: floor(M), repeats)
    print(f"  {'artent entanglement_profile':<34s} {t_art:9.3f} s")
    print(
        f"  {'floor eigvalsh(M @ M.T)':<34s} {t_floor:9.3f} s   "
        f"artent / floor = {t_art / t_floor:.2f}"
    )
    if with_quimb:
        try:
            t_q, q = best_time(lambda: quimb_profile(M), 1)
            assert np.allclose(q, prof, atol=1e-8), "quimb disagrees with artent"
            print(
                f"  {'quimb MPS.from_dense + entropy':<34s} {t_q:9.3f} s   ratio quimb / artent = "
                f"{t_q / t_art:.2f}"
            )
        except ImportError:
            print("  quimb not installed: `pip install -e '.[bench]'` (baseline skipped)")
    if with_svd:
        t_s, s = best_time(lambda: svd_per_bond(M), 1)
        assert np.allclose(s, prof, atol=1e-8), "svd-per-bond disagrees with artent"
        print(
            f"  {'one SVD per bond':<34s} {t_s:9.3f} s   ratio svd-per-bond / artent = "
            f"{t_s / t_art:.2f}"
        )


def bench_lora(n: int, rank: int, repeats: int) -> None:
    rng = np.random.default_rng(rank)
    B, A = rng.standard_normal((n, rank)), rng.standard_normal((rank, n))
    lr = LowRank(B, A, scale=2.0)
    t_f, pf = best_time(lambda: entanglement_profile(lr), repeats)
    t_d, pd = best_time(lambda: entanglement_profile(B @ A), 1)
    assert np.allclose(pf, pd, atol=1e-8), "factored path disagrees with dense"
    print(f"\nLoRA {n} x {n}, rank {rank}")
    print(f"  {'artent LowRank (factored)':<34s} {t_f:9.4f} s")
    print(
        f"  {'artent dense on B @ A':<34s} {t_d:9.3f} s   ratio dense / factored = {t_d / t_f:.1f}"
    )
    print(f"  a LLaMA-3.1-8B q/v adapter (64 such matrices) at this rank: ~{64 * t_f:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1024 and 2048 only")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-svd", action="store_true", help="skip the slow SVD-per-bond baseline")
    ap.add_argument("--no-quimb", action="store_true")
    ap.add_argument(
        "--numpy-only",
        action="store_true",
        help="plain numpy (no two-stage eigensolver or accumulating syrk): the path before them",
    )
    args = ap.parse_args()
    if args.numpy_only:
        os.environ["ARTENT_NO_LAPACK"] = "1"  # read when artent first needs the routines
    from artent.entanglement import lapack

    print(
        f"artent profile_speed on {platform.machine()} with {os.cpu_count()} cores, "
        f"numpy {np.__version__}, OpenBLAS fast path: {lapack.available()}"
    )
    sizes = [1024, 2048] if args.quick else [2048, 4096]
    for n in sizes:
        bench_dense(n, args.repeats, not args.no_svd, not args.no_quimb)
    for rank in (16, 64):
        bench_lora(4096, rank, args.repeats)


if __name__ == "__main__":
    main()
