"""artent as a library: the three analyses as functions that return pandas DataFrames.

The commands ``artent internal``, ``artent external`` and ``artent nohair`` are thin layers over
:func:`internal`, :func:`external` and :func:`nohair`, which take the same inputs, return the
tables the commands write (as named tuples of DataFrames, one field per table) and write nothing
unless ``out=`` names a folder, where they write exactly what the command writes::

    import artent

    res = artent.internal(adapter="runs/lora/checkpoints/step-200")
    res.profiles                  # internal.parquet: one row per (layer, module, bond)
    res.valleys()                 # per module: mean S_cut, ln r, within the bound, valley depth
    res.plot()                    # the profiles over their random-matrix baselines

Errors are ``ValueError`` with one line naming the file, tensor or option at fault; an argument
of the wrong type is a ``TypeError`` naming it (:mod:`artent.arguments`), before any work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from artent.arguments import _listed, _names, parse_layers  # light: imports nothing heavy

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["External", "Internal", "NoHair", "external", "internal", "nohair", "read_texts"]

PathLike = str | Path


class Internal(NamedTuple):
    """What :func:`internal` returns (``artent internal`` writes these two tables).

    Attributes:
        profiles: ``internal.parquet``: ``label, step, layer, module, bond, entropy, rmt``.
        summary: ``internal_summary.parquet``: one row per update, with its valley metrics.
    """

    profiles: pd.DataFrame
    summary: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables by file name (without ``.parquet``)."""
        return {"internal": self.profiles, "internal_summary": self.summary}

    def valleys(self, by: Iterable[str] = ("label", "step", "module")) -> pd.DataFrame:
        """Valley metrics averaged per group (see :func:`artent.analysis.internal.valley_table`)."""
        from artent.analysis.internal import valley_table

        by = [by] if isinstance(by, str) else list(by)
        missing = [c for c in by if c not in self.summary.columns]
        if missing:
            raise ValueError(f"by: no column {missing[0]!r} (columns: {', '.join(self.summary)})")
        return valley_table(self.summary, by)

    def plot(self, path: PathLike | None = None):
        """Mean profile per module over its baseline: a matplotlib figure, or a PNG at ``path``."""
        from artent.analysis.internal import plot_internal

        return plot_internal(self.profiles, self.summary, path)


class External(NamedTuple):
    """What :func:`external` returns (``artent external`` writes these four tables)."""

    external: pd.DataFrame
    external_summary: pd.DataFrame
    scaling: pd.DataFrame
    baseline: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables by file name (without ``.parquet``)."""
        return dict(self._asdict())

    def plot(self, path: PathLike | None = None):
        """Attention profiles over the random baseline and the length scaling (figure or PNG)."""
        from artent.analysis.external import plot_external

        return plot_external(self.tables(), path)


class NoHair(NamedTuple):
    """What :func:`nohair` returns (``artent nohair`` writes these three tables)."""

    pairs: pd.DataFrame
    internal: pd.DataFrame
    external: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables by file name (without ``.parquet``)."""
        return {
            "nohair": self.pairs,
            "nohair_internal": self.internal,
            "nohair_external": self.external,
        }

    def plot(self, path: PathLike | None = None):
        """Internal against external contrast per pair, and the no-hair ratio (figure or PNG)."""
        from artent.analysis.nohair import plot_nohair

        return plot_nohair(self.pairs, path)


# ----- inputs -------------------------------------------------------------------------------------


def read_texts(texts: PathLike | Sequence[str]):
    """The corpus of the attention analyses: a list of documents as given, or files.

    A path is a ``.txt`` file (its paragraphs), a ``.jsonl`` file (``text`` field per line), a
    ``.parquet`` file (``text`` column) or a folder of them; the analyses cut the documents'
    token stream into windows (:mod:`artent.data.corpus`). Only the names are checked here.

    Returns:
        A :class:`~artent.data.corpus.Corpus`.

    Raises:
        ValueError: an empty list, a missing path, a file of another kind.
    """
    from artent.data.corpus import Corpus, read_corpus

    if not isinstance(texts, (str, Path)):
        return Corpus.from_texts(list(texts))
    try:
        return read_corpus(texts)
    except ValueError as e:
        raise ValueError(f"--{e}") from None


