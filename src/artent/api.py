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

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

# light: these import nothing heavy; the analyses (numpy, torch) are imported in each function,
# so that `import artent` stays light
from artent.arguments import (
    check_texts,
    checked,
    labelled_paths,
    name_list,
    parse_layers,
    path_list,
    path_or_model,
)
from artent.folders.claim import check_out, claim_out
from artent.folders.records import write_run_record
from artent.inputs import external_jobs, internal_sources, labelled
from artent.models.loading import check_adapter_on
from artent.results import External, Internal, NoHair
from artent.validation import resolve_device

__all__ = ["External", "Internal", "NoHair", "external", "internal", "nohair", "read_texts"]

PathLike = str | Path


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
    return read_corpus(texts)  # its errors name the path once (``texts=PATH: ...``)


#: what each analysis writes into ``out`` (besides run.json)
WRITES = {"internal": Internal.writes(), "external": External.writes(), "nohair": NoHair.writes()}


def _claim(out: PathLike | None, command: str, inputs: Iterable[Any]):
    """The locked output folder of an analysis (:mod:`artent.folders.claim`); none without out."""
    if out is None:
        return nullcontext()
    return claim_out(out, command, inputs=inputs, writes=WRITES[command])


def _check_out(out: PathLike | None, command: str, inputs: Iterable[Any]) -> None:
    """Refuse a bad ``out`` before any work (the claim checks again when it takes the folder)."""
    if out is not None:
        check_out(out, command, inputs=inputs, writes=WRITES[command])


def _text_inputs(texts: PathLike | Sequence[str]) -> list[PathLike]:
    return [texts] if isinstance(texts, str | Path) else []


# ----- the analyses -------------------------------------------------------------------------------


def internal(
    *,
    adapter: PathLike | Iterable[PathLike] | Mapping[str, PathLike] | None = None,
    base: PathLike | Any | None = None,
    tuned: PathLike | Any | None = None,
    run: PathLike | Iterable[PathLike] | Mapping[str, PathLike] | None = None,
    model: Any | None = None,
    label: str | Iterable[str] | None = None,
    modules: str | Iterable[str] = ("q_proj", "v_proj"),
    layers: str | int | Iterable[int] | None = None,
    order: str = "sequential",
    k: int = 2,
    device: str | None = None,
    allow_pickle: bool = False,
    workers: int | None = None,
    what: str = "update",
    intruder_k: int = 10,
    intruder_eps: float = 0.5,
    out: PathLike | None = None,
    progress: bool = False,
) -> Internal:
    """Entanglement profiles of weight updates: tuned - base, peft adapters, or training runs.

    Every input gets a unique label (the ``label`` column): by default its folder name,
    lengthened by the nearest ancestor folder that tells it from another input of the same name
    (:mod:`artent.analysis.labels`); two inputs with one label are an error, never one row.

    Args:
        adapter: peft adapter folder(s), or ``{label: folder}``; ``base`` is optional (DoRA and
            VeRA need it). A hub id is fetched where the hub is reachable.
        base: the base checkpoint (with ``tuned``, or for adapters and Trainer runs), or a model
            in memory (with ``tuned`` a model in memory too).
        tuned: a fine-tuned checkpoint, compared with ``base``; or a model in memory.
        run: training run folder(s), or ``{label: folder}``: an artent run, or the
            ``output_dir`` of a transformers/TRL Trainer (its ``checkpoint-N`` folders).
        model: a peft model in memory (``PeftModel``): its live adapter factors, no files.
        label: labels set by hand, one per input, in the order ``tuned``, each adapter, each
            run, ``model`` (the command's ``--label``).
        modules: module names (``"q_proj,v_proj"`` or a list); ``"all"`` for q, k, v, o, gate,
            up and down (those present).
        layers: layer indices (``"0,1,5-7"`` or a list); ``None`` for all.
        order: site order, ``sequential`` or ``interleaved``.
        k: valley half-width in bonds.
        device: torch device of the profiles (``None``: numpy on the CPU).
        allow_pickle: read pickle checkpoints.
        workers: updates profiled at once on the CPU (``None``: one per core).
        what, intruder_k, intruder_eps: what is profiled (``update``, ``merged`` or ``base``) and
            the intruder count's options (:class:`~artent.analysis.internal.InternalConfig`).
        out: a folder to write ``internal.parquet``, ``internal_summary.parquet``,
            ``internal.png`` and ``run.json`` into, as ``artent internal --out`` does.
        progress: show a progress bar.
    """
    from artent.analysis.internal import InternalConfig, run_internal

    for name, value in (("base", base), ("tuned", tuned)):
        path_or_model(value, name)
    for name, value in (("adapter", adapter), ("run", run)):
        labelled_paths(value, name)
    checked(
        path=dict(out=out),
        names=dict(modules=modules),
        flags=dict(allow_pickle=allow_pickle, progress=progress),
    )
    paths = [base, tuned, *(i for opt in (adapter, run) for _, i in labelled(opt))]
    inputs = [p for p in paths if isinstance(p, str | Path)]
    _check_out(out, "internal", inputs)
    cfg = InternalConfig(
        modules=name_list(modules, "modules="),
        layers=parse_layers(layers),
        k=k,
        order=order,
        device=device,
        allow_pickle=allow_pickle,
        workers=workers,
        what=what,
        intruder_k=intruder_k,
        intruder_eps=intruder_eps,
    )
    sources = internal_sources(
        adapter=adapter,
        base=base,
        tuned=tuned,
        run=run,
        model=model,
        label=label,
        allow_pickle=allow_pickle,
    )
    if cfg.what != "update" and any(s.base is None for s in sources):
        raise ValueError(f"what={cfg.what} needs the base weights: pass base=")
    with _claim(out, "internal", inputs) as claim:
        result = Internal(*run_internal(sources, cfg, progress=progress))
        if out is not None:
            folder = result.save(out, plot=True)
            record = [{k: v for k, v in s.__dict__.items() if k != "deltas"} for s in sources]
            write_run_record(folder, "internal", dict(cfg.__dict__, sources=record))
            claim.commit()
    return result


