"""A training run's checkpoints: saved as a journal a kill leaves resumable, found, resumed from.

``OUT/checkpoints/step-NNNNNN/`` holds the weights (full, or the adapter) of step N, and the
newest one also ``trainer_state.pt`` (optimiser and RNG state); ``OUT/losses.parquet`` is written
before each checkpoint that depends on it (:func:`save_checkpoint`).
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

from artent.folders.atomic import named_os_error, umask_permissions, write_parquet
from artent.folders.layout import checkpoint_folder, checkpoints
from artent.training.config import TrainConfig
from artent.training.methods import load_checkpoint_weights, save_checkpoint_weights


def checkpoint_steps(out: Path) -> list[int]:
    """Steps of the complete checkpoints (``step-NNNNNN/``; never a ``.tmp`` folder)."""
    return [step for step, _ in checkpoints(out)]


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint that holds the trainer state to resume from."""
    for step in reversed(checkpoint_steps(out)):
        folder = checkpoint_folder(out, step)
        if (folder / "trainer_state.pt").is_file():
            return folder
    return None


def journal(stage: str, step: int) -> None:
    """Called after each write of a checkpoint save (``losses``, ``weights``, ``state``,
    ``rename``, ``prune``); the fault-injection tests replace it to kill the run there."""


@contextmanager
def _names_failed_write(path: Path):
    """A write that fails (a full disk: an ``OSError`` without a file name, torch's "file write
    failed" ``RuntimeError``) is an ``OSError`` naming ``path``; a rerun resumes."""
    try:
        yield
    except OSError as e:
        if e.filename is None:
            raise named_os_error(e, path) from e
        raise
    except RuntimeError as e:
        if "write" not in str(e).lower():
            raise
        raise named_os_error(e, path) from e


def save_checkpoint(out: Path, step: int, model, optimizer, cfg: TrainConfig, log) -> None:
    """One checkpoint, as a small journal that a kill at any point leaves resumable.

    1. ``losses.parquet`` with every row up to ``step`` (atomic), before the checkpoint that
       depends on it: a resume keeps the rows up to its checkpoint and recomputes the rest;
    2. weights and trainer state into ``step-NNNNNN.tmp/``, which no resume ever reads;
    3. one rename makes it ``step-NNNNNN/``: the checkpoint exists complete or not at all;
    4. the older checkpoints' trainer states go (only the newest is resumed from).
    """
    import pandas as pd
    import torch

    write_parquet(out / "losses.parquet", pd.DataFrame(log))
    journal("losses", step)
    folder = checkpoint_folder(out, step)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with _names_failed_write(tmp):
        save_checkpoint_weights(model, cfg, tmp)
    journal("weights", step)
    state = {"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(), "step": step}
    with _names_failed_write(tmp / "trainer_state.pt"):
        torch.save(state, tmp / "trainer_state.pt")
    umask_permissions(tmp)  # save_pretrained writes 0600; a checkpoint is read by others too
    journal("state", step)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    journal("rename", step)
    for older in (out / "checkpoints").glob("step-*/trainer_state.pt"):
        if older.parent != folder:
            older.unlink()  # only the latest checkpoint needs to resume from
    journal("prune", step)


def resume(out: Path, model, optimizer, cfg: TrainConfig) -> tuple[Path | None, int, list[dict]]:
    """Load the newest checkpoint of ``out`` (if any) into ``model`` and ``optimizer``.

    Returns:
        The checkpoint folder resumed from (``None`` for a fresh run), its step (0 when fresh),
        and the loss rows up to that step (rows past it were written before a save that did not
        complete: they are redone).
    """
    import pandas as pd
    import torch

    resume_from = latest_checkpoint(out)
    if resume_from is None:
        return None, 0, []
    load_checkpoint_weights(model, cfg, resume_from)
    # artent's own file, read by torch's weights-only unpickler (tensors and plain values)
    state = torch.load(resume_from / "trainer_state.pt", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    start = state["step"]
    losses = out / "losses.parquet"
    rows = pd.read_parquet(losses).to_dict("records") if losses.is_file() else []
    return resume_from, start, [r for r in rows if r["step"] <= start]
