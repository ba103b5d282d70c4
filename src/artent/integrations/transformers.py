"""artent inside your own training: a ``transformers.TrainerCallback``.

It works with ``Trainer`` and everything built on it (TRL's ``SFTTrainer``...)::

    from artent.integrations.transformers import EntanglementCallback

    trainer = Trainer(model, args, train_dataset=data, callbacks=[EntanglementCallback(every=50)])

Every ``every`` optimiser steps it profiles the current updates of the target modules in memory
(adapters from their live factors, full fine-tuning against a CPU snapshot of the weights taken
at ``on_train_begin``), logs per-module scalars under ``artent/...`` through the Trainer's own
``log`` (so TensorBoard, W&B and MLflow receive them), and rewrites ``internal.parquet`` and
``internal_summary.parquet`` (the tables of ``artent internal``, one ``step`` per call) under
``<output_dir>/artent/``. ``artent report <output_dir>`` reads them.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from artent.analysis.internal import InternalConfig, profile_deltas, valley_table
from artent.entanglement.sites import ORDERS
from artent.folders.atomic import atomic_path, write_parquet
from artent.folders.claim import claim_out
from artent.folders.layout import LOSSES, RUN_RECORD
from artent.folders.records import write_run_record
from artent.results import Internal

logger = logging.getLogger(__name__)

__all__ = ["EntanglementCallback"]

SNAPSHOT_FILE = "snapshot.safetensors"
#: What the callback writes into its folder (an existing one it did not write is never replaced).
CALLBACK_FILES = (RUN_RECORD, *Internal.writes()[:2], LOSSES, SNAPSHOT_FILE)
METRICS = (  # logged name -> column of the valley table
    ("cut_entropy", "center_entropy"),
    ("valley_depth", "valley_depth"),
    ("page_ratio", "valley_ratio"),
    ("within_ln_r", "within_bound"),
)


def _fail(message: str) -> ValueError:
    return ValueError(f"EntanglementCallback: {message}")


def model_name(model) -> str:
    """What the report calls the trained model: the base's ``name_or_path``, else its class."""
    config = getattr(model, "config", None)
    name = getattr(config, "name_or_path", None) or getattr(model, "name_or_path", None)
    if name:
        return str(name)
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return f"{type(inner).__name__} (built in memory; no name_or_path)"