#: what each analysis writes into ``out`` (besides run.json)
WRITES = {
    "internal": ("internal.parquet", "internal_summary.parquet", "internal.png"),
    "external": (
        *(f"{name}.parquet" for name in External._fields),
        "external.png",
    ),
    "nohair": (
        "nohair.parquet",
        "nohair_internal.parquet",
        "nohair_external.parquet",
        "nohair.png",
    ),
}


def _claim(out: PathLike | None, command: str, inputs: Iterable[Any]):
    """The locked output folder of an analysis (see :mod:`artent.outdir`); a no-op without out."""
    from contextlib import nullcontext

    from artent.outdir import claim_out

    if out is None:
        return nullcontext()
    return claim_out(out, command, inputs=inputs, writes=WRITES[command])


def _check_out(out: PathLike | None, command: str, inputs: Iterable[Any]) -> None:
    """Refuse a bad ``out`` before any work (the claim checks again when it takes the folder)."""
    from artent.outdir import check_out

    if out is not None:
        check_out(out, command, inputs=inputs, writes=WRITES[command])


def _text_inputs(texts: PathLike | Sequence[str]) -> list[PathLike]:
    return [texts] if isinstance(texts, str | Path) else []


def _write(out: PathLike, tables: dict[str, pd.DataFrame]) -> Path:
    from artent.io import write_parquet

    out = Path(out)
    for name, frame in tables.items():
        write_parquet(out / f"{name}.parquet", frame)
    return out


# ----- the analyses -------------------------------------------------------------------------------


def internal(
    *,
    adapter: PathLike | Iterable[PathLike] | None = None,
    base: PathLike | None = None,
    tuned: PathLike | None = None,
    run: PathLike | Iterable[PathLike] | None = None,
    modules: str | Iterable[str] = ("q_proj", "v_proj"),
    layers: str | int | Iterable[int] | None = None,
    order: str = "sequential",
    k: int = 2,
    device: str | None = None,
    allow_pickle: bool = False,
    workers: int | None = None,
    out: PathLike | None = None,
    progress: bool = False,
) -> Internal:
    """Entanglement profiles of weight updates: tuned - base, peft adapters, or training runs.

    Args:
        adapter: peft adapter folder(s); ``base`` is optional (DoRA and VeRA need it).
        base: the base checkpoint (with ``tuned``, or for adapters).
        tuned: a fine-tuned checkpoint, compared with ``base``.
        run: artent training run folder(s): every checkpoint along training.
        modules: module names (``"q_proj,v_proj"`` or a list); ``"all"`` for q, k, v, o, gate,
            up and down (those present).
        layers: layer indices (``"0,1,5-7"`` or a list); ``None`` for all.
        order: site order, ``sequential`` or ``interleaved``.
        k: valley half-width in bonds.
        device: torch device of the profiles (``None``: numpy on the CPU).
        allow_pickle: read pickle checkpoints.
        workers: updates profiled at once on the CPU (``None``: one per core).
        out: a folder to write ``internal.parquet``, ``internal_summary.parquet``,
            ``internal.png`` and ``run.json`` into, as ``artent internal --out`` does.
        progress: show a progress bar.
    """
    from artent.analysis.internal import InternalConfig, Source, run_internal, sources_from_run
    from artent.arguments import checked

    base, tuned, out, adapter, run, modules = checked(
        path=dict(base=base, tuned=tuned, out=out),
        paths=dict(adapter=adapter, run=run),
        names=dict(modules=modules),
        flags=dict(allow_pickle=allow_pickle, progress=progress),
    )
    inputs = [base, tuned, *_listed(adapter), *_listed(run)]
    _check_out(out, "internal", inputs)
    cfg = InternalConfig(
        modules=_names(modules, "--modules"),
        layers=parse_layers(layers),
        k=k,
        order=order,
        device=device,
        allow_pickle=allow_pickle,
        workers=workers,
    )
    sources: list[Source] = []
    if tuned:
        if not base:
            raise ValueError("--tuned needs --base (the checkpoint it was tuned from)")
        sources.append(Source(Path(tuned).name, None, "pair", str(tuned), str(base)))
    for a in _listed(adapter):
        sources.append(
            Source(Path(a).name, None, "adapter", a, None if base is None else str(base))
        )
    for r in _listed(run):
        sources += sources_from_run(r)
    if not sources:
        raise ValueError("nothing to analyse: pass --base/--tuned, --adapter or --run")
    with _claim(out, "internal", inputs) as claim:
        result = Internal(*run_internal(sources, cfg, progress=progress))
        if out is not None:
            from artent.io import write_run_record

            folder = _write(out, result.tables())
            result.plot(folder / "internal.png")
            write_run_record(
                folder, "internal", dict(cfg.__dict__, sources=[s.__dict__ for s in sources])
            )
            claim.commit()
    return result


