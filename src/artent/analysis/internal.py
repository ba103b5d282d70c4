"""Internal artificial entanglement: the profile of every weight update, as tidy tables.

Sources of updates (METHOD.md section 3): a (base, tuned) pair of checkpoints, a PEFT adapter
(with or without its base), or every checkpoint of an artent training run. Each update ``Delta W``
is profiled exactly (the factored path for LoRA-like and MPS adapters) and summarised by the
valley metrics, with its random-matrix prediction stored beside it.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from math import log
from pathlib import Path

import numpy as np

from artent.analysis.runs import run_checkpoints
from artent.entanglement import (
    entropies_from_spectrum,
    fit_volume,
    lapack,
    matrix_layout,
    page_profile,
    random_lora_profile,
    schmidt_spectra,
    valley,
)
from artent.entanglement.sites import ORDERS
from artent.entanglement.spectral import INTRUDER_EPS, INTRUDER_K
from artent.folders.atomic import pyplot, save_figure
from artent.progress import LayerLines
from artent.validation import check_device, check_fields, keyword

#: Columns of ``internal.parquet``, one row per (label, step, layer, module, bond); ``source`` is
#: the checkpoint or adapter the update was read from (``None`` for a model in memory).
PROFILE_COLUMNS = ["label", "step", "source", "layer", "module", "bond", "entropy", "rmt"]
#: What ``--what`` profiles: the update ``dW``, the merged weight ``W + dW``, the base ``W``.
WHATS = ("update", "merged", "base")
#: Spectral companions that :func:`valley_table` averages per group.
COMPANION_MEANS = ("effective_rank", "stable_rank", "relative_norm", "intruders")


@dataclass
class InternalConfig:
    """Options of the internal analysis.

    Args:
        modules: module names to analyse (``q_proj``, ``v_proj`` by default; any linear module).
        layers: layer indices to keep (``None``: all).
        k: half-width of the valley window around the row|column cut, in bonds.
        order: site order, ``"sequential"`` (the cut is a bond) or ``"interleaved"``.
        renyi: Renyi index of the reported entropies (1 = von Neumann), nats.
        device: torch device for the profiles (``None``: numpy on the CPU).
        allow_pickle: read pickle checkpoints (never by default).
        workers: updates profiled at the same time on the CPU (``None``: one per available core;
            a GPU ``device`` profiles one at a time). Memory grows with it: each worker holds one
            float32 update and its Gram matrices.
        what: the matrix profiled: ``update`` (``dW``), ``merged`` (``W + dW``) or ``base``
            (``W``); the last two need the base weights.
        intruder_k: top singular vectors of ``W + dW`` examined for intruder dimensions
            (``0``: none are counted); needs the base weights.
        intruder_eps: a singular vector whose largest ``|cos|`` with ``W``'s is below this is an
            intruder.
    """

    modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    layers: list[int] | None = None
    k: int = 2
    order: str = "sequential"
    renyi: float = field(default=1.0, metadata={"infinite": True})  # inf: the min-entropy
    device: str | None = None
    allow_pickle: bool = False
    workers: int | None = None
    what: str = "update"
    intruder_k: int = INTRUDER_K
    intruder_eps: float = INTRUDER_EPS

    def __post_init__(self) -> None:
        if isinstance(self.modules, str):
            self.modules = [m.strip() for m in self.modules.split(",") if m.strip()]
        check_fields(self, keyword)
        if self.device is not None:
            check_device(self.device, "device=")
        if self.order not in ORDERS:
            raise ValueError(f"order= must be one of {', '.join(ORDERS)}, not {self.order!r}")
        if not self.renyi >= 0:
            raise ValueError(f"renyi= must be a number >= 0, got {self.renyi!r}")
        if not self.modules:
            raise ValueError("modules= is empty: name at least one module (e.g. q_proj)")
        if "all" in self.modules and len(self.modules) > 1:
            raise ValueError(f"modules=: 'all' stands alone, got {','.join(self.modules)}")
        if self.workers is not None and (
            isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1
        ):
            raise ValueError(f"workers= must be a positive integer, got {self.workers!r}")
        if self.k < 1:
            raise ValueError(f"valley half-width k must be >= 1, got {self.k}")
        if self.what not in WHATS:
            raise ValueError(f"what= must be one of {', '.join(WHATS)}, not {self.what!r}")
        if self.intruder_k < 0:
            raise ValueError(f"intruder_k= must be >= 0, got {self.intruder_k}")
        if not 0 <= self.intruder_eps <= 1:
            raise ValueError(f"intruder_eps= must be in [0, 1], got {self.intruder_eps}")


@dataclass
class Source:
    """One set of updates to analyse: a label, a training step, and how to read its deltas.

    ``kind`` is ``pair`` (``path`` against ``base``), ``adapter`` (a saved adapter at ``path``) or
    ``live`` (the updates of models in memory, in ``deltas``; ``path`` is ``None``).
    """

    label: str
    step: int | None
    kind: str  # "pair" | "adapter" | "live"
    path: str | None
    base: str | None = None
    deltas: object = field(default=None, repr=False, compare=False)


def sources_from_run(
    run: str | Path, *, base: str | None = None, label: str | None = None
) -> list[Source]:
    """Every checkpoint of a training run (artent's or a Trainer's), in step order, as sources.

    Args:
        run: the run folder.
        base: the base of a Trainer run (see :func:`artent.analysis.runs.run_checkpoints`).
        label: the rows' label (default: the run folder's name).
    """
    out = []
    for c in run_checkpoints(run, base):
        b = c.base
        if not c.is_full and base is None and b is not None and not Path(b).exists():
            b = None  # a hub name in a Trainer adapter's config: a LoRA update needs no base
        out.append(Source(label or c.label, c.step, "pair" if c.is_full else "adapter", c.path, b))
    return out


def iter_deltas(src: Source, cfg: InternalConfig) -> Iterator:
    """The updates of one source (``artent.models.deltas.Delta`` objects)."""
    from artent.models.deltas import deltas_from_adapter, deltas_from_pair

    if src.kind == "live":
        return src.deltas(cfg) if callable(src.deltas) else src.deltas
    if src.kind == "pair":
        return deltas_from_pair(
            src.base,
            src.path,
            modules=cfg.modules,
            layers=cfg.layers,
            allow_pickle=cfg.allow_pickle,
        )
    return deltas_from_adapter(
        src.path,
        base=src.base,
        modules=cfg.modules,
        layers=cfg.layers,
        allow_pickle=cfg.allow_pickle,
    )


def analyse_delta(delta, cfg: InternalConfig) -> tuple[list[dict], dict]:
    """Profile one update: per-bond rows and one summary row (nats; NaN metrics if zero).

    ``cfg.what`` chooses the matrix profiled (``dW``, ``W + dW`` or ``W``); the spectral
    companions (:func:`artent.analysis.spectral_columns.companions`) are appended to the row.
    """
    from artent.analysis.spectral_columns import companions, profiled_matrix

    matrix, nominal = profiled_matrix(delta, cfg.what)
    layout = matrix_layout((delta.rows, delta.cols), order=cfg.order)
    cut = layout.cut
    summary = dict(
        layer=delta.layer,
        module=delta.module,
        name=delta.name,
        kind=delta.kind,
        rows=delta.rows,
        cols=delta.cols,
        cut=cut,
        nominal_rank=nominal,
        status="ok",
        rank=np.nan,
        center_entropy=np.nan,
        ln_rank=np.nan,
        within_bound=None,
        valley_depth=np.nan,
        valley_ratio=np.nan,
        volume_slope=np.nan,
        max_entropy=np.nan,
    )
    if matrix is None:
        summary["status"] = "zero update"
        summary.update(companions(delta, None, None, cfg))
        return [], summary
    spectra = schmidt_spectra(matrix, order=cfg.order, device=cfg.device)
    prof = np.array([entropies_from_spectrum(p, cfg.renyi) for p in spectra])
    if nominal is not None and cfg.order == "sequential":
        rmt = random_lora_profile(layout.row_dims, layout.col_dims, nominal)
    else:
        rmt = page_profile(layout.dims)
    rows = [
        dict(layer=delta.layer, module=delta.module, bond=l, entropy=s, rmt=b)
        for l, (s, b) in enumerate(zip(prof, rmt, strict=True), start=1)
    ]
    summary["max_entropy"] = float(prof.max())
    if cut is not None and 1 <= cut < len(prof) + 1:
        p_cut = spectra[cut - 1]
        rank = int((p_cut > 8 * np.finfo(float).eps * len(p_cut) * p_cut.max()).sum())
        v = valley(prof, cut, cfg.k, rank=nominal or rank, dims=layout.dims)
        window = range(cut - cfg.k, cut + cfg.k + 1)
        slope = fit_volume(prof, exclude=window).slope if len(prof) - len(window) >= 2 else np.nan
        summary.update(
            rank=rank,
            center_entropy=v.center_entropy,
            # ln r is the bound of a rank-r adapter; a dense update has no nominal rank to bound
            # it (its numerical rank bounds its entropy trivially): NaN and None there
            ln_rank=log(nominal) if nominal else np.nan,
            within_bound=v.within_bound if nominal else None,
            valley_depth=v.depth,
            valley_ratio=v.ratio,
            volume_slope=slope,
        )
    # In sequential order the cut's Schmidt weights are the squared singular values: reuse them.
    p_cut = spectra[cut - 1] if cfg.order == "sequential" and cut is not None else None
    summary.update(companions(delta, matrix, p_cut, cfg))
    return rows, summary


def available_cores() -> int:
    """CPU cores this process may run on (its affinity where the platform tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def run_internal(sources: Iterable[Source], cfg: InternalConfig, *, progress: bool = True):
    """Analyse every update of every source; return ``(profiles, summary)`` DataFrames.

    Updates are read one at a time, in the main thread, as the workers need them (each source's
    checkpoints tensor by tensor), and profiled by ``cfg.workers`` threads; numpy, LAPACK and the
    checkpoint reader release the GIL, and BLAS gets ``cores // workers`` threads each, so the
    cores are shared without oversubscription. Rows come out in the order the updates were read.
    """
    import pandas as pd
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from artent.entanglement.lapack import blas_threads

    sources = list(sources)
    cores = available_cores()
    workers = 1 if cfg.device is not None else (cfg.workers or cores)
    prof_rows, summ_rows = [], []
    with (
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[module]}"),
            disable=not progress,
            transient=True,
        ) as bar,
        blas_threads(max(1, cores // workers)),
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="artent-internal") as pool,
    ):
        for src in sources:
            desc = src.label if src.step is None else f"{src.label} step {src.step}"
            task = bar.add_task(desc, total=None, module="")
            tag = dict(label=src.label, step=src.step, source=src.path)
            lines = LayerLines(desc, bar.console.print if progress else None)
            for rows, summary in _profiled(iter(iter_deltas(src, cfg)), cfg, pool, workers):
                prof_rows += [{**tag, **r} for r in rows]
                summ_rows.append({**tag, **summary})
                bar.update(task, advance=1, module=summary["name"])
                lines.done(summary["layer"])
            lines.close()
            bar.update(task, total=bar.tasks[task].completed)
    if not summ_rows:
        raise ValueError("no module matched: check modules= and layers=")
    return pd.DataFrame(prof_rows, columns=PROFILE_COLUMNS), pd.DataFrame(summ_rows)


