"""The commands of many runs and their report: demo (the study), sweep, report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from artent.cli.app import Opt, UserError, app, console, report_errors
from artent.folders.layout import STUDY_RECORD, SWEEP_TABLE
from artent.pipelines.study_config import load_study_config
from artent.results import Internal


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
    from artent.pipelines.study import run_study

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
    from artent.report import build_report
    from artent.report.tables import internal_folder

    is_study = (study / STUDY_RECORD).is_file() or (study / SWEEP_TABLE).is_file()
    if not is_study and internal_folder(study) is None:
        raise UserError(
            f"{study}: not a study folder (no {STUDY_RECORD}), a sweep folder (no {SWEEP_TABLE}) "
            f"or a folder of internal tables (no {Internal.file('summary')}, here or in artent/)"
        )
    try:
        console.print(f"report: {build_report(study).resolve()}")
    except ValueError as e:
        raise UserError(str(e)) from None


@app.command()
def sweep(
    spec: Annotated[Path, typer.Argument(help="YAML or JSON: base, grid, internal")],
    out: Annotated[Path, Opt(help="sweep folder")],
    ray: Annotated[str | None, Opt(help="Ray address, or 'local' to start one here")] = None,
    workers: Annotated[int, Opt(help="local processes / local Ray CPUs")] = 1,
) -> None:
    """A grid of training runs, each analysed; one table in OUT/sweep.parquet."""
    from artent.pipelines.sweep import load_sweep_spec, run_sweep

    try:
        table = run_sweep(load_sweep_spec(spec), out, ray=ray, workers=workers)
    except (ValueError, ImportError) as e:
        raise UserError(str(e)) from None
    ok = int((table.status == "ok").sum())
    console.print(f"{ok}/{len(table)} points ok: {out / SWEEP_TABLE}")
    from artent.report import build_report

    console.print(f"report: {build_report(out).resolve()}")
    failed = table[table.status != "ok"]
    if len(failed):  # each failed point on its own line; the others' results are kept
        report_errors(
            [f"sweep point {row.name}: {row.error}" for row in failed.itertuples()]
            + [f"{len(failed)} of {len(table)} sweep points failed; rerun to retry them"]
        )
