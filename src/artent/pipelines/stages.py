"""The analysis stages of ``artent demo``, each one function that saves one result.

A stage reads the study's trained runs and corpus (:class:`StageInputs`) and saves its result into
its folder of the study (:data:`artent.folders.layout.STUDY_STAGES`); the study skips a stage
whose result is saved already (:meth:`artent.results.Internal.saved` and the like). To add an
analysis to the study: one function here and one entry of :data:`STAGES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artent.analysis.attention_sink import SINK_FILE, attention_sink, sink_table
from artent.analysis.baselines import BaselineStudyConfig, run_baseline_study
from artent.analysis.external import ExternalConfig, run_external
from artent.analysis.external.jobs import measure_runs
from artent.analysis.internal import InternalConfig, run_internal, sources_from_run
from artent.analysis.nohair import NoHairConfig, resolve_specs, run_nohair
from artent.data.corpus import Corpus
from artent.folders.atomic import write_parquet
from artent.folders.layout import STUDY_STAGES
from artent.models.loading import load_for_forward
from artent.pipelines.study_config import StudyConfig
from artent.results import Baselines, External, Internal, NoHair


@dataclass
class StageInputs:
    """What the stages of a study read.

    Attributes:
        out: the study folder.
        cfg: its config.
        plan: the planned training runs (:meth:`StudyConfig.runs`).
        run_dirs: their folders, trained, in plan order.
        model: the base model's local folder.
        device: where the attention analyses run.
        texts: the held-out corpus.
        long_texts: the corpus of the base-attention stage (read when that stage asks).
        progress: show progress bars.
    """

    out: Path
    cfg: StudyConfig
    plan: list[dict]
    run_dirs: list[Path]
    model: str
    device: Any
    texts: Corpus
    long_texts: Callable[[], Corpus]
    progress: bool

    def folder(self, stage: str) -> Path:
        """The folder of a stage's tables."""
        return self.out / STUDY_STAGES[stage]


def internal_stage(s: StageInputs) -> None:
    """Every checkpoint of every run: the internal profiles (and their figure)."""
    sources = [source for run in s.run_dirs for source in sources_from_run(run)]
    result = Internal(*run_internal(sources, InternalConfig(), progress=s.progress))
    result.save(s.folder("internal"), plot=True)


def external_stage(s: StageInputs) -> None:
    """Every checkpoint of every run: the attention profiles (step 0 measured once)."""
    cfg = ExternalConfig(
        seq_len=s.cfg.text_len,
        n_texts=s.cfg.n_texts,
        orders=("sequential", "interleaved"),
        baseline_samples=8,
        window_start=s.cfg.window_start,
    )
    tables = measure_runs(s.run_dirs, s.texts, cfg, device=s.device)
    External(**tables).save(s.folder("external"))


def nohair_stage(s: StageInputs) -> None:
    """The runs of the first data set (LoRA at the sweep rank only), compared pairwise."""
    first = s.cfg.data[0]
    picks = [
        run
        for run, p in zip(s.run_dirs, s.plan, strict=True)
        if p["data"] == first
        and (p["method"] != "lora" or p["name"].endswith(f"-r{s.cfg.sweep_rank}"))
    ]
    cfg = NoHairConfig(
        seq_len=s.cfg.text_len, n_texts=s.cfg.n_texts, window_start=s.cfg.window_start
    )
    tables = run_nohair(resolve_specs([str(r) for r in picks]), s.texts, cfg)
    NoHair(tables["pairs"], tables["internal"], tables["external"]).save(
        s.folder("nohair"), plot=True
    )


def base_attention_stage(s: StageInputs) -> None:
    """The base model alone at ``T`` = 8 ... ``scaling_len``: the scaling with sequence length,
    the attention sink and the profile layer by layer (what the toy model cannot show)."""
    import pandas as pd  # lazy: as every analysis module, pandas when a table is made

    model, tokenizer = load_for_forward(s.model)
    model = model.to(s.device)
    cfg = ExternalConfig(
        seq_len=s.cfg.scaling_len,
        n_texts=s.cfg.scaling_texts,
        encodings=("amplitude",),
        orders=("sequential",),
        baseline_samples=4,
        batch_size=1,
        window_start=s.cfg.window_start,
    )
    tables = run_external(model, tokenizer, s.long_texts(), cfg, step=0, label="base")
    sink = attention_sink(
        model,
        tokenizer,
        s.texts,
        seq_len=s.cfg.text_len,
        n_texts=s.cfg.n_texts,
        step=0,
        label="base",
        window_start=s.cfg.window_start,
    )
    # at the longest T the sink is read off the external stage's own maps (same windows)
    long_sink = sink_table(tables["external_summary"])
    sink = pd.concat([sink, long_sink.assign(step=0, label="base")], ignore_index=True)
    folder = s.folder("base attention")
    write_parquet(folder / SINK_FILE, sink)
    External(**tables).save(folder)  # its summary last: it marks the stage done


def baselines_stage(s: StageInputs) -> None:
    """The random-matrix study (no model at all)."""
    res = run_baseline_study(BaselineStudyConfig(seed=s.cfg.seed))
    Baselines(res["summary"], res["attention"], res["profiles"]).save(s.folder("baselines"))


@dataclass(frozen=True)
class Stage:
    """One stage: its name (a key of :data:`STUDY_STAGES`), what makes it, the result whose
    saved tables mark it done, and whether a config asks for it."""

    name: str
    make: Callable[[StageInputs], None]
    result: Any
    wanted: Callable[[StudyConfig], bool] = lambda cfg: True


STAGES = (
    Stage("internal", internal_stage, Internal),
    Stage("external", external_stage, External),
    Stage("nohair", nohair_stage, NoHair),
    Stage("base attention", base_attention_stage, External, lambda cfg: bool(cfg.scaling_len)),
    Stage("baselines", baselines_stage, Baselines),
)
