"""Compare every Parquet table of two run folders: same files, same columns, same rows.

Floats agree to ``--atol`` (default 1e-10); wall-clock and path columns are skipped, since
they differ between any two runs. Exit 0 when the folders agree, 1 otherwise, naming each
difference.

    python scripts/compare_tables.py BEFORE_DIR AFTER_DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

# Columns that record when or where a run happened, not what it measured.
SKIP = {"seconds", "wall_s", "elapsed_s", "time_s", "path", "out", "run_dir", "created"}


def tables(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*.parquet"))}


def relative(frame: pd.DataFrame, root: Path) -> pd.DataFrame:
    """Paths inside the run folder, written relative to it (two runs live in two folders)."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].astype(str).str.replace(str(root.resolve()), "<run>", regex=False)
            out[col] = out[col].str.replace(str(root), "<run>", regex=False)
    return out


def compare(a: pd.DataFrame, b: pd.DataFrame, atol: float) -> list[str]:
    problems = []
    if list(a.columns) != list(b.columns):
        return [f"columns differ: {sorted(set(a.columns) ^ set(b.columns))}"]
    if len(a) != len(b):
        return [f"{len(a)} rows against {len(b)}"]
    for col in a.columns:
        if col in SKIP:
            continue
        x, y = a[col], b[col]
        if pd.api.types.is_float_dtype(x) and pd.api.types.is_float_dtype(y):
            xv, yv = x.to_numpy(float), y.to_numpy(float)
            same_nan = np.isnan(xv) == np.isnan(yv)
            ok = np.isnan(xv) | (np.abs(xv - yv) <= atol * np.maximum(1.0, np.abs(xv)))
            if not (same_nan.all() and ok.all()):
                worst = np.nanmax(np.abs(xv - yv))
                problems.append(f"{col}: up to {worst:.3g} apart")
        elif not x.astype(str).equals(y.astype(str)):
            problems.append(f"{col}: values differ")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--atol", type=float, default=1e-10, help="relative above 1, absolute below")
    args = ap.parse_args()
    ta, tb = tables(args.before), tables(args.after)
    bad = 0
    for name in sorted(set(ta) | set(tb)):
        if name not in ta or name not in tb:
            print(f"{name}: only in {'after' if name in tb else 'before'}")
            bad += 1
            continue
        a = relative(pd.read_parquet(ta[name]), args.before)
        b = relative(pd.read_parquet(tb[name]), args.after)
        problems = compare(a, b, args.atol)
        for p in problems:
            print(f"{name}: {p}")
        bad += bool(problems)
    print(f"{len(set(ta) & set(tb))} tables compared, {bad} differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