def external(
    texts: PathLike | Sequence[str],
    *,
    model: str | Any | Sequence[str | Any] | None = None,
    tokenizer: Any | None = None,
    adapter: PathLike | None = None,
    run: PathLike | Iterable[PathLike] | Mapping[str, PathLike] | None = None,
    label: str | Iterable[str] | None = None,
    seq_len: int = 64,
    n_texts: int = 8,
    encodings: str | Iterable[str] = ("amplitude", "born"),
    orders: str | Iterable[str] = ("sequential", "interleaved"),
    device: str | None = "auto",
    allow_pickle: bool = False,
    out: PathLike | None = None,
    progress: bool = False,
    notify: Callable[[str], None] | None = None,
    window_start: str = "model",
    profile_chunk_elements: int = 2**23,
) -> External:
    """Entanglement profiles of attention matrices, their Cardy fits and the random baseline.

    Args:
        texts: the corpus: a list of documents, or a ``.txt`` / ``.jsonl`` / ``.parquet`` file
            or a folder of them (:func:`read_texts`).
        model: ``"tiny"``, ``"smollm2"``, a model folder or a hub name: any model whose
            attention transformers returns under eager attention (decoders and encoders); or a
            model in memory (with ``tokenizer``), measured where it is; or a list of them,
            measured on the same corpus into one set of tables (the ``model`` column tells
            them apart; :meth:`External.compare` draws them side by side).
        tokenizer: the tokenizer of a model in memory.
        adapter: a peft adapter folder on ``model`` (one model only).
        run: training run folder(s) (artent's, or a Trainer ``output_dir``), or
            ``{label: folder}``: every checkpoint along training.
        label: labels set by hand, one per input: each model first, then each run.
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
        window_start: how each window starts: ``"model"`` (as each model's tokenizer frames a
            text: BOS, nothing, or ``[CLS] ... [SEP]``), ``"bos"``, or ``"none"`` (the token
            stream cut as it is); see :mod:`artent.data.corpus`.
        profile_chunk_elements: map elements profiled at a time (bounds memory at long ``T``;
            the tables do not depend on it).
    """
    from artent.analysis.external import ExternalConfig

    texts = check_texts(texts)
    models = [] if model is None else list(model) if isinstance(model, list | tuple) else [model]
    inputs = _external_inputs(
        models, texts, adapter, run, out, encodings, orders, allow_pickle, progress
    )
    _check_out(out, "external", inputs)
    corpus = read_texts(texts)
    resolve_device(device, "device=")  # a device that is not there is refused before any work
    cfg = ExternalConfig(
        seq_len=seq_len,
        n_texts=n_texts,
        encodings=tuple(name_list(encodings, "encodings=")),
        orders=tuple(name_list(orders, "orders=")),
        window_start=window_start,
        profile_chunk_elements=profile_chunk_elements,
    )
    jobs, frames = _external_jobs(
        model, adapter, run, tokenizer, label, cfg, allow_pickle=allow_pickle
    )
    with _claim(out, "external", inputs) as claim:
        result = _measure_external(jobs, corpus, cfg, device, allow_pickle, progress, notify)
        if out is not None:
            folder = result.save(out, plot=True)
            if len(models) > 1:
                result.compare(folder / External.FIGURES[1])
            record = dict(
                cfg.__dict__,
                texts=corpus.source,
                device=device,
                jobs=[(j[0], j[1], j[3]) for j in jobs],
                window_frames=frames,
            )
            write_run_record(folder, "external", record)
            claim.commit()
    return result


def _external_inputs(models, texts, adapter, run, out, encodings, orders, allow_pickle, progress):
    """The arguments of :func:`external` checked (a TypeError naming one of the wrong type);
    the local paths it reads."""

    for i, one in enumerate(models):
        path_or_model(one, "model" if len(models) == 1 else f"model[{i}]")
    labelled_paths(run, "run")
    checked(
        path=dict(adapter=adapter, out=out),
        names=dict(encodings=encodings, orders=orders),
        flags=dict(allow_pickle=allow_pickle, progress=progress),
    )
    named = [*models, adapter, *(r for _, r in labelled(run)), *_text_inputs(texts)]
    return [p for p in named if isinstance(p, str | Path)]


