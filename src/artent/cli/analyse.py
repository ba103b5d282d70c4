"""Commands that analyse checkpoints: internal, external, nohair."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from artent import api
from artent.analysis.internal import valley_table
from artent.cli.app import Opt, UserError, app, console, err_console
from artent.cli.flags import as_flags
from artent.results import External, Internal, NoHair


@app.command()
def internal(
    out: Annotated[Path, Opt(help="output folder")],
    base: Annotated[
        str | None,
        Opt(help="base checkpoint (folder or .safetensors); also a Trainer run's base"),
    ] = None,
    tuned: Annotated[str | None, Opt(help="fine-tuned checkpoint (with --base)")] = None,
    adapter: Annotated[
        list[str] | None, Opt(help="PEFT adapter folder(s); --base optional (DoRA needs it)")
    ] = None,
    run: Annotated[
        list[str] | None,
        Opt(help="run folder(s): artent's, or a Trainer/TRL output_dir of checkpoint-N folders"),
    ] = None,
    modules: Annotated[
        str, Opt(help="modules to analyse, comma-separated; 'all': q,k,v,o,gate,up,down")
    ] = "q_proj,v_proj",
    layers: Annotated[str | None, Opt(help="layers to keep, e.g. 0,1,5-7")] = None,
    order: Annotated[str, Opt(help="sequential | interleaved")] = "sequential",
    k: Annotated[int, Opt(help="valley half-width in bonds")] = 2,
    device: Annotated[str | None, Opt(help="torch device for the profiles (e.g. cuda)")] = None,
    allow_pickle: Annotated[bool, Opt("--allow-pickle", help="read pickle checkpoints")] = False,
    workers: Annotated[
        int | None, Opt(help="updates profiled at once (default: one per core)")
    ] = None,
    label: Annotated[
        list[str] | None,
        Opt(
            help="a label per input, in order (--tuned, --adapter..., --run...); default: the "
            "shortest path suffix that tells the inputs apart"
        ),
    ] = None,
    what: Annotated[
        str, Opt(help="update (dW) | merged (W + dW) | base (W); merged and base need --base")
    ] = "update",
    intruder_k: Annotated[
        int, Opt(help="top singular vectors of W + dW checked for intruders (0: none)")
    ] = 10,
    intruder_eps: Annotated[float, Opt(help="intruder threshold on the largest |cos|")] = 0.5,
) -> None:
    """Entanglement profiles of weight updates: tuned - base, PEFT adapters, or training runs."""

    try:
        summary = api.internal(
            base=base,
            tuned=tuned,
            adapter=adapter,
            run=run,
            modules=modules,
            layers=layers,
            order=order,
            k=k,
            device=device,
            allow_pickle=allow_pickle,
            workers=workers,
            label=label,
            what=what,
            intruder_k=intruder_k,
            intruder_eps=intruder_eps,
            out=out,
            progress=True,
        ).summary
    except ValueError as e:
        raise UserError(str(e)) from None
    zero = summary[summary.status == "zero update"]
    table = Table(
        "label",
        "step",
        "modules",
        "mean S_cut",
        "mean ln r",
        "all <= ln r",
        "valley depth",
        "S_cut/Page",
        "stable rank",
        "intruders",
        title=f"internal entanglement of the {what} (nats)",
    )
    table.columns[0].no_wrap = True  # a label is what the reader looks up: never broken
    ok = summary[summary.status == "ok"]
    for r in valley_table(ok.assign(step=ok.step.fillna(-1)), by=("label", "step")).itertuples():
        bounded = r.ln_rank == r.ln_rank  # a dense update (FFT) has no ln r to be within
        table.add_row(
            r.label,
            "-" if r.step < 0 else str(int(r.step)),
            str(r.updates),
            f"{r.center_entropy:.3f}",
            f"{r.ln_rank:.3f}" if bounded else "-",
            str(r.within_bound == 1) if bounded else "-",
            f"{r.valley_depth:.3f}",
            f"{r.valley_ratio:.3f}",
            f"{r.stable_rank:.2f}",
            "-" if r.intruders != r.intruders else f"{r.intruders:.2f}",
        )
    console.print(table)
    if len(zero):
        console.print(f"{len(zero)} module(s) have a zero update (reported as 'zero update')")
    console.print(f"results in {out}/ ({', '.join(Internal.writes())})")


def _note_once():
    """A printer of one-line notes (fewer windows than asked...) that says each once."""
    said: set[str] = set()

    def note(message: str) -> None:
        if message not in said:
            said.add(message)
            err_console.print(as_flags(message), highlight=False, soft_wrap=True)

    return note


TEXTS_HELP = "corpus: .txt (paragraphs), .jsonl / .parquet ('text'), or a folder of them"
WINDOW_START_HELP = (
    "how each window starts: model (as the tokenizer frames a text: BOS, nothing, or "
    "[CLS] ... [SEP]), bos, or none (the token stream cut as it is)"
)


@app.command()
def external(
    out: Annotated[Path, Opt(help="output folder")],
    texts: Annotated[Path, Opt(help=TEXTS_HELP)],
    model: Annotated[
        list[str] | None,
        Opt(help="'tiny', 'smollm2', a model folder or a hub name; repeat to compare models"),
    ] = None,
    adapter: Annotated[str | None, Opt(help="a PEFT adapter folder on --model")] = None,
    run: Annotated[
        list[str] | None, Opt(help="run folder(s): artent's, or a Trainer/TRL output_dir")
    ] = None,
    seq_len: Annotated[int, Opt(help="tokens per window (T)")] = 64,
    n_texts: Annotated[int, Opt(help="most windows of T tokens cut from the corpus")] = 8,
    encodings: Annotated[str, Opt(help="amplitude,born")] = "amplitude,born",
    orders: Annotated[str, Opt(help="sequential,interleaved")] = "sequential,interleaved",
    device: Annotated[
        str, Opt(help="torch device of the model and eigen-solves (auto: the GPU if present)")
    ] = "auto",
    allow_pickle: Annotated[bool, Opt("--allow-pickle", help="read pickle checkpoints")] = False,
    window_start: Annotated[str, Opt(help=WINDOW_START_HELP)] = "model",
    label: Annotated[
        list[str] | None, Opt(help="a label per input, in order (--model, --run...)")
    ] = None,
    profile_chunk_elements: Annotated[
        int, Opt(help="attention-map elements profiled at a time: bounds memory at long T")
    ] = 2**23,
) -> None:
    """Entanglement profiles of attention matrices, their Cardy fits and the random baseline."""
    try:
        result = api.external(
            texts,
            model=model,
            window_start=window_start,
            adapter=adapter,
            run=run,
            label=label,
            seq_len=seq_len,
            n_texts=n_texts,
            encodings=encodings,
            orders=orders,
            device=device,
            allow_pickle=allow_pickle,
            out=out,
            progress=True,
            notify=_note_once(),
            profile_chunk_elements=profile_chunk_elements,
        )
    except ValueError as e:
        raise UserError(str(e)) from None
    merged = result.tables()
    s = merged["external_summary"]
    table = Table(
        "model",
        "label",
        "step",
        "encoding",
        "order",
        "mean c",
        "mean R^2",
        "area+log wins",
        title="external entanglement (attention), Cardy fits",
    )
    for (name, label, step, enc, order), g in s.groupby(
        ["model", "label", s.step.fillna(-1), "encoding", "order"], sort=False
    ):
        table.add_row(
            name,
            label,
            "-" if step < 0 else str(int(step)),
            enc,
            order,
            f"{g.c.mean():.3f}",
            f"{g.r2.mean():.3f}",
            f"{(g.law == 'area+log').mean():.0%}",
        )
    console.print(table)
    written = External.writes() if s.model.nunique() > 1 else External.writes()[:-1]
    console.print(f"results in {out}/ ({', '.join(written)})")


@app.command()
def nohair(
    models: Annotated[list[str], typer.Argument(help="run folders, adapter or model folders")],
    texts: Annotated[Path, Opt(help=TEXTS_HELP)],
    out: Annotated[Path, Opt(help="output folder")],
    base: Annotated[str | None, Opt(help="base model, for adapter or model folders")] = None,
    seq_len: Annotated[int, Opt(help="tokens per window (T)")] = 64,
    n_texts: Annotated[int, Opt(help="most windows of T tokens cut from the corpus")] = 8,
    modules: Annotated[str, Opt(help="modules of the internal profiles")] = "q_proj,v_proj",
    device: Annotated[str | None, Opt(help="torch device for the profiles")] = None,
    allow_pickle: Annotated[bool, Opt("--allow-pickle", help="read pickle checkpoints")] = False,
    window_start: Annotated[str, Opt(help=WINDOW_START_HELP)] = "model",
    label: Annotated[list[str] | None, Opt(help="a label per model, in order")] = None,
) -> None:
    """Pairwise no-hair comparison: internal vs external contrasts, attention-output distances."""
    try:
        pairs = api.nohair(
            models,
            texts,
            base=base,
            seq_len=seq_len,
            n_texts=n_texts,
            modules=modules,
            device=device,
            allow_pickle=allow_pickle,
            label=label,
            out=out,
            notify=_note_once(),
            window_start=window_start,
        ).pairs
    except ValueError as e:
        raise UserError(str(e)) from None
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
    for r in pairs.itertuples():
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
    console.print(f"results in {out}/ ({', '.join(NoHair.writes())})")