#: Updates of at least this many elements (an 8B model's MLP projections, 14336 x 4096) are
#: profiled alone, with every core's BLAS threads, rather than beside another: two of them at once
#: held 3.7 GB (their float64 Grams of order 7168 and the intruders' float64 ``W + dW``).
ALONE_FROM = 2**25


def _profiled(deltas: Iterator, cfg: InternalConfig, pool, workers: int) -> Iterator:
    """``analyse_delta`` of each update on the pool, in order, with at most ``workers`` in memory.

    The next update is read only when a worker is free, so memory stays at ``workers`` updates
    (and their Gram matrices) plus the one being read, however many the checkpoint holds; an
    update of :data:`ALONE_FROM` elements or more waits for the others and runs alone.
    """
    pending: deque = deque()
    try:
        while True:
            while sum(not job.done() for job in pending) >= workers:
                wait([job for job in pending if not job.done()], return_when=FIRST_COMPLETED)
            while pending and pending[0].done():
                yield pending.popleft().result()  # re-raises a worker's error here
            delta = next(deltas, None)  # read only now that a worker is free
            if delta is None:
                break
            if workers > 1 and delta.rows * delta.cols >= ALONE_FROM:
                while pending:  # the others finish first: this one takes every core alone
                    yield pending.popleft().result()
                with lapack.blas_threads(workers * lapack.current_threads()):
                    yield analyse_delta(delta, cfg)
                del delta
                continue
            pending.append(pool.submit(analyse_delta, delta, cfg))
            del delta
        while pending:
            yield pending.popleft().result()
    finally:
        for job in pending:
            job.cancel()


