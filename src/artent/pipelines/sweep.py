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

One point (its folder, run, analyses, row): :mod:`artent.pipelines.points`. Points run one at a
time by default, on ``workers`` processes with ``workers > 1`` (a worker that dies fails its
point alone; :mod:`artent.pipelines.sweep_workers`), or as Ray tasks (``ray="local"`` starts Ray
on this machine; any other value is a cluster address, whose workers
must see ``DIR`` and the data at the same paths). Ray is imported only when asked for.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artent.analysis.external import ExternalConfig
from artent.analysis.internal import InternalConfig
from artent.data.corpus import read_corpus
from artent.folders.atomic import write_json, write_parquet
from artent.folders.layout import SWEEP_POINTS, SWEEP_RECORD, SWEEP_TABLE
from artent.folders.records import read_mapping, versions
from artent.models.cache import NAMED_MODELS, resolve_named_model
from artent.pipelines.folders import check_resumable, claim_runs_folder
from artent.pipelines.points import point_folder_name, run_point, value_label
from artent.pipelines.sweep_workers import connect_ray, run_processes, run_ray
from artent.report.html import REPORT_FILE
from artent.training.config import TrainConfig
from artent.training.loop import resolve_data
from artent.validation import check_fields

# Set per point by the sweep itself, so never a sweep option.
_RESERVED = {"out", "progress"}
#: What a sweep writes into its folder (its record lists them as ``files``); see STUDY_FILES.
SWEEP_FILES = (SWEEP_RECORD, SWEEP_TABLE, REPORT_FILE, SWEEP_POINTS)


def _train_fields() -> set[str]:
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


def expand(spec: SweepSpec) -> list[dict[str, Any]]:
    """The points of ``spec``: dicts of TrainConfig options plus a stable ``name``.

    The order is the Cartesian product of the grid in the order given (last option fastest).
    Each point's options are validated by TrainConfig here, so a bad value fails the sweep
    before anything runs (errors that need the model or data fail only their point).

    Raises:
        ValueError: a point whose options TrainConfig rejects (the message names the point).
    """
    keys = list(spec.grid)
    points, seen = [], set()
    for values in itertools.product(*(spec.grid[k] for k in keys)):
        chosen = dict(zip(keys, values, strict=True))
        name = ",".join(f"{k}={value_label(v)}" for k, v in chosen.items()) or "base"
        if point_folder_name(name) in seen:
            raise ValueError(f"sweep grid: two points share the name {name!r}")
        seen.add(point_folder_name(name))
        options = {**spec.base, **chosen}
        try:
            TrainConfig(**options)
        except (TypeError, ValueError) as e:
            raise ValueError(f"sweep point {name}: {e}") from None
        points.append({"name": name, **options})
    return points


def _prepare_shared(points: list[dict[str, Any]]) -> None:
    """Make the cached named models and synthetic data once, before workers race for them."""
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
    given = json.loads(json.dumps(record["spec"], default=str))

    def matches(old: dict) -> bool:  # sections added since the folder was written: empty
        return {**dataclasses.asdict(SweepSpec()), **old["spec"]} == given

    check_resumable(out, SWEEP_RECORD, matches, "a sweep with another spec")
    started = connect_ray(ray, workers) if ray is not None else False
    try:
        with claim_runs_folder(out, "sweep", SWEEP_POINTS, writes=SWEEP_FILES):
            write_json(
                out / SWEEP_RECORD, {**record, "versions": versions(), "files": list(SWEEP_FILES)}
            )
            return _sweep_points(points, spec, out, ray, workers)
    finally:
        if started:
            import ray as ray_module  # lazy: Ray only when asked for

            ray_module.shutdown()


def _sweep_points(points, spec: SweepSpec, out: Path, ray: str | None, workers: int) -> Any:
    import pandas as pd

    kwargs = dict(grid_keys=list(spec.grid), internal=spec.internal, external=spec.external)
    if ray is None or ray == "local":
        _prepare_shared(points)
    if ray is not None:
        rows = run_ray(points, out, kwargs)
    elif workers == 1:
        rows = [run_point(p, out, **kwargs) for p in points]
    else:
        rows = run_processes(points, out, kwargs, workers)
    table = pd.DataFrame(rows)
    write_parquet(out / SWEEP_TABLE, table)
    return table
