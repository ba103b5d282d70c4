"""One point of a sweep: its folder, its training run, its analyses and its result row.

Shared by the sweep (:mod:`artent.pipelines.sweep`) and the workers that run points apart
(:mod:`artent.pipelines.sweep_workers`).
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from artent.analysis.external import ExternalConfig
from artent.analysis.external.jobs import measure_checkpoint
from artent.analysis.internal import InternalConfig, run_internal, sources_from_run
from artent.analysis.runs import run_checkpoints
from artent.data.corpus import read_corpus
from artent.errors import one_line
from artent.folders.atomic import write_json
from artent.folders.layout import LOSSES, SWEEP_POINTS
from artent.folders.records import read_record, read_table
from artent.results import External, Internal
from artent.training.config import TrainConfig
from artent.training.loop import RunFinished, train

SUMMARY_METRICS = ("center_entropy", "valley_depth", "volume_slope")
#: Row columns of the attention analysis (amplitude encoding, sequential order, means over heads).
ATTENTION_METRICS = ("attention_c", "attention_center_entropy", "attention_area_log_share")
#: a point's result row, written last: a point with an ``ok`` row is skipped on a rerun
ROW_FILE = "row.json"


def value_label(value: Any) -> str:
    """A grid value as a point's name shows it (a list: its items joined by ``+``)."""
    if isinstance(value, list | tuple):
        return "+".join(value_label(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


#: Longest point folder name kept as it is (file systems allow 255 bytes a name).
MAX_FOLDER_NAME = 120


def point_folder_name(name: str) -> str:
    """The folder of the point ``name`` under ``points/``: one level and portable (data paths
    and the like may hold '/' or spaces), a long name shortened by a digest of the whole."""
    folder = re.sub(r"[^A-Za-z0-9._=,+-]", "_", name)
    if len(folder) <= MAX_FOLDER_NAME:
        return folder
    # a long but legal grid value (a deep data path): a prefix and a digest of the whole name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{folder[: MAX_FOLDER_NAME - 17]}-{digest}"


def row_base(point: dict[str, Any], grid_keys: list[str]) -> dict[str, Any]:
    """The columns of a point's row that name it: its name and its grid values."""
    return {
        "name": point["name"],
        **{k: value_label(point[k]) if isinstance(point[k], list) else point[k] for k in grid_keys},
    }


def _final_losses(run: Path) -> tuple[float, float]:
    losses = read_table(run / LOSSES)
    out = []
    for split in ("train", "heldout"):
        sub = losses[losses.split == split].sort_values("step")
        out.append(float(sub.loss.iloc[-1]) if len(sub) else float("nan"))
    return out[0], out[1]


def _internal_means(run: Path, point: dict[str, Any], internal: dict[str, Any]) -> dict[str, Any]:
    opts = dict(internal)
    if "modules" not in opts and point.get("method", "lora") != "fft" and point.get("targets"):
        opts["modules"] = point["targets"]
    final = sources_from_run(run)[-1:]
    result = Internal(*run_internal(final, InternalConfig(**opts), progress=False))
    result.save(run)  # read by `artent report` on the sweep
    summary = result.summary
    ok = summary[summary.status == "ok"]
    means = {m: float(np.nanmean(ok[m])) if len(ok) else float("nan") for m in SUMMARY_METRICS}
    bounds = ok.within_bound.dropna()
    means["within_bound_all"] = bool(bounds.all()) if len(bounds) else None
    return means


def _external_means(run: Path, external: dict[str, Any]) -> dict[str, Any]:
    """The attention analysis of a run's final checkpoint on the spec's corpus, and its means."""
    corpus = read_corpus(external["texts"])
    cfg = ExternalConfig(**{k: v for k, v in external.items() if k != "texts"})
    notes: list[str] = []
    last = run_checkpoints(run)[-1]
    tables = measure_checkpoint(last, corpus, cfg, label=run.name, notify=notes.append)
    External(**tables).save(run)  # read by `artent report` on the sweep
    s = tables["external_summary"]
    s = s[(s.encoding == cfg.encodings[0]) & (s.order == cfg.orders[0])]
    return {
        "attention_c": float(np.mean(s.c)),
        "attention_center_entropy": float(np.mean(s.center_entropy)),
        "attention_area_log_share": float(np.mean(s.law == "area+log")),
        "attention_note": notes[0] if notes else None,
    }


def run_point(
    point: dict[str, Any],
    out_dir: str | Path,
    *,
    grid_keys: list[str] | None = None,
    internal: dict[str, Any] | None = None,
    external: dict[str, Any] | None = None,
    single_thread: bool = False,
) -> dict[str, Any]:
    """Train one point into ``out_dir/points/<name>``, analyse its final checkpoint, return its row.

    Never raises for a failing point: the row then has ``status="failed"`` and the exception's
    first line in ``error``. An ``ok`` row already on disk is returned as is (``reused=True``).

    Args:
        point: one entry of :func:`~artent.pipelines.sweep.expand` (``name``, TrainConfig options).
        out_dir: the sweep folder.
        grid_keys: options copied into the row (default: every option of the point).
        internal: InternalConfig options for the analysis.
        external: the spec's ``external`` section (``texts`` and ExternalConfig options); empty
            or ``None``: no attention analysis.
        single_thread: ``torch.set_num_threads(1)``, for workers sharing the machine's cores.
    """
    run = point_folder(out_dir, point)
    keys = grid_keys if grid_keys is not None else [k for k in point if k != "name"]
    record = run / ROW_FILE
    if record.is_file():
        row = read_record(record)
        if row.get("status") == "ok":
            return {**row, "reused": True}
    row = {
        **row_base(point, keys),
        "status": "ok",
        "error": None,
        "train_loss": float("nan"),
        "heldout_loss": float("nan"),
        **{m: float("nan") for m in SUMMARY_METRICS},
        "within_bound_all": None,
        **({m: float("nan") for m in ATTENTION_METRICS} if external else {}),
        **({"attention_note": None} if external else {}),
        "wall_s": float("nan"),
        "run": str(run),
    }
    t0 = time.perf_counter()
    try:
        if single_thread:
            import torch  # lazy: only a worker sharing the cores sets it

            torch.set_num_threads(1)
        options = {k: v for k, v in point.items() if k != "name"}
        cfg = TrainConfig(**options, out=str(run), progress=False)
        try:
            train(cfg)
        except RunFinished:
            pass  # trained before the analysis was interrupted: only analyse
        row["train_loss"], row["heldout_loss"] = _final_losses(run)
        row.update(_internal_means(run, point, internal or {}))
        if external:
            row.update(_external_means(run, external))
    except Exception as e:  # noqa: BLE001 - one failing point must not stop the sweep
        row.update(status="failed", error=one_line(e, typed=True))
    row["wall_s"] = time.perf_counter() - t0
    write_json(record, row)
    return {**row, "reused": False}


def point_folder(out_dir: str | Path, point: dict[str, Any]) -> Path:
    """The run folder of ``point`` in the sweep folder ``out_dir``."""
    return Path(out_dir) / SWEEP_POINTS / point_folder_name(point["name"])


def failed_row(point: dict, out: Path, grid_keys: list[str], why: str) -> dict:
    """The row of a point whose worker gave none, written to its folder so a rerun retries it."""
    run = point_folder(out, point)
    row = {
        **row_base(point, grid_keys),
        "status": "failed",
        "error": f"WorkerDied: {why}",
        "run": str(run),
    }
    write_json(run / ROW_FILE, row)
    return {**row, "reused": False}
