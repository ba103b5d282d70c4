"""Reading training-run folders: their base model and their checkpoints along training.

Two kinds of folder are runs: an artent run (``run.json`` and ``checkpoints/step-N``) and the
``output_dir`` of a transformers ``Trainer`` or TRL trainer (``checkpoint-N`` folders). A
Trainer checkpoint's step is the ``global_step`` of its ``trainer_state.json``, or else the ``N``
of its name; an adapter checkpoint's base is ``base=`` or its adapter config's
``base_model_name_or_path``; full-weight checkpoints are read against ``base=``, or else against
the first checkpoint (which is then the reference, not a row). :func:`checkpoint_step` gives an
adapter passed alone its step from the same two sources.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from artent.folders.layout import CHECKPOINTS, checkpoints
from artent.folders.records import read_record
from artent.models.cache import resolve_named_model

#: a transformers Trainer's checkpoint folders (``checkpoint-500``)
TRAINER_DIR = re.compile(r"checkpoint-(\d+)$")
#: the step in a checkpoint folder's name, artent's or a Trainer's
_NAMED_STEP = re.compile(r"(?:^|[-_])(?:step|checkpoint)[-_]?(\d+)$")


@dataclass(frozen=True)
class RunCheckpoint:
    """One checkpoint of a run: the base it adapts and either a full model or an adapter.

    Attributes:
        label: the run folder's name.
        step: the training step.
        method: ``fft``, ``lora`` or ``mps`` (a Trainer run's adapter: its peft type, lower
            case).
        base: the base model (a local folder; ``tiny`` resolved to its cache; for a Trainer
            adapter, what its config names, or ``None`` where it names nothing).
        path: the checkpoint folder (full weights for FFT, the adapter otherwise).
    """

    label: str
    step: int
    method: str
    base: str | None
    path: str

    @property
    def is_full(self) -> bool:
        return self.method == "fft"


def resolve_base(model: str) -> str:
    """A run's ``model`` option as a local path (``tiny``, ``smollm2``: their cached folders)."""
    return resolve_named_model(model)


def run_config(run: str | Path) -> dict:
    """The resolved training config recorded in a run folder."""
    record = Path(run) / "run.json"
    if not record.is_file():
        raise ValueError(
            f"run={run}: not an artent run folder (no run.json) nor a Trainer output_dir "
            f"(no checkpoint-N folders)"
        )
    config = read_record(record).get("config")
    if not isinstance(config, dict):
        raise ValueError(f"{record}: not a training run's record (no 'config' object)")
    for key in ("model", "method"):
        if not isinstance(config.get(key), str):
            raise ValueError(f"{record}: the run's config has no {key!r} (not a training run)")
    return config


def trainer_dirs(run: str | Path) -> list[Path]:
    """The ``checkpoint-N`` folders of a Trainer ``output_dir`` (none: not a Trainer run)."""
    run = Path(run)
    if not run.is_dir():
        return []
    return [p for p in run.iterdir() if p.is_dir() and TRAINER_DIR.search(p.name)]


def is_run(path: str | Path) -> bool:
    """An artent run folder or a Trainer ``output_dir``."""
    return (Path(path) / "run.json").is_file() or bool(trainer_dirs(path))


def checkpoint_step(path: str | Path) -> int | None:
    """The training step of a checkpoint folder: its ``trainer_state.json``'s ``global_step``,
    else the ``N`` of a ``checkpoint-N`` or ``step-N`` name; ``None`` when neither says."""
    path = Path(path)
    folder = path.parent if path.is_file() else path
    state = folder / "trainer_state.json"
    if state.is_file():
        try:
            step = json.loads(state.read_text()).get("global_step")
        except (ValueError, OSError, AttributeError):
            step = None
        if isinstance(step, int) and not isinstance(step, bool) and step >= 0:
            return step
    m = _NAMED_STEP.search(folder.name)
    return int(m.group(1)) if m else None


def run_checkpoints(run: str | Path, base: str | None = None) -> list[RunCheckpoint]:
    """Every checkpoint of a run, in step order.

    Args:
        run: an artent run folder or a Trainer ``output_dir``.
        base: the base model of a Trainer run (an artent run records its own; ignored there).
    """
    run = Path(run)
    if not (run / "run.json").is_file() and trainer_dirs(run):
        return trainer_checkpoints(run, base)
    cfg = run_config(run)
    found = checkpoints(run)
    if not found:
        raise ValueError(f"run={run}: no checkpoints under {run / CHECKPOINTS}")
    base = resolve_base(cfg["model"])
    return [RunCheckpoint(run.name, s, cfg["method"], base, str(p)) for s, p in found]


def trainer_checkpoints(run: str | Path, base: str | None = None) -> list[RunCheckpoint]:
    """The ``checkpoint-N`` folders of a Trainer or TRL ``output_dir``, in step order.

    Raises:
        ValueError: adapters mixed with full weights, two folders of one step, full weights with
            neither ``base=`` nor a second checkpoint to compare with.
    """
    from artent.models.adapter_check import CONFIG_NAME, read_adapter_config

    run = Path(run)
    found = sorted((checkpoint_step(p), p.name, p) for p in trainer_dirs(run))
    steps = [s for s, _, _ in found]
    if len(set(steps)) != len(steps):
        dup = next(s for s in steps if steps.count(s) > 1)
        raise ValueError(f"run={run}: two checkpoints of step {dup}")
    adapters = [(p / CONFIG_NAME).is_file() for _, _, p in found]
    if any(adapters) and not all(adapters):
        raise ValueError(
            f"run={run}: some checkpoint-N folders hold an adapter and some full weights; "
            f"pass them apart (adapter=, tuned=)"
        )
    if base is not None:
        base = resolve_base(base)
    out: list[RunCheckpoint] = []
    if all(adapters):
        for step, _, p in found:
            config = read_adapter_config(p)
            named = base or config.get("base_model_name_or_path") or None
            kind = str(config["peft_type"]).lower()
            out.append(RunCheckpoint(run.name, step, kind, named, str(p)))
        return out
    if base is None:
        if len(found) < 2:
            raise ValueError(
                f"run={run}: one full-weight checkpoint and no base= to compare it with"
            )
        base, found = str(found[0][2]), found[1:]  # the first checkpoint is the reference
    return [RunCheckpoint(run.name, s, "fft", base, str(p)) for s, _, p in found]
