"""Commands that make things: profile, train, pretrain, demo, report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from artent.cli.app import Opt, UserError, app, console, err_console, report_errors
from artent.data.formats import DataError
from artent.entanglement import entanglement_profile
from artent.entanglement.sites import ORDERS
from artent.io import write_parquet
from artent.models.tiny import ensure_tiny_model
from artent.outdir import check_out_file
from artent.progress import progress
from artent.study import load_study_config, run_study
from artent.sweep import load_sweep_spec, run_sweep
from artent.training.config import make_config

PROFILE_COLUMNS = ("tensor", "layer", "module", "bond", "entropy")
#: more tensors than this: a progress line (a whole model's checkpoint)
PROGRESS_FROM = 8


def _adapter_updates(path: Path, tensor: list[str] | None, allow_pickle: bool):
    """``(name, layer, module, update)`` of each adapted module of an adapter folder: the merged
    update (``scale * B @ A`` and the like), never ``lora_A`` and ``lora_B`` apart."""
    # lazy: importing it imports torch (seconds), which `artent --help` need not
    from artent.models.adapter_check import read_adapter_config
    from artent.models.deltas import deltas_from_adapter

    targets = read_adapter_config(path).get("target_modules")
    modules = sorted(targets) if isinstance(targets, list) and targets else ["all"]
    deltas = list(deltas_from_adapter(path, modules=modules, allow_pickle=allow_pickle))
    if tensor:
        missing = [t for t in tensor if not any(t in (d.name, d.module) for d in deltas)]
        if missing:
            raise UserError(f"{path}: no adapted module named {missing[0]!r}")
        deltas = [d for d in deltas if d.name in tensor or d.module in tensor]
    zero = [d for d in deltas if d.is_zero]
    if zero and len(zero) == len(deltas):
        raise UserError(f"{path}: every adapted module's update is zero (B = 0 at initialisation)")
    if zero:
        err_console.print(
            f"{len(zero)} module(s) have a zero update and no profile ({zero[0].name}, ...)",
            highlight=False,
            soft_wrap=True,
        )
    return [(d.name, d.layer, d.module, d.update) for d in deltas if not d.is_zero]


def _checkpoint_tensors(ckpt, path: Path, tensor: list[str] | None):
    """``(name, layer, module, reader)`` of the 2-D float tensors asked for (default: all)."""
    # lazy: importing it imports torch (seconds), which `artent --help` need not
    from artent.models.checkpoints import parse_module_key

    missing = [n for n in tensor or [] if n not in ckpt]
    if missing:
        raise UserError(f"{path}: no tensor named {missing[0]!r}")
    wanted = tensor or [
        n
        for n in ckpt.keys()
        if len(ckpt.shape(n)) == 2 and getattr(ckpt.dtype(n), "is_floating_point", False)
    ]
    if not wanted:
        raise UserError(f"{path}: holds no 2-D float tensor")
    out = []
    for name in wanted:
        layer, module = parse_module_key(name) or (None, None)
        out.append((name, layer, module, lambda n=name: ckpt.get(n)))
    return out


@app.command()
def profile(
    path: Annotated[
        Path, typer.Argument(help="a .safetensors file, a checkpoint folder or a peft adapter")
    ],
    tensor: Annotated[
        list[str] | None,
        typer.Option("--tensor", "-t", help="tensor (adapter: module) name(s); default: all 2-D"),
    ] = None,
    renyi: Annotated[float, typer.Option(help="Renyi index (1 = von Neumann)")] = 1.0,
    log_base: Annotated[
        str | None, typer.Option("--log-base", help="'e' (nats, default) or '2' (bits)")
    ] = None,
    base: Annotated[
        str | None, typer.Option("--base", help="deprecated name of --log-base (one release)")
    ] = None,
    order: Annotated[str, typer.Option(help="sequential | interleaved")] = "sequential",
    out: Annotated[Path | None, typer.Option(help="write the profiles to this .parquet")] = None,
    allow_pickle: Annotated[bool, Opt("--allow-pickle", help="read pickle checkpoints")] = False,
) -> None:
    """Entanglement profile of the 2-D tensors of a checkpoint, or of each update of an adapter.

    A peft adapter folder is profiled per adapted module, on its merged update. --base is the old
    name of --log-base (a logarithm's base, not a base model), kept for this release.
    """
    import pandas as pd

    # lazy: importing it imports torch (seconds), which `artent --help` need not
    from artent.models.checkpoints import open_checkpoint

    if not path.exists():
        raise UserError(f"{path}: no such file")
    if base is not None:
        if log_base is not None and log_base != base:
            raise UserError(f"--base {base} and --log-base {log_base} disagree; give --log-base")
        err_console.print(
            "note: profile --base is now --log-base (the logarithm's base); --base goes in the "
            "next release",
            highlight=False,
            soft_wrap=True,
        )
    log_base = log_base or base or "e"
    if log_base not in ("e", "2"):
        raise UserError(f"--log-base must be 'e' (nats) or '2' (bits), not {log_base!r}")
    if order not in ORDERS:
        raise UserError(f"--order must be one of {', '.join(ORDERS)}, not {order!r}")
    if out is not None:
        check_out_file(out, inputs=[path], columns=PROFILE_COLUMNS)
    adapter = (path if path.is_dir() else path.parent) / "adapter_config.json"
    with open_checkpoint(path, allow_pickle=allow_pickle) as ckpt:
        if adapter.is_file():
            items = _adapter_updates(path, tensor, allow_pickle)
        else:
            items = _checkpoint_tensors(ckpt, path, tensor)
        rows = []
        bar = progress(items, desc=f"profile {path.name}", disable=len(items) <= PROGRESS_FROM)
        for name, layer, module, matrix in bar:
            try:
                prof = entanglement_profile(
                    matrix() if callable(matrix) else matrix,
                    renyi=renyi,
                    base=2 if log_base == "2" else log_base,
                    order=order,
                )
            except ValueError as e:
                raise UserError(f"{path}: tensor {name!r}: {e}") from None
            rows += [
                dict(tensor=name, layer=layer, module=module, bond=l, entropy=s)
                for l, s in enumerate(prof, 1)
            ]
        bar.close()
    frame = pd.DataFrame(rows, columns=list(PROFILE_COLUMNS))
    frame["layer"] = frame["layer"].astype("Int64")
    table = Table("tensor", "layer", "module", "bonds", "max S", "profile")
    for (name, layer, module), g in frame.groupby(
        ["tensor", "layer", "module"], sort=False, dropna=False
    ):
        table.add_row(
            name,
            "-" if pd.isna(layer) else str(int(layer)),
            "-" if module is None or pd.isna(module) else str(module),
            str(len(g)),
            f"{g.entropy.max():.4f}",
            " ".join(f"{s:.2f}" for s in g.entropy),
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
    model: Annotated[
        str | None, typer.Option(help="base: smollm2 (default) | tiny | folder | hub name")
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="auto (GPU if any) | cpu | cuda[:N]: training, attention")
    ] = None,
    window_start: Annotated[
        str | None,
        typer.Option(
            help="attention windows start as the tokenizer frames a text (model), bos, none"
        ),
    ] = None,
) -> None:
    """The paper end to end, offline, on SmolLM2: fine-tune, analyse, report (report.html)."""

    try:
        cfg = load_study_config(
            config,
            quick=quick or None,
            seed=seed,
            model=model,
            device=device,
            window_start=window_start,
        )
        report = run_study(out, cfg, log=lambda m: console.print(m, highlight=False, markup=False))
    except ValueError as e:
        raise UserError(str(e)) from None
    console.print(f"report: {report.resolve()}")


@app.command()
def report(
    study: Annotated[
        Path,
        typer.Argument(
            help="a study (artent demo), sweep (artent sweep) or internal-tables folder (artent "
            "internal, or a Trainer output folder with the entanglement callback's tables)"
        ),
    ],
) -> None:
    """(Re)write the report.html of a study, sweep or internal-tables folder from its tables."""
    # lazy: importing it imports pandas and matplotlib (seconds), which `artent --help` need not
    from artent.report import build_report
    from artent.report.tables import internal_folder

    is_study = (study / "study.json").is_file() or (study / "sweep.parquet").is_file()
    if not is_study and internal_folder(study) is None:
        raise UserError(
            f"{study}: not a study folder (no study.json), a sweep folder (no sweep.parquet) "
            f"or a folder of internal tables (no internal_summary.parquet, here or in artent/)"
        )
    try:
        console.print(f"report: {build_report(study).resolve()}")
    except ValueError as e:
        raise UserError(str(e)) from None


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
    device: Annotated[str | None, Opt(help="auto (GPU if any) | cpu | cuda[:N]")] = None,
    precision: Annotated[str | None, Opt(help="fp32 | bf16 (autocast forward)")] = None,
    allow_remote_code: Annotated[
        bool, Opt("--allow-remote-code", help="let transformers run the model's own code")
    ] = False,
    force: Annotated[bool, Opt("--force", help="redo a finished run")] = False,
) -> None:
    """Fine-tune by FFT, LoRA or MPS adaptation; checkpoints, losses, config in the run folder."""
    # lazy: importing it imports torch (seconds), which `artent --help` need not
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
        device=device,
        precision=precision,
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

    console.print(f"tiny model: {ensure_tiny_model(cache)}")


@app.command()
def sweep(
    spec: Annotated[Path, typer.Argument(help="YAML or JSON: base, grid, internal")],
    out: Annotated[Path, Opt(help="sweep folder")],
    ray: Annotated[str | None, Opt(help="Ray address, or 'local' to start one here")] = None,
    workers: Annotated[int, Opt(help="local processes / local Ray CPUs")] = 1,
) -> None:
    """A grid of training runs, each analysed; one table in OUT/sweep.parquet."""

    try:
        table = run_sweep(load_sweep_spec(spec), out, ray=ray, workers=workers)
    except (ValueError, ImportError) as e:
        raise UserError(str(e)) from None
    ok = int((table.status == "ok").sum())
    console.print(f"{ok}/{len(table)} points ok: {out / 'sweep.parquet'}")
    # lazy: importing it imports pandas and matplotlib (seconds), which `artent --help` need not
    from artent.report import build_report

    console.print(f"report: {build_report(out).resolve()}")
    failed = table[table.status != "ok"]
    if len(failed):  # each failed point on its own line; the others' results are kept
        report_errors(
            [f"sweep point {row.name}: {row.error}" for row in failed.itertuples()]
            + [f"{len(failed)} of {len(table)} sweep points failed; rerun to retry them"]
        )
