"""The ``artent`` command line: parses options, calls the layers beneath, prints. No maths here.

A user mistake (a missing file, a bad option, a tensor that is not there) ends with one line on
stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="artent: artificial entanglement of fine-tuned language models.",
)
# Rich falls back to 80 columns off a terminal; tables of profiles need more.
console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


class UserError(Exception):
    """A mistake in what the user asked for: reported in one line, exit code 2."""


@app.command()
def profile(
    path: Annotated[Path, typer.Argument(help="a .safetensors file")],
    tensor: Annotated[
        list[str] | None, typer.Option("--tensor", "-t", help="tensor name(s); default: all 2-D")
    ] = None,
    renyi: Annotated[float, typer.Option(help="Renyi index (1 = von Neumann)")] = 1.0,
    base: Annotated[str, typer.Option(help="'e' (nats) or '2' (bits)")] = "e",
    order: Annotated[str, typer.Option(help="sequential | interleaved")] = "sequential",
    out: Annotated[Path | None, typer.Option(help="write the profiles to this .parquet")] = None,
) -> None:
    """Entanglement profile of 2-D tensors in a safetensors file."""
    import pandas as pd
    from safetensors import SafetensorError, safe_open

    from artent.entanglement import entanglement_profile
    from artent.io import write_parquet

    if not path.is_file():
        raise UserError(f"{path}: no such file")
    base_arg: str | int = 2 if base == "2" else base
    try:
        with safe_open(str(path), framework="pt") as f:
            names = list(f.keys())
            wanted = tensor or [n for n in names if len(f.get_slice(n).get_shape()) == 2]
            missing = [n for n in wanted if n not in names]
            if missing:
                raise UserError(f"{path}: no tensor named {missing[0]!r}")
            if not wanted:
                raise UserError(f"{path}: holds no 2-D tensor")
            rows = []
            for name in wanted:
                try:
                    prof = entanglement_profile(
                        f.get_tensor(name), renyi=renyi, base=base_arg, order=order
                    )
                except ValueError as e:
                    raise UserError(f"{path}: tensor {name!r}: {e}") from None
                rows += [dict(tensor=name, bond=l, entropy=s) for l, s in enumerate(prof, 1)]
    except SafetensorError as e:
        raise UserError(f"{path}: not a readable safetensors file ({e})") from None
    frame = pd.DataFrame(rows)
    table = Table("tensor", "bonds", "max S", "profile")
    for name, g in frame.groupby("tensor", sort=False):
        table.add_row(
            name, str(len(g)), f"{g.entropy.max():.4f}", " ".join(f"{s:.2f}" for s in g.entropy)
        )
    console.print(table)
    if out is not None:
        write_parquet(out, frame)
        console.print(f"wrote {out}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="study folder")] = Path("runs/demo"),
    quick: Annotated[
        bool, typer.Option("--quick", help="smallest study showing each effect")
    ] = False,
    config: Annotated[
        Path | None, typer.Option(help="study config (JSON/YAML), e.g. paper scale")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="seed of every run")] = None,
) -> None:
    """The paper end to end, offline: pretrain, fine-tune, analyse, report (report.html)."""
    from artent.study import load_study_config, run_study

    try:
        cfg = load_study_config(config, quick=quick or None, seed=seed)
        report = run_study(out, cfg, log=lambda m: console.print(m, highlight=False, markup=False))
    except ValueError as e:
        raise UserError(str(e)) from None
    console.print(f"report: {report.resolve()}")


@app.command()
def report(
    study: Annotated[Path, typer.Argument(help="a study folder written by artent demo")],
) -> None:
    """(Re)write a study's report.html from its tables."""
    from artent.report import build_report

    if not (study / "study.json").is_file():
        raise UserError(f"{study}: not a study folder (no study.json)")
    try:
        console.print(f"report: {build_report(study).resolve()}")
    except ValueError as e:
        raise UserError(str(e)) from None


Opt = typer.Option


