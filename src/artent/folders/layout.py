"""The layout of output folders: a training run's checkpoints (and how their folders are
named), and where a study and a sweep keep their runs and their analyses' tables.

Run folder (``artent train``)::

    RUN/run.json                         the command, config and versions (records.py)
    RUN/losses.parquet                   train and held-out losses
    RUN/checkpoints/step-000025/         full weights (FFT) or the adapter (LoRA, MPS)
    RUN/checkpoints/step-000025.tmp/     a checkpoint being written (never read)
    RUN/DONE                             the run finished

One rule names a checkpoint folder: ``step-`` and the step, zero-padded to six digits when
written, any number of digits when read (:data:`STEP_FOLDER`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

#: what made a folder: a training run's config (``artent internal``, ``external``, ``nohair``
#: and the training callback write one too)
RUN_RECORD = "run.json"
CHECKPOINTS = "checkpoints"
#: a complete checkpoint folder's name (``fullmatch``); ``step-000025.tmp`` is not one
STEP_FOLDER = re.compile(r"step-(\d+)")


def step_folder_name(step: int) -> str:
    """The name of the checkpoint folder of ``step`` (``step-000025``)."""
    return f"step-{step:06d}"


def checkpoint_folder(run: str | os.PathLike, step: int) -> Path:
    """Where the checkpoint of ``step`` of ``run`` is (or goes)."""
    return Path(run) / CHECKPOINTS / step_folder_name(step)


def folder_step(name: str) -> int | None:
    """The step of a complete checkpoint folder's name, or ``None`` for any other name."""
    m = STEP_FOLDER.fullmatch(name)
    return int(m.group(1)) if m else None


def checkpoints(run: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(step, folder)`` of the complete checkpoints of ``run``, in step order (none: ``[]``)."""
    folder = Path(run) / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = ((folder_step(p.name), p) for p in folder.iterdir() if p.is_dir())
    return sorted((step, p) for step, p in found if step is not None)


def any_checkpoint(runs: str | os.PathLike) -> bool:
    """Whether any run folder directly under ``runs`` has a complete checkpoint (a study's or a
    sweep's trained work, worth keeping when it fails)."""
    runs = Path(runs)
    return runs.is_dir() and any(checkpoints(p) for p in runs.iterdir() if p.is_dir())


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """artent's cache (named models, converted GGUFs, synthetic data): ``cache_dir``, else
    ``$ARTENT_CACHE``, else ``~/.cache/artent``."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("ARTENT_CACHE") or Path.home() / ".cache" / "artent")


# ----- the folders of many runs ----------------------------------------------------------------

#: a study folder's (``artent demo``) training runs, one run folder each
STUDY_RUNS = "runs"
#: a sweep folder's (``artent sweep``) points, one run folder each
SWEEP_POINTS = "points"
#: a study folder's stage folders: each holds one analysis's saved tables
STUDY_STAGES = {
    "internal": "internal",
    "external": "external",
    "nohair": "nohair",
    "base attention": "attention",  # the base model alone, along T (scaling_len)
    "baselines": "baselines",  # the random-matrix study
}
#: a training run's losses (``step, split, loss, lr``)
LOSSES = "losses.parquet"
#: a study's and a sweep's records, and a sweep's table (one row per point)
STUDY_RECORD = "study.json"
SWEEP_RECORD = "sweep.json"
SWEEP_TABLE = "sweep.parquet"
