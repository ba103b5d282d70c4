"""The command that profiles a checkpoint's or an adapter's tensors: profile."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from artent.cli.app import Opt, UserError, app, console, err_console
from artent.entanglement import entanglement_profile
from artent.entanglement.sites import ORDERS
from artent.folders.atomic import write_parquet
from artent.folders.claim import check_out_file
from artent.progress import progress

PROFILE_COLUMNS = ("tensor", "layer", "module", "bond", "entropy")
#: more tensors than this: a progress line (a whole model's checkpoint)
PROGRESS_FROM = 8


def _adapter_updates(path: Path, tensor: list[str] | None, allow_pickle: bool):
    """``(name, layer, module, update)`` of each adapted module of an adapter folder: the merged
    update (``scale * B @ A`` and the like), never ``lora_A`` and ``lora_B`` apart."""
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