@app.command()
def train(
    method: Annotated[str | None, Opt(help="fft | lora | mps")] = None,
    model: Annotated[str | None, Opt(help="'tiny', a local folder, or a hub name")] = None,
    data: Annotated[
        str | None, Opt(help="synthetic-tulu | synthetic-openthoughts | file/folder | hub name")
    ] = None,
    out: Annotated[str | None, Opt(help="run folder")] = None,
    config: Annotated[Path | None, Opt(help="JSON or YAML file of the same options")] = None,
    rank: Annotated[int | None, Opt(help="LoRA / MPS rank r")] = None,
    alpha: Annotated[float | None, Opt(help="LoRA / MPS alpha (scale alpha / r)")] = None,
    chi: Annotated[int | None, Opt(help="MPS bond dimension")] = None,
    n1: Annotated[int | None, Opt(help="MPS input split n = n1 * n2")] = None,
    dropout: Annotated[float | None, Opt(help="adapter dropout")] = None,
    rslora: Annotated[
        bool | None, Opt("--rslora/--no-rslora", help="rank-stabilised scale")
    ] = None,
    lr: Annotated[float | None, Opt(help="peak learning rate")] = None,
    warmup_steps: Annotated[int | None, Opt(help="linear warm-up steps")] = None,
    schedule: Annotated[str | None, Opt(help="constant | cosine (after warm-up)")] = None,
    steps: Annotated[int | None, Opt(help="optimiser steps")] = None,
    batch_size: Annotated[int | None, Opt(help="sequences per step")] = None,
    seq_len: Annotated[int | None, Opt(help="tokens per sequence")] = None,
    packing: Annotated[bool | None, Opt("--packing/--padding", help="pack or pad")] = None,
    seed: Annotated[int | None, Opt(help="seed")] = None,
    targets: Annotated[str | None, Opt(help="modules to adapt, e.g. q_proj,v_proj")] = None,
    save_steps: Annotated[str | None, Opt(help="checkpoint steps, e.g. 0,25,50")] = None,
    eval_every: Annotated[int | None, Opt(help="held-out evaluation period")] = None,
    limit: Annotated[int | None, Opt(help="read at most this many conversations")] = None,
    allow_remote_code: Annotated[
        bool, Opt("--allow-remote-code", help="let transformers run the model's own code")
    ] = False,
    force: Annotated[bool, Opt("--force", help="redo a finished run")] = False,
) -> None:
    """Fine-tune by FFT, LoRA or MPS adaptation; checkpoints, losses, config in the run folder."""
    from artent.data.formats import DataError
    from artent.training.config import make_config
    from artent.training.loop import RunFinished
    from artent.training.loop import train as run_training

    opts = dict(
        method=method,
        model=model,
        data=data,
        out=out,
        rank=rank,
        alpha=alpha,
        chi=chi,
        n1=n1,
        dropout=dropout,
        rslora=rslora,
        lr=lr,
        warmup_steps=warmup_steps,
        schedule=schedule,
        steps=steps,
        batch_size=batch_size,
        seq_len=seq_len,
        packing=packing,
        seed=seed,
        targets=targets,
        save_steps=save_steps,
        eval_every=eval_every,
        limit=limit,
        allow_remote_code=allow_remote_code or None,
    )
    try:
        cfg = make_config(config, **opts)
        folder = run_training(cfg, force=force)
    except RunFinished as e:
        console.print(f"{e} holds this run, finished; nothing to do (--force redoes it)")
        return
    except (ValueError, DataError) as e:
        raise UserError(str(e)) from None
    console.print(f"run folder: {folder}")


@app.command()
def pretrain(
    cache: Annotated[
        Path | None, Opt(help="cache root (default $ARTENT_CACHE or ~/.cache/artent)")
    ] = None,
) -> None:
    """Pretrain the offline tiny LLaMA and its tokenizer (once; cached)."""
    from artent.models.tiny import ensure_tiny_model

    console.print(f"tiny model: {ensure_tiny_model(cache)}")


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


