"""Reading artent training-run folders: their base model and their checkpoints along training."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

STEP_DIR = re.compile(r"step-(\d+)$")


@dataclass(frozen=True)
class RunCheckpoint:
    """One checkpoint of a run: the base it adapts and either a full model or an adapter.

    Attributes:
        label: the run folder's name.
        step: the training step.
        method: ``fft``, ``lora`` or ``mps``.
        base: the base model (a local folder; ``tiny`` resolved to its cache).
        path: the checkpoint folder (full weights for FFT, the adapter otherwise).
    """

    label: str
    step: int
    method: str
    base: str
    path: str

    @property
    def is_full(self) -> bool:
        return self.method == "fft"


def resolve_base(model: str) -> str:
    """A run's ``model`` option as a local path (``tiny``, ``smollm2``: their cached folders)."""
    from artent.models.cache import resolve_named_model

    return resolve_named_model(model)


def run_config(run: str | Path) -> dict:
    """The resolved training config recorded in a run folder."""
    record = Path(run) / "run.json"
    if not record.is_file():
        raise ValueError(f"--run {run}: not an artent run folder (no run.json)")
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{record}: cannot parse JSON ({' '.join(str(e).split())})") from None
    config = data.get("config") if isinstance(data, dict) else None
    if not isinstance(config, dict):
        raise ValueError(f"{record}: not a training run's record (no 'config' object)")
    for key in ("model", "method"):
        if not isinstance(config.get(key), str):
            raise ValueError(f"{record}: the run's config has no {key!r} (not a training run)")
    return config


def run_checkpoints(run: str | Path) -> list[RunCheckpoint]:
    """Every checkpoint of a run, in step order."""
    run = Path(run)
    cfg = run_config(run)
    found = sorted(
        (int(m.group(1)), p)
        for p in (run / "checkpoints").glob("step-*")
        if p.is_dir() and (m := STEP_DIR.search(p.name))
    )
    if not found:
        raise ValueError(f"--run {run}: no checkpoints under {run / 'checkpoints'}")
    base = resolve_base(cfg["model"])
    return [RunCheckpoint(run.name, s, cfg["method"], base, str(p)) for s, p in found]