def plot_internal(profiles, summary, path: str | Path) -> Path | None:
    """Mean profile per (label, step, module) over its random-matrix baseline (PNG)."""
    plt = pyplot()

    if profiles.empty:
        return None
    modules = list(dict.fromkeys(profiles.module))
    ncols = min(len(modules), 4)  # modules all: seven panels on two rows
    nrows = -(-len(modules) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(5.5 * ncols, 4.2 * nrows), squeeze=False, layout="constrained"
    )
    for ax in axes.flat[len(modules) :]:
        ax.set_visible(False)
    for ax, module in zip(axes.flat, modules, strict=False):
        sub = profiles[profiles.module == module]
        sub = sub.assign(step=sub.step.fillna(-1).astype(int))
        for (label, step), g in sub.groupby(["label", "step"], sort=False):
            mean = g.groupby("bond")[["entropy", "rmt"]].mean()
            name = label if step < 0 else f"{label} @{step}"
            line = ax.plot(mean.index, mean.entropy, "o-", ms=3, label=name)[0]
            ax.plot(mean.index, mean.rmt, "--", lw=1, color=line.get_color())
        cut = summary[summary.module == module].cut.dropna()
        if len(cut):
            ax.axvline(cut.iloc[0], color="grey", lw=0.8, ls=":")
        ax.set(
            xlabel="bond l",
            ylabel="S_l (nats)",
            title=f"{module}: mean over layers (dashed: RMT baseline)",
        )
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def profile_deltas(
    deltas: Iterable,
    cfg: InternalConfig,
    *,
    label: str,
    step: int | None,
    source: str | None = None,
):
    """Profile updates already in hand (e.g. a training model's, in memory) as the two tables.

    Returns:
        ``(profiles, summary)`` DataFrames with the columns of :func:`run_internal`'s.
    """
    import pandas as pd

    prof_rows, summ_rows = [], []
    tag = dict(label=label, step=step, source=source)
    for delta in deltas:
        rows, summary = analyse_delta(delta, cfg)
        prof_rows += [{**tag, **r} for r in rows]
        summ_rows.append({**tag, **summary})
    return pd.DataFrame(prof_rows, columns=PROFILE_COLUMNS), pd.DataFrame(summ_rows)