def _read_texts(path: Path) -> list[str]:
    """One text per non-empty line (a .txt file) or per record (.jsonl with a 'text' field)."""
    import json

    if not path.is_file():
        raise UserError(f"--texts {path}: no such file")
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    if path.suffix == ".jsonl":
        try:
            lines = [json.loads(ln)["text"] for ln in lines]
        except (ValueError, KeyError, TypeError):
            raise UserError(
                f"--texts {path}: every line must be JSON with a 'text' field"
            ) from None
    if not lines:
        raise UserError(f"--texts {path}: no texts in the file")
    return lines


@app.command()
def external(
    out: Annotated[Path, Opt(help="output folder")],
    texts: Annotated[
        Path, Opt(help="texts: one per line (.txt) or {'text': ...} per line (.jsonl)")
    ],
    model: Annotated[str | None, Opt(help="'tiny', a model folder or a hub name")] = None,
    adapter: Annotated[str | None, Opt(help="a PEFT adapter folder on --model")] = None,
    run: Annotated[list[str] | None, Opt(help="artent run folder(s): every checkpoint")] = None,
    seq_len: Annotated[int, Opt(help="tokens per text (T)")] = 64,
    n_texts: Annotated[int, Opt(help="texts used")] = 8,
    encodings: Annotated[str, Opt(help="amplitude,born")] = "amplitude,born",
    orders: Annotated[str, Opt(help="sequential,interleaved")] = "sequential,interleaved",
    device: Annotated[str | None, Opt(help="torch device for the eigen-solves")] = None,
) -> None:
    """Entanglement profiles of attention matrices, their Cardy fits and the random baseline."""
    import pandas as pd

    from artent.analysis.external import ExternalConfig, plot_external, run_external
    from artent.analysis.runs import run_checkpoints
    from artent.io import write_parquet, write_run_record
    from artent.models.loading import load_for_forward

    lines = _read_texts(texts)
    try:
        cfg = ExternalConfig(
            seq_len=seq_len,
            n_texts=n_texts,
            device=device,
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
            m, tok = load_for_forward(**spec)
            with console.status(
                f"attention of {label}" + (f" step {step}" if step is not None else "")
            ):
                for name, frame in run_external(m, tok, lines, cfg, step=step, label=label).items():
                    tables.setdefault(name, []).append(frame)
        merged = {k: pd.concat(v, ignore_index=True) for k, v in tables.items()}
    except ValueError as e:
        raise UserError(str(e)) from None
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in merged.items():
        write_parquet(out / f"{name}.parquet", frame)
    plot_external(merged, out / "external.png")
    write_run_record(out, "external", dict(cfg.__dict__, jobs=[j[:2] for j in jobs]))
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
    texts: Annotated[Path, Opt(help="texts: one per line (.txt) or .jsonl with 'text'")],
    out: Annotated[Path, Opt(help="output folder")],
    base: Annotated[str | None, Opt(help="base model, for adapter or model folders")] = None,
    seq_len: Annotated[int, Opt(help="tokens per text")] = 64,
    n_texts: Annotated[int, Opt(help="texts used")] = 8,
    modules: Annotated[str, Opt(help="modules of the internal profiles")] = "q_proj,v_proj",
    device: Annotated[str | None, Opt(help="torch device for the profiles")] = None,
) -> None:
    """Pairwise no-hair comparison: internal vs external contrasts, attention-output distances."""
    from artent.analysis.nohair import NoHairConfig, plot_nohair, resolve_specs, run_nohair
    from artent.io import write_parquet, write_run_record

    lines = _read_texts(texts)
    try:
        cfg = NoHairConfig(
            seq_len=seq_len,
            n_texts=n_texts,
            device=device,
            modules=[m for m in modules.split(",") if m],
        )
        specs = resolve_specs(models, base)
        result = run_nohair(specs, lines, cfg)
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``artent`` console script; returns the exit code."""
    import click

    try:
        app(args=argv, standalone_mode=False)
    except UserError as e:
        err_console.print(f"[red]error:[/red] {e}", highlight=False)
        return 2
    except click.exceptions.Abort:
        err_console.print("aborted")
        return 130
    except click.exceptions.ClickException as e:
        err_console.print(f"[red]error:[/red] {e.format_message()}", highlight=False)
        return 2
    except click.exceptions.Exit as e:
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