def external(
    texts: PathLike | Sequence[str],
    *,
    model: str | None = None,
    adapter: PathLike | None = None,
    run: PathLike | Iterable[PathLike] | None = None,
    seq_len: int = 64,
    n_texts: int = 8,
    encodings: str | Iterable[str] = ("amplitude", "born"),
    orders: str | Iterable[str] = ("sequential", "interleaved"),
    device: str | None = "auto",
    allow_pickle: bool = False,
    out: PathLike | None = None,
    progress: bool = False,
    notify: Callable[[str], None] | None = None,
) -> External:
    """Entanglement profiles of attention matrices, their Cardy fits and the random baseline.

    Args:
        texts: the corpus: a list of documents, or a ``.txt`` / ``.jsonl`` / ``.parquet`` file
            or a folder of them (:func:`read_texts`).
        model: ``"tiny"``, ``"smollm2"``, a model folder or a hub name: any model whose
            attention transformers returns under eager attention (decoders and encoders).
        adapter: a peft adapter folder on ``model``.
        run: artent training run folder(s): every checkpoint along training.
        seq_len: tokens per window ``T``.
        n_texts: the most windows of ``T`` tokens cut from the corpus (the first ones).
        encodings: ``amplitude`` and/or ``born`` (comma-separated or a list).
        orders: ``sequential`` and/or ``interleaved``.
        device: where the model and the eigen-solves run: ``"auto"`` (the GPU when torch sees
            one), ``"cpu"``, ``"cuda"``...
        allow_pickle: read pickle checkpoints.
        out: a folder to write the four tables, ``external.png`` and ``run.json`` into.
        progress: show which model is being measured.
        notify: receives one-line notes (a corpus with fewer windows than ``n_texts``);
            default ``warnings.warn``.
    """
    import pandas as pd

    from artent.analysis.external import ExternalConfig, run_external
    from artent.analysis.runs import run_checkpoints
    from artent.arguments import check_texts, checked
    from artent.models.loading import check_adapter_on, load_for_forward, resolve_device

    texts = check_texts(texts)
    model, adapter, out, run, encodings, orders = checked(
        path=dict(model=model, adapter=adapter, out=out),
        paths=dict(run=run),
        names=dict(encodings=encodings, orders=orders),
        flags=dict(allow_pickle=allow_pickle, progress=progress),
    )
    inputs = [model, adapter, *_listed(run), *_text_inputs(texts)]
    _check_out(out, "external", inputs)
    corpus = read_texts(texts)
    resolve_device(device)  # a device that is not there is refused before any work
    cfg = ExternalConfig(
        seq_len=seq_len,
        n_texts=n_texts,
        encodings=tuple(_names(encodings, "--encodings")),
        orders=tuple(_names(orders, "--orders")),
    )
    jobs: list[tuple[str, int | None, dict[str, Any]]] = []
    if adapter and not model:
        raise ValueError("--adapter needs --model (the model it adapts)")
    if model:
        label = Path(adapter).name if adapter else Path(model).name
        jobs.append(
            (label, None, dict(base=model, adapter=None if adapter is None else str(adapter)))
        )
    for r in _listed(run):
        for c in run_checkpoints(r):
            kind = "full" if c.is_full else "adapter"
            jobs.append((c.label, c.step, dict(base=c.base, **{kind: c.path})))
    if not jobs:
        raise ValueError("nothing to analyse: pass --model (and --adapter) or --run")
    for _, _, spec in jobs:  # every pair is checked before any model is loaded
        if spec.get("adapter"):
            check_adapter_on(spec["adapter"], spec["base"], allow_pickle=allow_pickle)
    with _claim(out, "external", inputs) as claim:
        parts: dict[str, list] = {}
        for label, step, spec in jobs:
            m, tok = load_for_forward(**spec, device=device, allow_pickle=allow_pickle)
            what = f"attention of {label}" + (f" step {step}" if step is not None else "")
            with _status(what, progress):
                tables = run_external(m, tok, corpus, cfg, step=step, label=label, notify=notify)
                for name, frame in tables.items():
                    parts.setdefault(name, []).append(frame)
        result = External(**{k: pd.concat(parts[k], ignore_index=True) for k in External._fields})
        if out is not None:
            from artent.io import write_run_record

            folder = _write(out, result.tables())
            result.plot(folder / "external.png")
            jobs_done = [j[:2] for j in jobs]
            record = dict(cfg.__dict__, texts=corpus.source, device=device, jobs=jobs_done)
            write_run_record(folder, "external", record)
            claim.commit()
    return result