class EntanglementCallback(TrainerCallback):
    """Entanglement profiles of the updates of the model being trained, every ``every`` steps.

    Args:
        every: optimiser steps between measurements (a positive integer); the last step of
            training is measured too when it falls between two.
        modules: module names to follow (``"q_proj,v_proj"`` or a list).
        out_dir: where the tables go; default ``<TrainingArguments.output_dir>/artent``.
        device: torch device of the profiles; ``None`` computes where the weights are (the GPU
            in GPU training, numpy on the CPU otherwise).
        layers: layer indices to keep (``None``: all).
        order: site order, ``"sequential"`` or ``"interleaved"``.
        k: valley half-width in bonds.

    Raises:
        ValueError: at construction for a bad option, at ``on_train_begin`` for a module or
            layer the model does not have, a frozen module without an adapter, an adapter
            kind artent does not read, or a folder the callback must not write (another
            command's results, files it did not write, a folder another process holds: the
            folder is claimed and locked as every command's is, until ``on_train_end``): one
            line, before the first step.
        TypeError: ``modules`` that are not names.

    Logged per module name ``m`` (means over layers; zero updates left out):
    ``artent/m/cut_entropy`` (``S_cut``, nats), ``artent/m/valley_depth``,
    ``artent/m/page_ratio`` (``S_cut`` over the Page value) and, for adapters,
    ``artent/m/within_ln_r`` (fraction of updates with ``S_cut <= ln r``); ``artent/seconds`` is
    the time the call took. Under distributed training only the main process measures, logs and
    writes.
    """

    def __init__(
        self,
        every: int = 50,
        modules: str | Iterable[str] = ("q_proj", "v_proj"),
        out_dir: str | Path | None = None,
        device: str | None = None,
        *,
        layers: Iterable[int] | None = None,
        order: str = "sequential",
        k: int = 2,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise _fail(f"every must be a positive number of optimiser steps, got {every!r}")
        if modules is None or not isinstance(modules, str | Iterable):
            raise TypeError(
                f"EntanglementCallback: modules must be a name or a list of names, got {modules!r}"
            )
        items = modules.split(",") if isinstance(modules, str) else list(modules)
        names = [str(m).strip() for m in items if str(m).strip()]
        if not names:
            raise _fail(f"modules: name at least one module (e.g. q_proj), got {modules!r}")
        if device is not None:
            import torch

            try:
                torch.device(device)
            except (RuntimeError, TypeError):
                raise _fail(f"device {device!r} is not a torch device (e.g. 'cuda')") from None
        if order not in ORDERS:
            raise _fail(f"order must be one of {ORDERS}, got {order!r}")
        if layers is not None:
            layers = [layers] if isinstance(layers, int) else list(layers)
            if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in layers):
                raise _fail(f"layers: give layer indices >= 0, got {layers!r}")
        try:
            self.config = InternalConfig(
                modules=names, layers=layers, k=k, order=order, device=device
            )
        except ValueError as e:
            raise _fail(str(e)) from None
        self.every = every
        self.out_dir = None if out_dir is None else Path(out_dir)
        self._reset()

    def _reset(self) -> None:
        self.targets: list = []
        self.snapshot: dict | None = None
        self.folder: Path | None = None
        self.label = "run"
        self._main = False
        self._trainer = None
        self._profiles: list = []
        self._summaries: list = []
        self._last_step = -1
        self._release()

    def _release(self) -> None:
        """Let go of the folder's lock (at the end of training, or before a new one)."""
        stack = getattr(self, "_claim", None)
        self._claim = None
        if stack is not None:
            stack.close()

    def __del__(self) -> None:
        try:
            self._release()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # ----- events ---------------------------------------------------------------------------------

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        """Find the target modules (every process), snapshot and prepare the folder (main)."""
        from artent.models.deltas.live import find_targets

        self._reset()
        if model is None:
            raise _fail("the trainer passed no model to the callback")
        try:
            self.targets = find_targets(model, self.config.modules, self.config.layers)
        except ValueError as e:
            raise _fail(str(e)) from None
        self._main = bool(state.is_world_process_zero)
        if not self._main:
            return
        self._model_name = model_name(model)
        output_dir = Path(args.output_dir or "trainer_output")
        self.folder = self.out_dir or output_dir / "artent"
        self.label = output_dir.resolve().name or "run"
        self._trainer = _calling_trainer()
        if self._trainer is None:
            logger.warning(
                "EntanglementCallback: no Trainer found above the callback; artent/... scalars "
                "go to state.log_history only, not to the reporting integrations"
            )
        try:
            self._prepare(args, state)
        except BaseException:
            self._release()  # a refused resume does not keep the folder locked
            raise

    def on_step_end(self, args, state, control, **kwargs):
        if self._main and state.global_step % self.every == 0:
            self._measure(state, control)

    def on_train_end(self, args, state, control, **kwargs):
        if self._main and self.targets and self._last_step != state.global_step:
            self._measure(state, control)
        if self._main and self.folder is not None:
            self._write_losses(state)  # the final log entries came after the last measurement
        self._release()

    # ----- work -----------------------------------------------------------------------------------

    def _prepare(self, args, state) -> None:

        from artent.models.deltas.live import describe, snapshot_weights

        self._claim_folder()
        step = int(state.global_step)
        if any(t.kind == "dense" for t in self.targets):
            self.snapshot = self._snapshot(snapshot_weights, step)
        if step > 0 and Internal.saved(self.folder):  # resumed: keep what was measured up to here
            for old, store in zip(
                Internal.load(self.folder), (self._profiles, self._summaries), strict=True
            ):
                store.append(old[(old.label == self.label) & (old.step <= step)])
        first = self.targets[0]
        per_layer = (getattr(first.handle, a, None) for a in ("r", "chi"))
        rank, chi = (x.get(first.adapter) if isinstance(x, dict) else None for x in per_layer)
        config = dict(
            name=self.label,
            method=describe(self.targets),
            rank=rank,
            chi=chi,
            lr=args.learning_rate,
            steps=args.max_steps if args.max_steps and args.max_steps > 0 else None,
            every=self.every,
            output_dir=str(args.output_dir),
            model=self._model_name,
            **{k: v for k, v in self.config.__dict__.items() if k != "allow_pickle"},
        )
        write_run_record(self.folder, "callback", config)

    def _claim_folder(self) -> None:
        """Claim and lock the folder as every command does (``artent.folders.claim.claim_out``): one
        holding another command's results (a training run, ``artent internal``'s tables, a demo)
        or files the callback did not write is refused; the lock is held until ``on_train_end``.
        """
        from contextlib import ExitStack

        stack = ExitStack()
        try:
            stack.enter_context(
                claim_out(self.folder, "callback", writes=CALLBACK_FILES, record=False)
            )
        except ValueError as e:
            why = str(e).removeprefix(f"--out {self.folder}: ")
            raise _fail(f"out_dir {self.folder}: {why}") from None
        self._claim = stack

    def _snapshot(self, snapshot_weights, step: int) -> dict:
        """The step-0 weights of the dense targets; kept on disk so a resumed run finds them."""
        from safetensors.torch import load_file, save_file

        path = self.folder / SNAPSHOT_FILE
        if step == 0:
            snap = snapshot_weights(self.targets)
            with atomic_path(path) as tmp:
                save_file({k: v.contiguous() for k, v in snap.items()}, str(tmp))
            return snap
        if not path.is_file():
            raise _fail(
                f"resuming full fine-tuning at step {step} needs the step-0 weights in {path}, "
                f"written when this run started; that file is missing"
            )
        snap = load_file(str(path))
        for t in self.targets:
            if t.kind == "dense" and (
                t.name not in snap or tuple(snap[t.name].shape) != tuple(t.weight.shape)
            ):
                raise _fail(f"{path} does not hold the step-0 weight of module '{t.name}'")
        return snap

    def _measure(self, state, control) -> None:
        import pandas as pd

        from artent.models.deltas.live import live_deltas

        step = int(state.global_step)
        self._last_step = step
        start = time.perf_counter()
        try:
            profiles, summary = profile_deltas(
                live_deltas(self.targets, self.snapshot), self.config, label=self.label, step=step
            )
        except ValueError as e:  # e.g. NaN weights: say so, and let the training go on
            logger.warning(f"EntanglementCallback: step {step} not measured: {e}")
            return
        self._profiles.append(profiles)
        self._summaries.append(summary)
        tables = []
        for parts in (self._profiles, self._summaries):
            frames = [p for p in parts if not p.empty]
            tables.append(pd.concat(frames, ignore_index=True) if frames else parts[-1])
        Internal(*tables).save(self.folder)
        metrics: dict[str, float] = {}
        for row in valley_table(summary, by=("module",)).itertuples():
            has_rank = summary[summary.module == row.module].nominal_rank.notna().any()
            for key, column in METRICS:
                value = getattr(row, column)
                if value == value and (column != "within_bound" or has_rank):
                    metrics[f"artent/{row.module}/{key}"] = float(value)
        self._write_losses(state)
        metrics["artent/seconds"] = time.perf_counter() - start
        if self._trainer is not None:
            # Trainer.log clears control.should_log, which the flow callback may just have set
            # for this step's loss: keep the Trainer's own logging as it was.
            should_log = control.should_log
            self._trainer.log(metrics)
            control.should_log = should_log
        else:
            state.log_history.append({**metrics, "step": step})

    def _write_losses(self, state) -> None:
        """The Trainer's logged losses as ``losses.parquet`` (train, and eval as heldout)."""
        import pandas as pd

        rows = [
            dict(step=e["step"], split=split, loss=float(e[key]))
            for e in state.log_history
            for key, split in (("loss", "train"), ("eval_loss", "heldout"))
            if key in e and "step" in e
        ]
        if rows:
            write_parquet(self.folder / LOSSES, pd.DataFrame(rows))


def _calling_trainer() -> Any:
    """The ``Trainer`` whose loop called this callback, found up the call stack.

    Callbacks are not handed the trainer; its ``log`` is the one road to every reporting
    integration (TensorBoard, W&B, MLflow...), so the callback looks for it once, at
    ``on_train_begin``. ``None`` when some other loop drives the callback.
    """
    from transformers import Trainer

    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, Trainer):
            return owner
        frame = frame.f_back
    return None
