"""Grids of fine-tuning runs, each followed by its internal analysis; locally or on Ray.

Sweep folder::

    DIR/sweep.json                 the spec, the expanded points, versions
    DIR/points/<name>/             one artent training run per point (resumes on its own)
    DIR/points/<name>/internal.parquet, internal_summary.parquet   its final checkpoint's analysis
    DIR/points/<name>/external*.parquet, scaling.parquet, baseline.parquet   its attention
                                   analysis, when the spec has an ``external`` section
    DIR/points/<name>/row.json     the point's result row, written last: a point with an ``ok``
                                   row is skipped on a rerun; a failed point is retried
    DIR/sweep.parquet              one row per point (options, status, error, losses, valley means)
    DIR/report.html                ``artent report DIR``: the sweep table, figures and the claims
                                   the internal tables can check

Points run one at a time by default, on ``workers`` processes with ``workers > 1`` (a worker
that dies fails its point alone; :mod:`artent.sweep_workers`), or as Ray tasks
(``ray="local"`` starts Ray on this machine; any other value is a cluster address, whose workers
must see ``DIR`` and the data at the same paths). Ray is imported only when asked for.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artent.errors import one_line
from artent.io import read_mapping, versions, write_json, write_parquet
from artent.outdir import claim_out, remove_stale_temporaries
from artent.sweep_workers import _connect_ray, _run_processes, _run_ray
from artent.validation import check_fields

# Set per point by the sweep itself, so never a sweep option.
_RESERVED = {"out", "progress"}
SUMMARY_METRICS = ("center_entropy", "valley_depth", "volume_slope")
#: Row columns of the attention analysis (amplitude encoding, sequential order, means over heads).
ATTENTION_METRICS = ("attention_c", "attention_center_entropy", "attention_area_log_share")
EXTERNAL_TABLES = ("external", "external_summary", "scaling", "baseline", "scaling_baseline")
#: What a sweep writes into its folder (its record lists them as ``files``); see STUDY_FILES.
SWEEP_FILES = ("sweep.json", "sweep.parquet", "report.html", "points")


def _train_fields() -> set[str]:
    from artent.training.config import TrainConfig

    return {f.name for f in dataclasses.fields(TrainConfig)} - _RESERVED


@dataclass
class SweepSpec:
    """A grid of training runs.

    Args:
        base: TrainConfig options shared by every point (``out`` and ``progress`` excluded).
        grid: option -> list of values; the points are the Cartesian product, in the order the
            options and values are given.
        internal: InternalConfig options of the analysis of each point's final checkpoint
            (``modules`` defaults to the point's ``targets`` for LoRA/MPS).
        external: the attention analysis of each point's final checkpoint: ``texts`` (a corpus
            as ``artent external --texts`` reads it, required) and ExternalConfig options;
            empty (the default) for none.
    """

    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list] = field(default_factory=dict)
    internal: dict[str, Any] = field(default_factory=dict)
    external: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_fields(self, lambda name: f"sweep {name}")
        for section in ("base", "grid", "internal", "external"):
            bad = [k for k in getattr(self, section) or {} if not isinstance(k, str)]
            if bad:
                raise ValueError(f"sweep {section}: option {bad[0]!r} is not a name")
        self.base = {k.replace("-", "_"): v for k, v in (self.base or {}).items()}
        self.grid = {k.replace("-", "_"): v for k, v in (self.grid or {}).items()}
        known = _train_fields()
        for where, opts in (("base", self.base), ("grid", self.grid)):
            for name in opts:
                if name not in known:
                    raise ValueError(f"sweep {where}: unknown option {name!r}")
        for name, values in self.grid.items():
            if not isinstance(values, list | tuple):
                raise ValueError(f"sweep grid: option {name!r} must be a list of values")
            if not values:
                raise ValueError(f"sweep grid: option {name!r} has an empty list of values")
        both = sorted(set(self.base) & set(self.grid))
        if both:
            raise ValueError(f"sweep: option {both[0]!r} is in both base and grid")
        from artent.analysis.internal import InternalConfig

        internal_known = {f.name for f in dataclasses.fields(InternalConfig)}
        bad = sorted(set(self.internal) - internal_known)
        if bad:
            raise ValueError(f"sweep internal: unknown option {bad[0]!r}")
        try:
            InternalConfig(**self.internal)  # its values too, before any point trains
        except ValueError as e:
            raise ValueError(f"sweep internal: {e}") from None
        self.external = {k.replace("-", "_"): v for k, v in (self.external or {}).items()}
        if self.external:
            from artent.analysis.external import ExternalConfig
            from artent.data.corpus import read_corpus

            external_known = {f.name for f in dataclasses.fields(ExternalConfig)} | {"texts"}
            bad = sorted(set(self.external) - external_known)
            if bad:
                raise ValueError(f"sweep external: unknown option {bad[0]!r}")
            if "texts" not in self.external:
                raise ValueError("sweep external: needs 'texts' (the corpus to read attention on)")
            read_corpus(self.external["texts"])  # a missing corpus fails now, not per point
            ExternalConfig(**{k: v for k, v in self.external.items() if k != "texts"})


def load_sweep_spec(path: str | Path) -> SweepSpec:
    """Read a spec from YAML (``.yaml``/``.yml``) or JSON: keys ``base``, ``grid``, ``internal``,
    ``external``."""
    path = Path(path)
    data = read_mapping(path, "sweep spec", "a mapping with base and grid")
    keys = ("base", "grid", "internal", "external")
    extra = sorted(set(data) - set(keys))
    if extra:
        raise ValueError(f"sweep spec {path}: unknown key {extra[0]!r} ({', '.join(keys)})")
    try:
        # a missing section is {}; a present one of the wrong type is refused by SweepSpec
        spec = SweepSpec(*(data[k] if data.get(k) is not None else {} for k in keys))
        expand(spec)  # every point's options, so that a bad one names this file
    except ValueError as e:
        raise ValueError(f"sweep spec {path}: {e}") from None
    return spec


def _label(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "+".join(_label(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


#: Longest point folder name kept as it is (file systems allow 255 bytes a name).
MAX_FOLDER_NAME = 120


def _folder_name(name: str) -> str:
    # Data paths and the like may hold '/' or spaces: keep point folders one level, portable.
    folder = re.sub(r"[^A-Za-z0-9._=,+-]", "_", name)
    if len(folder) <= MAX_FOLDER_NAME:
        return folder
    # a long but legal grid value (a deep data path): a prefix and a digest of the whole name
    import hashlib

    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{folder[: MAX_FOLDER_NAME - 17]}-{digest}"


def expand(spec: SweepSpec) -> list[dict[str, Any]]:
    """The points of ``spec``: dicts of TrainConfig options plus a stable ``name``.

    The order is the Cartesian product of the grid in the order given (last option fastest).
    Each point's options are validated by TrainConfig here, so a bad value fails the sweep
    before anything runs (errors that need the model or data fail only their point).

    Raises:
        ValueError: a point whose options TrainConfig rejects (the message names the point).
    """
    from artent.training.config import TrainConfig

    keys = list(spec.grid)
    points, seen = [], set()
    for values in itertools.product(*(spec.grid[k] for k in keys)):
        chosen = dict(zip(keys, values, strict=True))
        name = ",".join(f"{k}={_label(v)}" for k, v in chosen.items()) or "base"
        if _folder_name(name) in seen:
            raise ValueError(f"sweep grid: two points share the name {name!r}")
        seen.add(_folder_name(name))
        options = {**spec.base, **chosen}
        try:
            TrainConfig(**options)
        except (TypeError, ValueError) as e:
            raise ValueError(f"sweep point {name}: {e}") from None
        points.append({"name": name, **options})
    return points


def _row_base(point: dict[str, Any], grid_keys: list[str]) -> dict[str, Any]:
    return {
        "name": point["name"],
        **{k: _label(point[k]) if isinstance(point[k], list) else point[k] for k in grid_keys},
    }


def _final_losses(run: Path) -> tuple[float, float]:
    import pandas as pd

    losses = pd.read_parquet(run / "losses.parquet")
    out = []
    for split in ("train", "heldout"):
        sub = losses[losses.split == split].sort_values("step")
        out.append(float(sub.loss.iloc[-1]) if len(sub) else float("nan"))
    return out[0], out[1]


def _internal_means(run: Path, point: dict[str, Any], internal: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from artent.analysis.internal import InternalConfig, run_internal, sources_from_run

    opts = dict(internal)
    if "modules" not in opts and point.get("method", "lora") != "fft" and point.get("targets"):
        opts["modules"] = point["targets"]
    final = sources_from_run(run)[-1:]
    profiles, summary = run_internal(final, InternalConfig(**opts), progress=False)
    write_parquet(run / "internal.parquet", profiles)  # read by `artent report` on the sweep
    write_parquet(run / "internal_summary.parquet", summary)
    ok = summary[summary.status == "ok"]
    means = {m: float(np.nanmean(ok[m])) if len(ok) else float("nan") for m in SUMMARY_METRICS}
    bounds = ok.within_bound.dropna()
    means["within_bound_all"] = bool(bounds.all()) if len(bounds) else None
    return means


def _external_means(run: Path, external: dict[str, Any]) -> dict[str, Any]:
    """The attention analysis of a run's final checkpoint on the spec's corpus, and its means."""
    import numpy as np

    from artent.analysis.external import ExternalConfig, run_external
    from artent.analysis.runs import run_checkpoints
    from artent.data.corpus import read_corpus
    from artent.models.loading import load_for_forward

    corpus = read_corpus(external["texts"])
    cfg = ExternalConfig(**{k: v for k, v in external.items() if k != "texts"})
    last = run_checkpoints(run)[-1]
    model, tok = load_for_forward(last.base, **{"full" if last.is_full else "adapter": last.path})
    notes: list[str] = []
    tables = run_external(
        model, tok, corpus, cfg, step=last.step, label=run.name, notify=notes.append
    )
    for name in EXTERNAL_TABLES:  # read by `artent report` on the sweep
        write_parquet(run / f"{name}.parquet", tables[name])
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
        point: one entry of :func:`expand` (``name`` plus TrainConfig options).
        out_dir: the sweep folder.
        grid_keys: options copied into the row (default: every option of the point).
        internal: InternalConfig options for the analysis.
        external: the spec's ``external`` section (``texts`` and ExternalConfig options); empty
            or ``None``: no attention analysis.
        single_thread: ``torch.set_num_threads(1)``, for workers sharing the machine's cores.
    """
    run = Path(out_dir) / "points" / _folder_name(point["name"])
    keys = grid_keys if grid_keys is not None else [k for k in point if k != "name"]
    record = run / "row.json"
    if record.is_file():
        row = json.loads(record.read_text())
        if row.get("status") == "ok":
            return {**row, "reused": True}
    row = {
        **_row_base(point, keys),
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
            import torch

            torch.set_num_threads(1)
        from artent.training.config import TrainConfig
        from artent.training.loop import RunFinished, train

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


def _prepare_shared(points: list[dict[str, Any]]) -> None:
    """Make the cached named models and synthetic data once, before workers race for them."""
    from artent.models.cache import NAMED_MODELS, resolve_named_model
    from artent.training.config import TrainConfig
    from artent.training.loop import resolve_data

    done = set()
    for p in points:
        cfg = TrainConfig(**{k: v for k, v in p.items() if k != "name"}, progress=False)
        if cfg.model in NAMED_MODELS and cfg.model not in done:
            resolve_named_model(cfg.model)  # pretrain tiny / convert smollm2 once, not per worker
            done.add(cfg.model)
        key = (cfg.data, cfg.n_synthetic)
        if key not in done:
            try:
                resolve_data(cfg)
            except Exception:  # noqa: BLE001 - a bad data set fails its points, not the sweep
                pass
            done.add(key)


def run_sweep(spec: SweepSpec, out: str | Path, *, ray: str | None = None, workers: int = 1) -> Any:
    """Run every point of ``spec`` (skipping finished ones) and write ``out/sweep.parquet``.

    Args:
        spec: the grid.
        out: the sweep folder (created).
        ray: ``None`` (local), ``"local"`` (start Ray here) or a Ray cluster address.
        workers: local processes (``1``: one point after another in this process), or the CPUs
            given to a local Ray (``1``: all cores).

    Returns:
        The result table (pandas DataFrame), one row per point in :func:`expand` order.
    """

    if workers < 1:
        raise ValueError(f"option workers must be >= 1, got {workers}")
    points = expand(spec)
    out = Path(out)
    record = {"spec": dataclasses.asdict(spec), "points": points}
    if (out / "sweep.json").is_file():
        try:
            old = json.loads((out / "sweep.json").read_text())
            # sections added since the folder was written count as empty
            old_spec = {**dataclasses.asdict(SweepSpec()), **old["spec"]}
            same = old_spec == json.loads(json.dumps(record["spec"], default=str))
        except (ValueError, KeyError, TypeError):
            same = False
        if not same:
            raise ValueError(f"--out {out}: holds a sweep with another spec; use a new folder")
    from artent.report.html import check_report_replaceable

    check_report_replaceable(out / "report.html")
    started = _connect_ray(ray, workers) if ray is not None else False
    try:
        with claim_out(out, "sweep", writes=SWEEP_FILES, record=False) as claim:
            # a sweep that fails before any point has a checkpoint leaves nothing behind
            claim.keep = lambda: any((out / "points").glob("*/checkpoints/step-??????"))
            remove_stale_temporaries(out, skip=("points",))
            write_json(
                out / "sweep.json", {**record, "versions": versions(), "files": list(SWEEP_FILES)}
            )
            return _run_points(points, spec, out, ray, workers)
    finally:
        if started:
            import ray as ray_module

            ray_module.shutdown()


def _run_points(points, spec: SweepSpec, out: Path, ray: str | None, workers: int) -> Any:
    import pandas as pd

    kwargs = dict(grid_keys=list(spec.grid), internal=spec.internal, external=spec.external)
    if ray is None or ray == "local":
        _prepare_shared(points)
    if ray is not None:
        rows = _run_ray(points, out, kwargs)
    elif workers == 1:
        rows = [run_point(p, out, **kwargs) for p in points]
    else:
        rows = _run_processes(points, out, kwargs, workers)
    table = pd.DataFrame(rows)
    write_parquet(out / "sweep.parquet", table)
    return table