def nohair(
    models: Sequence[PathLike],
    texts: PathLike | Sequence[str],
    *,
    base: str | None = None,
    seq_len: int = 64,
    n_texts: int = 8,
    modules: str | Iterable[str] = ("q_proj", "v_proj"),
    device: str | None = None,
    allow_pickle: bool = False,
    out: PathLike | None = None,
    notify: Callable[[str], None] | None = None,
) -> NoHair:
    """Pairwise no-hair comparison: internal against external contrasts, attention outputs.

    Args:
        models: run folders, adapter folders or fine-tuned model folders (adapter and model
            folders need ``base``).
        texts: the corpus (as :func:`external` takes it); every model reads the same windows.
        base: the base model of adapter or model folders.
        seq_len: tokens per window ``T``.
        n_texts: the most windows of ``T`` tokens.
        modules: modules of the internal profiles (``q_proj``, ``query``, ``q`` alike; the
            blocks of fused q/k/v projections).
        device: torch device of the profiles.
        allow_pickle: read pickle checkpoints.
        out: a folder to write the three tables, ``nohair.png`` and ``run.json`` into.
        notify: receives one-line notes (fewer windows than asked, no per-head context for an
            architecture); default ``warnings.warn``.
    """
    from artent.analysis.nohair import NoHairConfig, check_specs, resolve_specs, run_nohair
    from artent.arguments import check_texts, checked, path_list

    models, texts = path_list(models, "models"), check_texts(texts)
    base, out, modules = checked(path=dict(base=base, out=out), names=dict(modules=modules))
    checked(flags=dict(allow_pickle=allow_pickle))
    inputs = [base, *(str(m) for m in models), *_text_inputs(texts)]
    _check_out(out, "nohair", inputs)
    corpus = read_texts(texts)
    cfg = NoHairConfig(
        seq_len=seq_len,
        n_texts=n_texts,
        device=device,
        modules=_names(modules, "--modules"),
        allow_pickle=allow_pickle,
    )
    specs = resolve_specs([str(m) for m in models], base)
    check_specs(specs, cfg)  # every adapter against its base, before any model is loaded
    with _claim(out, "nohair", inputs) as claim:
        tables = run_nohair(specs, corpus, cfg, notify=notify)
        result = NoHair(tables["pairs"], tables["internal"], tables["external"])
        if out is not None:
            from artent.io import write_run_record

            folder = _write(out, result.tables())
            result.plot(folder / "nohair.png")
            record = dict(cfg.__dict__, models=[s.__dict__ for s in specs])
            write_run_record(folder, "nohair", record)
            claim.commit()
    return result


def _status(what: str, show: bool):
    """A spinner naming the model being measured (a no-op unless ``show``)."""
    from contextlib import nullcontext

    if not show:
        return nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(what)