def _external_jobs(model, adapter, run, tokenizer, label, cfg, *, allow_pickle):
    """The jobs of :func:`external` (:func:`artent.inputs.external_jobs`), every adapter checked
    on its base and every model's window frame read off its tokenizer before any model loads
    (a model in memory: the tokenizer given with it); ``(jobs, frames)``."""
    from artent.analysis.external.jobs import window_frames

    jobs = external_jobs(
        model=model,
        adapter=adapter,
        run=run,
        tokenizer=tokenizer,
        label=label,
        allow_pickle=allow_pickle,
    )
    for _, _, spec, _ in jobs:
        if spec.get("adapter"):
            check_adapter_on(spec["adapter"], spec["base"], allow_pickle=allow_pickle)
    frames = window_frames(
        [spec["base"] for _, _, spec, _ in jobs if "base" in spec],
        cfg.window_start,
        loaded={lab: spec["loaded"][1] for lab, _, spec, _ in jobs if "loaded" in spec},
    )
    return jobs, frames


def _measure_external(jobs, corpus, cfg, device, allow_pickle, progress, notify) -> External:
    """Every job measured into one :class:`External` (the ``model`` column: the base model's
    name; a model in memory: its label)."""
    from artent.analysis.external.jobs import measure_jobs

    tables = measure_jobs(
        jobs,
        corpus,
        cfg,
        model_names={lab: spec.get("base", lab) for lab, _, spec, _ in jobs},
        device=device,
        allow_pickle=allow_pickle,
        progress=progress,
        notify=notify,
    )
    return External(**{name: tables[name] for name in External._fields})


def nohair(
    models: Sequence[PathLike] | Mapping[str, PathLike],
    texts: PathLike | Sequence[str],
    *,
    base: str | None = None,
    label: str | Iterable[str] | None = None,
    seq_len: int = 64,
    n_texts: int = 8,
    modules: str | Iterable[str] = ("q_proj", "v_proj"),
    device: str | None = None,
    allow_pickle: bool = False,
    out: PathLike | None = None,
    notify: Callable[[str], None] | None = None,
    window_start: str = "model",
) -> NoHair:
    """Pairwise no-hair comparison: internal against external contrasts, attention outputs.

    Args:
        models: run folders (artent's or a Trainer ``output_dir``: the last checkpoint),
            adapter folders or fine-tuned model folders (adapter and model folders need
            ``base``), or ``{label: folder}``.
        texts: the corpus (as :func:`external` takes it); every model reads the same windows.
        base: the base model of adapter or model folders.
        label: labels set by hand, one per model (default: the shortest distinguishing path
            suffix).
        seq_len: tokens per window ``T``.
        n_texts: the most windows of ``T`` tokens.
        modules: modules of the internal profiles (``q_proj``, ``query``, ``q`` alike; the
            blocks of fused q/k/v projections).
        device: torch device of the profiles.
        allow_pickle: read pickle checkpoints.
        out: a folder to write the three tables, ``nohair.png`` and ``run.json`` into.
        notify: receives one-line notes (fewer windows than asked, no per-head context for an
            architecture); default ``warnings.warn``.
        window_start: how each window starts (``"model"``, ``"bos"``, ``"none"``; as
            :func:`external`); each model's windows are framed by its own tokenizer.
    """
    from artent.analysis.nohair import NoHairConfig, check_specs, resolve_specs, run_nohair

    if not isinstance(models, Mapping):
        path_list(models, "models")  # one string is a TypeError, never its characters
    texts = check_texts(texts)
    checked(
        path=dict(base=base, out=out),
        names=dict(modules=modules),
        flags=dict(allow_pickle=allow_pickle),
    )
    pairs = labelled(models)
    if label is not None:
        given = [label] if isinstance(label, str) else list(label)
    else:
        given = [lab for lab, _ in pairs]
    inputs = [base, *(str(m) for _, m in pairs), *_text_inputs(texts)]
    _check_out(out, "nohair", inputs)
    corpus = read_texts(texts)
    cfg = NoHairConfig(
        seq_len=seq_len,
        n_texts=n_texts,
        device=device,
        modules=name_list(modules, "modules="),
        allow_pickle=allow_pickle,
        window_start=window_start,
    )
    specs = resolve_specs([str(m) for _, m in pairs], base, given)
    check_specs(specs, cfg)  # every adapter against its base, before any model is loaded
    with _claim(out, "nohair", inputs) as claim:
        tables = run_nohair(specs, corpus, cfg, notify=notify)
        result = NoHair(tables["pairs"], tables["internal"], tables["external"])
        if out is not None:
            folder = result.save(out, plot=True)
            record = dict(cfg.__dict__, models=[s.__dict__ for s in specs])
            write_run_record(folder, "nohair", record)
            claim.commit()
    return result
