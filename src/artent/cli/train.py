"""The commands that train: train (fine-tuning runs), pretrain (the offline tiny model)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from artent.cli.app import Opt, UserError, app, console
from artent.data.formats import DataError
from artent.models.tiny import ensure_tiny_model
from artent.training.config import make_config


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