#: the columns of ``internal_summary`` that :func:`valley_table` groups by
VALLEY_GROUPS = ("label", "step", "source", "layer", "module", "name", "kind", "rows", "cols")


def valley_table(summary, by: Iterable[str] = ("label", "step", "module")):
    """The valley metrics averaged per group of updates: what the CLI prints, the callback logs.

    Args:
        summary: an ``internal_summary`` table.
        by: a grouping column or several, any of :data:`VALLEY_GROUPS` (a missing ``step`` or
            ``layer`` is a group of its own).

    Returns:
        One row per group, in order of appearance: ``by`` columns, ``updates`` (profiled),
        ``zero`` (zero updates, left out of the means), ``center_entropy`` (mean ``S_cut``),
        ``ln_rank`` (mean ``ln r``), ``within_bound`` (fraction of updates with
        ``S_cut <= ln r``), ``valley_depth``, ``valley_ratio`` (mean ``S_cut / Page``); nats;
        then the means of the spectral companions the summary has (``effective_rank``,
        ``stable_rank``, ``relative_norm``, ``intruders``; NaN where unknown).
    """
    import pandas as pd

    by = [by] if isinstance(by, str) else list(by)  # "layer", not ["l", "a", "y", ...]
    missing = [c for c in by if c not in summary.columns]
    if not by or missing:
        have = ", ".join(c for c in VALLEY_GROUPS if c in summary.columns)
        raise ValueError(f"by: no column {missing[0] if missing else '(none)'!r}; group by {have}")
    metrics = ["center_entropy", "ln_rank", "valley_depth", "valley_ratio"]
    spectral = [c for c in COMPANION_MEANS if c in summary.columns]
    rows = []
    for key, g in summary.groupby(by, sort=False, dropna=False):
        ok = g[g.status == "ok"]
        bound = ok.within_bound.dropna()
        rows.append(
            {
                **dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True)),
                "updates": len(ok),
                "zero": int((g.status == "zero update").sum()),
                **{m: float(ok[m].mean()) if len(ok) else np.nan for m in metrics},
                "within_bound": float(bound.astype(bool).mean()) if len(bound) else np.nan,
                **{c: float(ok[c].astype(float).mean()) if len(ok) else np.nan for c in spectral},
            }
        )
    cols = [*by, "updates", "zero", "center_entropy", "ln_rank", "within_bound"]
    return pd.DataFrame(rows, columns=[*cols, "valley_depth", "valley_ratio", *spectral])
