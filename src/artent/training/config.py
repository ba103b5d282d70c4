"""Options of a fine-tuning run, validated once, recorded verbatim in the run folder."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artent.schedule import SCHEDULES
from artent.validation import DEVICE_PATTERN, OptionError, check_fields, load_options

METHODS = ("fft", "lora", "mps")
# Options that may change between an interrupted run and its resumption.
RESUMABLE_FIELDS = {"out", "progress", "force", "device"}
PRECISIONS = ("fp32", "bf16")


@dataclass
class TrainConfig:
    """Everything that determines a fine-tuning run.

    Args:
        method: ``"fft"`` (every weight), ``"lora"`` (through peft) or ``"mps"`` (MPS adaptation).
        model: ``"tiny"`` (the offline default, pretrained and cached by artent), a local folder,
            or a hub name (only used where the user passes one and a hub is reachable).
        data: ``"synthetic-tulu"``, ``"synthetic-openthoughts"``, a local JSONL/Parquet file or
            folder in either format, or a hub dataset name.
        out: the run folder.
        rank: LoRA / MPS rank ``r``.
        alpha: LoRA / MPS scaling numerator (update scale ``alpha / r``, or ``alpha / sqrt(r)``
            with ``rslora``). Fixed by default so the learning rate needs no retuning with rank.
        dropout: adapter dropout.
        chi: MPS bond dimension between the two input cores.
        n1: MPS input split ``n = n1 * n2`` (``None``: the most balanced factorisation).
        rslora: rank-stabilised scaling for LoRA and MPS.
        targets: module names to adapt (suffix match, as peft does); FFT trains every weight.
        lr: peak learning rate (constant after warm-up by default).
        warmup_steps: linear warm-up length.
        schedule: ``"constant"`` or ``"cosine"`` after warm-up.
        weight_decay: AdamW weight decay.
        grad_clip: gradient-norm clip (``0`` disables).
        steps: optimiser steps.
        batch_size: sequences per step.
        seq_len: tokens per sequence (padded or packed).
        packing: pack conversations into full blocks instead of padding each.
        seed: seeds the data split, the batch order, the adapter initialisation and dropout.
        save_steps: steps at which to checkpoint (``0`` saves the untrained start); ``None``
            (default): 0, a quarter, a half, three quarters and all of ``steps``.
        eval_every: held-out evaluation period in steps (and at every save step and the end).
        eval_batches: held-out batches per evaluation (``0``: the whole held-out split).
        heldout_fraction: share of conversations kept out of training.
        limit: read at most this many conversations (``None``: all).
        n_synthetic: conversations generated for the synthetic data sets.
        allow_remote_code: pass ``trust_remote_code`` to transformers (never by default).
        device: where a single process trains: ``"auto"`` (the GPU when torch sees one, else
            the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"xpu"`` or ``"mps"``. Under
            ``accelerate launch`` accelerate places each process instead. May change on resume.
        precision: ``"fp32"`` (default; float32 weights and arithmetic) or ``"bf16"`` (the
            forward under bfloat16 autocast; weights, gradients and optimiser state stay float32).
        progress: show the progress bar.
    """

    method: str = "lora"
    model: str = "tiny"
    data: str = "synthetic-tulu"
    out: str = "runs/train"
    rank: int = 8
    alpha: float = 32.0
    dropout: float = 0.0
    chi: int = 4
    n1: int | None = None
    rslora: bool = False
    targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    lr: float = 1e-3
    warmup_steps: int = 10
    schedule: str = "constant"
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    steps: int = 100
    batch_size: int = 8
    seq_len: int = 128
    packing: bool = False
    seed: int = 0
    save_steps: list[int] | None = None
    eval_every: int = 25
    eval_batches: int = 8
    heldout_fraction: float = 0.1
    limit: int | None = None
    n_synthetic: int = 2000
    allow_remote_code: bool = False
    device: str = "auto"
    precision: str = "fp32"
    progress: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.targets, str):
            self.targets = [t.strip() for t in self.targets.split(",") if t.strip()]
        if isinstance(self.save_steps, str):
            self.save_steps = _int_list(self.save_steps, "save_steps")
        check_fields(self)
        if self.save_steps is None:
            self.save_steps = [0, self.steps // 4, self.steps // 2, 3 * self.steps // 4, self.steps]
        if self.method not in METHODS:
            raise OptionError(
                "method", f"option method must be one of {', '.join(METHODS)}, not {self.method!r}"
            )
        if self.precision not in PRECISIONS:
            raise OptionError(
                "precision", f"option precision must be one of {PRECISIONS}, not {self.precision!r}"
            )
        if not DEVICE_PATTERN.fullmatch(self.device):
            raise OptionError(
                "device",
                f"option device must be auto, cpu, cuda, cuda:N, xpu or mps, not {self.device!r}",
            )
        if self.schedule not in SCHEDULES:
            raise OptionError(
                "schedule", f"option schedule must be one of {SCHEDULES}, not {self.schedule!r}"
            )
        lowest = dict(rank=1, chi=1, steps=1, batch_size=1, seq_len=1, n_synthetic=1, n1=1)
        lowest.update(limit=1, warmup_steps=0, eval_every=0, eval_batches=0)
        for name, low in lowest.items():
            value = getattr(self, name)
            if value is not None and value < low:
                kind = "a positive integer" if low == 1 else "an integer >= 0"
                raise OptionError(name, f"option {name} must be {kind}, got {value!r}")
        for name, value in (("lr", self.lr), ("alpha", self.alpha)):
            if not value > 0:
                raise OptionError(name, f"option {name} must be positive, got {value!r}")
        for name, value in (("weight_decay", self.weight_decay), ("grad_clip", self.grad_clip)):
            if value < 0:
                raise OptionError(name, f"option {name} must be >= 0, got {value!r}")
        if not 0 <= self.dropout < 1:
            raise OptionError("dropout", f"option dropout must be in [0, 1), got {self.dropout!r}")
        if not 0 < self.heldout_fraction < 1:
            raise OptionError(
                "heldout_fraction",
                f"option heldout_fraction must be in (0, 1), got {self.heldout_fraction}",
            )
        if self.method != "fft" and not self.targets:
            raise OptionError(
                "targets", "option targets is empty: name at least one module (e.g. q_proj)"
            )
        bad = [s for s in self.save_steps if not 0 <= s <= self.steps]
        if bad:
            raise OptionError(
                "save_steps", f"option save_steps has {bad[0]}, outside 0..steps={self.steps}"
            )
        self.save_steps = sorted(set(self.save_steps))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> dict[str, Any]:
        """The options that define the run (those a resumption must not change)."""
        return {k: v for k, v in self.to_dict().items() if k not in RESUMABLE_FIELDS}


def _int_list(text: str, name: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise OptionError(
            name, f"option {name} must be comma-separated integers, got {text!r}"
        ) from None


def make_config(file: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Options from ``file`` (if any), then ``overrides`` that are not ``None``.

    Raises:
        ValueError: a bad option; where its value came from ``file``, the message names the file.
    """
    expected = "a mapping of options at the top level"
    return load_options(TrainConfig, file, overrides, expected=expected, dashes=True)
