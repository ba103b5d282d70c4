"""Commands that analyse checkpoints: internal, external, nohair."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from artent.cli.app import Opt, UserError, app, console, err_console


def _layers(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        out: list[int] = []
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
        return out
    except ValueError:
        raise UserError(f"--layers must look like 0,1,5-7, got {text!r}") from None


@app.command()
def internal(
    out: Annotated[Path, Opt(help="output folder")],
    base: Annotated[str | None, Opt(help="base checkpoint (folder or .safetensors)")] = None,
    tuned: Annotated[str | None, Opt(help="fine-tuned checkpoint (with --base)")] = None,
    adapter: Annotated[
        list[str] | None, Opt(help="PEFT adapter folder(s); --base optional (DoRA needs it)")
    ] = None,
    run: Annotated[
        list[str] | None, Opt(help="artent training run folder(s): every checkpoint")
    ] = None,
    modules: Annotated[str, Opt(help="modules to analyse")] = "q_proj,v_proj",
    layers: Annotated[str | None, Opt(help="layers to keep, e.g. 0,1,5-7")] = None,
    order: Annotated[str, Opt(help="sequential | interleaved")] = "sequential",
    k: Annotated[int, Opt(help="valley half-width in bonds")] = 2,
    device: Annotated[str | None, Opt(help="torch device for the profiles (e.g. cuda)")] = None,
    allow_pickle: Annotated[bool, Opt("--allow-pickle", help="read pickle checkpoints")] = False,
) -> None:
    """Entanglement profiles of weight updates: tuned - base, PEFT adapters, or training runs."""
    from artent.analysis.internal import (
        InternalConfig,
        Source,
        plot_internal,
        run_internal,
        sources_from_run,
    )
    from artent.io import write_parquet, write_run_record

    try:
        cfg = InternalConfig(
            modules=modules,
            layers=_layers(layers),
            k=k,
            order=order,
            device=device,
            allow_pickle=allow_pickle,
        )
        sources: list[Source] = []
        if tuned:
            if not base:
                raise UserError("--tuned needs --base (the checkpoint it was tuned from)")
            sources.append(Source(Path(tuned).name, None, "pair", tuned, base))
        for a in adapter or []:
            sources.append(Source(Path(a).name, None, "adapter", a, base))
        for r in run or []:
            sources += sources_from_run(r)
        if not sources:
            raise UserError("nothing to analyse: pass --base/--tuned, --adapter or --run")
        profiles, summary = run_internal(sources, cfg)
    except ValueError as e:
        raise UserError(str(e)) from None
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(out / "internal.parquet", profiles)
    write_parquet(out / "internal_summary.parquet", summary)
    plot_internal(profiles, summary, out / "internal.png")
    write_run_record(out, "internal", dict(cfg.__dict__, sources=[s.__dict__ for s in sources]))
    zero = summary[summary.status == "zero update"]
    table = Table(
        "source",
        "step",
        "modules",
        "mean S_cut",
        "mean ln r",
        "all <= ln r",
        "valley depth",
        "S_cut/Page",
        title="internal entanglement (nats)",
    )
    ok = summary[summary.status == "ok"]
    for (label, step), g in ok.groupby(["label", ok.step.fillna(-1)], sort=False):
        table.add_row(
            label,
            "-" if step < 0 else str(int(step)),
            str(len(g)),
            f"{g.center_entropy.mean():.3f}",
            f"{g.ln_rank.mean():.3f}",
            str(bool(g.within_bound.all())),
            f"{g.valley_depth.mean():.3f}",
            f"{g.valley_ratio.mean():.3f}",
        )
    console.print(table)
    if len(zero):
        console.print(f"{len(zero)} module(s) have a zero update (reported as 'zero update')")
    console.print(f"results in {out}/ (internal.parquet, internal_summary.parquet, internal.png)")


def _corpus(path: Path):
    """The corpus behind --texts (file names checked now, contents read by the analysis)."""
    from artent.data.corpus import read_corpus

    try:
        return read_corpus(path)
    except ValueError as e:
        raise UserError(f"--{e}") from None


def _note_once():
    """A printer of corpus notes that says each one once (several models read one corpus)."""
    said: set[str] = set()

    def note(message: str) -> None:
        if message not in said:
            said.add(message)
            err_console.print(message, highlight=False, soft_wrap=True)

    return note


@app.command()
def external(
    out: Annotated[Path, Opt(help="output folder")],
    texts: Annotated[
        Path, Opt(help="corpus: .txt (paragraphs), .jsonl / .parquet ('text'), or a folder")
    ],
    model: Annotated[str | None, Opt(help="'tiny', a model folder or a hub name")] = None,
    adapter: Annotated[str | None, Opt(help="a PEFT adapter folder on --model")] = None,
    run: Annotated[list[str] | None, Opt(help="artent run folder(s): every checkpoint")] = None,
    seq_len: Annotated[int, Opt(help="tokens per window (T)")] = 64,
    n_texts: Annotated[int, Opt(help="most windows of T tokens cut from the corpus")] = 8,
    encodings: Annotated[str, Opt(help="amplitude,born")] = "amplitude,born",
    orders: Annotated[str, Opt(help="sequential,interleaved")] = "sequential,interleaved",
    device: Annotated[
        str, Opt(help="torch device of the model and eigen-solves (auto: GPU if present)")
    ] = "auto",
) -> None:
    """Entanglement profiles of attention matrices, their Cardy fits and the random baseline."""
    import pandas as pd

    from artent.analysis.external import ExternalConfig, plot_external, run_external
    from artent.analysis.runs import run_checkpoints
    from artent.io import write_parquet, write_run_record
    from artent.models.loading import load_for_forward

    corpus = _corpus(texts)
    note = _note_once()
    try:
        cfg = ExternalConfig(
            seq_len=seq_len,
            n_texts=n_texts,
            encodings=tuple(encodings.split(",")),
            orders=tuple(orders.split(",")),
        )
        jobs: list[tuple[str, int | None, dict]] = []
        if model:
            jobs.append(
                (
                    Path(adapter).name if adapter else Path(model).name,
                    None,
                    dict(base=model, adapter=adapter),
                )
            )
        for r in run or []:
            for c in run_checkpoints(r):
                kind = "full" if c.is_full else "adapter"
                jobs.append((c.label, c.step, dict(base=c.base, **{kind: c.path})))
        if not jobs:
            raise UserError("nothing to analyse: pass --model (and --adapter) or --run")
        tables: dict[str, list] = {}
        for label, step, spec in jobs:
            m, tok = load_for_forward(**spec, device=device)
            with console.status(
                f"attention of {label}" + (f" step {step}" if step is not None else "")
            ):
                result = run_external(m, tok, corpus, cfg, step=step, label=label, notify=note)
                for name, frame in result.items():
                    tables.setdefault(name, []).append(frame)
        merged = {k: pd.concat(v, ignore_index=True) for k, v in tables.items()}
    except ValueError as e:
        raise UserError(str(e)) from None
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in merged.items():
        write_parquet(out / f"{name}.parquet", frame)
    plot_external(merged, out / "external.png")
    write_run_record(
        out, "external", dict(cfg.__dict__, texts=str(texts), jobs=[j[:2] for j in jobs])
    )
    s = merged["external_summary"]
    table = Table(
        "label",
        "step",
        "encoding",
        "order",
        "mean c",
        "mean R^2",
        "area+log wins",
        title="external entanglement (attention), Cardy fits",
    )
    for (label, step, enc, order), g in s.groupby(
        ["label", s.step.fillna(-1), "encoding", "order"], sort=False
    ):
        table.add_row(
            label,
            "-" if step < 0 else str(int(step)),
            enc,
            order,
            f"{g.c.mean():.3f}",
            f"{g.r2.mean():.3f}",
            f"{(g.law == 'area+log').mean():.0%}",
        )
    console.print(table)
    console.print(f"results in {out}/ ({', '.join(f'{k}.parquet' for k in merged)}, external.png)")


@app.command()
def nohair(
    models: Annotated[list[str], typer.Argument(help="run folders, adapter or model folders")],
    texts: Annotated[
        Path, Opt(help="corpus: .txt (paragraphs), .jsonl / .parquet ('text'), or a folder")
    ],
    out: Annotated[Path, Opt(help="output folder")],
    base: Annotated[str | None, Opt(help="base model, for adapter or model folders")] = None,
    seq_len: Annotated[int, Opt(help="tokens per window (T)")] = 64,
    n_texts: Annotated[int, Opt(help="most windows of T tokens cut from the corpus")] = 8,
    modules: Annotated[str, Opt(help="modules of the internal profiles")] = "q_proj,v_proj",
    device: Annotated[str | None, Opt(help="torch device for the profiles")] = None,
) -> None:
    """Pairwise no-hair comparison: internal vs external contrasts, attention-output distances."""
    from artent.analysis.nohair import NoHairConfig, plot_nohair, resolve_specs, run_nohair
    from artent.io import write_parquet, write_run_record

    corpus = _corpus(texts)
    try:
        cfg = NoHairConfig(
            seq_len=seq_len,
            n_texts=n_texts,
            device=device,
            modules=[m for m in modules.split(",") if m],
        )
        specs = resolve_specs(models, base)
        result = run_nohair(specs, corpus, cfg, notify=_note_once())
    except ValueError as e:
        raise UserError(str(e)) from None
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(out / "nohair.parquet", result["pairs"])
    write_parquet(out / "nohair_internal.parquet", result["internal"])
    write_parquet(out / "nohair_external.parquet", result["external"])
    plot_nohair(result["pairs"], out / "nohair.png")
    write_run_record(out, "nohair", dict(cfg.__dict__, models=[s.__dict__ for s in specs]))
    table = Table(
        "model",
        "vs",
        "internal |dS|",
        "external |dS|",
        "ratio",
        "context dist",
        "context cos",
        "attention JS",
        title="no-hair comparison (nats)",
    )
    for r in result["pairs"].itertuples():
        table.add_row(
            r.model,
            r.reference,
            f"{r.internal_contrast:.4f}",
            f"{r.external_contrast:.4f}",
            f"{r.nohair_ratio:.4f}",
            f"{r.context_rel_dist:.4f}",
            f"{r.context_cos:.4f}",
            f"{r.attention_js:.2e}",
        )
    console.print(table)
    console.print(
        f"results in {out}/ (nohair.parquet, nohair_internal/external.parquet, nohair.png)"
    )
