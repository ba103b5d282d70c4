"""One fine-tuning run, top to bottom: options in, a run folder out.

Run folder layout::

    OUT/run.json                     resolved config and versions
    OUT/tokenizer/                   the tokenizer the run used
    OUT/losses.parquet               step, split (train | heldout), loss, lr; train rows also
                                     tokens and wall_s (seconds since the loop (re)started)
    OUT/checkpoints/step-000025/     full weights (FFT) or the adapter (LoRA, MPS), safetensors
    OUT/checkpoints/step-000025/trainer_state.pt   optimiser + RNG state (latest checkpoint only)
    OUT/DONE                         written last: a finished run is not redone unless forced

Everything the loop needs is validated before the folder is created, so bad input leaves nothing
behind; every file is written atomically, so an interrupted run resumes from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from artent.data.formats import load_conversations
from artent.data.generators import synthetic_openthoughts, synthetic_tulu, write_dataset
from artent.folders.atomic import atomic_path, write_json, write_parquet
from artent.folders.claim import (
    LOCK_NAME,
    check_out,
    claim_out,
    clear_folder,
    remove_stale_temporaries,
)
from artent.folders.layout import cache_root
from artent.folders.records import versions
from artent.models.loading import load_base
from artent.progress import progress
from artent.schedule import learning_rate
from artent.training.checkpoints import latest_checkpoint, resume, save_checkpoint
from artent.training.config import TrainConfig
from artent.training.distributed import SINGLE_PROCESS, detect_processes
from artent.training.memory import check_sizes
from artent.training.methods import (
    attach_method,
    check_targets,
)
from artent.validation import resolve_device

SYNTHETIC = ("synthetic-tulu", "synthetic-openthoughts")


class RunFinished(Exception):
    """The run folder already holds a finished run with the same config."""


def resolve_data(cfg: TrainConfig) -> str:
    """A local path for the data: synthetic sets are generated (seeded) into the cache once."""
    if cfg.data not in SYNTHETIC:
        return cfg.data
    path = cache_root() / "data" / f"{cfg.data}-n{cfg.n_synthetic}-seed0.jsonl"
    if not path.is_file():
        make = synthetic_tulu if cfg.data == "synthetic-tulu" else synthetic_openthoughts
        write_dataset(make(cfg.n_synthetic, seed=0), path)
    return str(path)


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> np.ndarray:
    """Rows of batch ``step``: epoch ``e`` is a seeded permutation, so any step is recomputable."""
    per_epoch = max(n // batch_size, 1)
    epoch, k = divmod(step, per_epoch)
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    return perm[k * batch_size : (k + 1) * batch_size]


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then constant (default) or cosine decay to zero (:mod:`artent.schedule`)."""
    return learning_rate(
        step, lr=cfg.lr, steps=cfg.steps, warmup_steps=cfg.warmup_steps, schedule=cfg.schedule
    )


def autocast(cfg: TrainConfig, procs):
    """bfloat16 autocast of the forward when ``cfg.precision == "bf16"``; else a no-op context."""
    import torch

    device_type = str(procs.device).split(":")[0]
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")


def heldout_loss(model, data, cfg: TrainConfig, procs=SINGLE_PROCESS) -> float:
    """Mean token loss on the held-out split (first ``eval_batches`` batches; 0 = all).

    Under several processes each takes its share of every batch; losses and token counts are
    summed over processes, so the mean is the same as one process computes.
    """
    import torch

    model.eval()
    n = len(data.input_ids)
    stop = n if cfg.eval_batches == 0 else min(n, cfg.eval_batches * cfg.batch_size)
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, stop, cfg.batch_size):
            mine = procs.share(min(start + cfg.batch_size, stop) - start)
            sl = slice(start + mine.start, start + mine.stop)
            labels = data.labels[sl]
            tokens = int((labels[:, 1:] != -100).sum())
            if tokens == 0 and procs.num_processes > 1:
                continue  # an empty (or loss-free) share adds nothing to either sum
            with autocast(cfg, procs):
                out = model(
                    **procs.to_device(
                        dict(
                            input_ids=data.input_ids[sl],
                            attention_mask=data.attention_mask[sl],
                            labels=labels,
                        )
                    )
                )
            total += float(out.loss) * tokens
            count += tokens
    model.train()
    total, count = procs.sum_across(total, count)
    return total / max(count, 1)


def prepare(cfg: TrainConfig, device: str = "cpu"):
    """Load and validate everything (data, model, method, sizes) before anything is written.

    Args:
        cfg: the run's options.
        device: where the model will train (for the memory bound).
    """
    import torch

    from artent.data.chat import build_dataset  # lazy: it imports torch

    convs = load_conversations(
        resolve_data(cfg), heldout_fraction=cfg.heldout_fraction, seed=cfg.seed, limit=cfg.limit
    )
    model, tokenizer = load_base(cfg.model, allow_remote_code=cfg.allow_remote_code)
    for name, p in model.named_parameters():
        if not bool(torch.isfinite(p).all()):
            raise ValueError(f"model {cfg.model}: weight {name!r} contains NaN or Inf")
    targets = check_targets(model, cfg.targets)
    check_sizes(model, cfg, targets, len(convs), device)
    pad = tokenizer.pad_token_id
    train = build_dataset(
        convs.train, tokenizer, seq_len=cfg.seq_len, packing=cfg.packing, pad_id=pad
    )
    held = build_dataset(
        convs.heldout, tokenizer, seq_len=cfg.seq_len, packing=cfg.packing, pad_id=pad
    )
    if len(train.input_ids) < cfg.batch_size:
        raise ValueError(
            f"data {cfg.data}: {len(train.input_ids)} training sequences, fewer than "
            f"batch_size={cfg.batch_size}"
        )
    model = attach_method(model, cfg)
    return model, tokenizer, train, held


def _check_folder(out: Path, cfg: TrainConfig, force: bool) -> bool:
    """Refuse a folder holding something else; return whether a finished run is to be redone.

    Raises:
        ValueError: a folder that is not this run's (another config, not a run folder).
        RunFinished: the folder holds this run, finished, and ``force`` is not set.
    """
    check_out(out, "train", inputs=[cfg.model, cfg.data])  # another command's folder, an input
    record = out / "run.json"
    if not record.is_file():
        if out.is_dir() and any(p.name != LOCK_NAME for p in out.iterdir()):
            raise ValueError(f"out={out}: folder exists and is not an artent run folder")
        return False
    try:
        old = json.loads(record.read_text())["config"]
        if not isinstance(old, dict):
            raise TypeError("config is not a mapping")
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"out={out}: run.json is not an artent training record ({e})") from None
    # options added since the old run was written count as their defaults
    defaults = {
        f.name: f.default_factory() if f.default is dataclasses.MISSING else f.default
        for f in dataclasses.fields(TrainConfig)
    }
    old_fp = {k: old.get(k, defaults.get(k)) for k in cfg.fingerprint()}
    if old_fp != cfg.fingerprint():
        diff = next(k for k in cfg.fingerprint() if old_fp.get(k) != cfg.fingerprint()[k])
        raise ValueError(
            f"out={out}: holds a run with a different config ({diff}: {old_fp.get(diff)!r} "
            f"there, {cfg.fingerprint()[diff]!r} now); use another folder"
        )
    if (out / "DONE").is_file():
        if not force:
            raise RunFinished(str(out))
        return True
    return False


def train(cfg: TrainConfig, *, force: bool = False) -> Path:
    """Fine-tune as ``cfg`` says; return the run folder. Resumes an interrupted run.

    The folder is locked while the run writes it (a second process is refused); a run that
    fails before its first checkpoint removes the folder it created.

    Raises:
        ValueError: bad data, model, targets or options, an output folder that holds something
            else, or a loss that became NaN/Inf (naming the step).
        RunFinished: the folder holds this run, finished (pass ``force`` to redo it).
    """
    out = Path(cfg.out)
    # --- several processes (accelerate launch): see artent.training.distributed -------------
    # SingleProcess (no-ops but the device) unless launched with WORLD_SIZE > 1
    procs = detect_processes(resolve_device(cfg.device))
    if cfg.batch_size < procs.num_processes:
        raise ValueError(
            f"option batch_size={cfg.batch_size} is smaller than the {procs.num_processes} "
            "processes that share each batch"
        )
    redo = _check_folder(out, cfg, force)
    if not procs.is_main:  # the main process alone writes, and so locks, the folder
        _train(cfg, out, procs, redo)
        return out
    with claim_out(out, "train", inputs=[cfg.model, cfg.data], record=False) as claim:
        # a failure before the first complete checkpoint removes the folder this run created
        claim.keep = lambda: latest_checkpoint(out) is not None
        _train(cfg, out, procs, redo)
    return out


def _train(cfg: TrainConfig, out: Path, procs, redo: bool) -> None:
    import torch

    with procs.main_process_first():  # the main process fills the data and model caches first
        model, tokenizer, train_data, held_data = prepare(cfg, str(procs.device))
    _make_room(out, procs, redo)
    if procs.num_processes == 1:
        model.to(procs.device)  # before the optimizer, so its (resumed) state lands there too
    torch.manual_seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    resume_from, start, log = resume(out, model, optimizer, cfg)
    if procs.is_main:
        _write_record(out, cfg, procs, tokenizer, resumed_at=None if resume_from is None else start)
    loop = _Loop(cfg, out, procs, model, optimizer, params, train_data, held_data, log)
    if resume_from is None:  # a run resumed at step 0 has its step-0 rows already
        loop.evaluate_and_save(0)
    loop.run(start)
    if procs.is_main:
        with atomic_path(out / "DONE") as tmp:
            tmp.write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    procs.barrier()


def _make_room(out: Path, procs, redo: bool) -> None:
    """A finished run forced again is removed (once every process has read it); what a killed
    save left is removed (the main process alone writes the folder)."""
    if redo:  # --force on a finished run: removed only now that the new one is known to start
        procs.barrier()  # every process has read the old run before the main one removes it
        if procs.is_main:
            clear_folder(out)
        procs.barrier()
    if procs.is_main:
        remove_stale_temporaries(out)  # what a killed save left; nobody else writes here


def _write_record(out: Path, cfg: TrainConfig, procs, tokenizer, resumed_at: int | None) -> None:
    """``run.json`` (and the tokenizer) of a fresh run, or the step a run resumed at added."""
    if resumed_at is None:
        record = {"command": "train", "config": cfg.to_dict(), "versions": versions()}
        record["resumed_at"] = []
        if procs.num_processes > 1:
            record["processes"] = procs.num_processes  # provenance; absent for a single process
        write_json(out / "run.json", record)
        tokenizer.save_pretrained(out / "tokenizer")
        return
    record = json.loads((out / "run.json").read_text())
    record["resumed_at"].append(resumed_at)
    write_json(out / "run.json", record)


@dataclasses.dataclass
class _Loop:
    """The optimisation loop of one run: its steps, and the evaluations and checkpoints between."""

    cfg: TrainConfig
    out: Path
    procs: Any
    model: Any  # the plain model; the one that trains may be DDP-wrapped (``train_model``)
    optimizer: Any
    params: list
    train_data: Any
    held_data: Any
    log: list[dict]

    def __post_init__(self) -> None:
        self.train_model, self.optimizer = self.procs.prepare(self.model, self.optimizer)
        self.train_model.train()

    def evaluate_and_save(self, step: int) -> None:
        cfg, procs = self.cfg, self.procs
        if (
            step in cfg.save_steps
            or step == cfg.steps
            or (cfg.eval_every and step % cfg.eval_every == 0)
        ):
            self.log.append(
                dict(
                    step=step,
                    split="heldout",
                    loss=heldout_loss(self.model, self.held_data, cfg, procs),
                    lr=lr_at(cfg, max(step - 1, 0)),
                )
            )
            _stop_if_not_finite(self.log, self.out, write=procs.is_main)
        if (step in cfg.save_steps or step == cfg.steps) and procs.is_main:
            save_checkpoint(self.out, step, self.model, self.optimizer, cfg, self.log)

    def run(self, start: int) -> None:
        cfg = self.cfg
        bar = progress(
            range(start, cfg.steps),
            initial=start,
            total=cfg.steps,
            disable=not (cfg.progress and self.procs.is_main),
            desc=f"{cfg.method} {Path(cfg.out).name}",
        )
        t_loop = time.perf_counter()
        for step in bar:
            batch_loss, tokens = self.step(step)
            self.log.append(
                dict(
                    step=step + 1,
                    split="train",
                    loss=batch_loss,
                    lr=lr_at(cfg, step),
                    tokens=tokens,
                    wall_s=time.perf_counter() - t_loop,
                )
            )
            _stop_if_not_finite(self.log, self.out, write=self.procs.is_main)
            bar.set_postfix(loss=f"{self.log[-1]['loss']:.3f}")
            self.evaluate_and_save(step + 1)

    def step(self, step: int) -> tuple[float, int]:
        """One optimiser step; returns the batch's mean loss and its token count."""
        import torch

        cfg, procs, data = self.cfg, self.procs, self.train_data
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(cfg, step)
        rows = torch.from_numpy(batch_indices(len(data.input_ids), cfg.batch_size, step, cfg.seed))
        mine = rows[procs.share(len(rows))]  # this process's share (all rows when alone)
        with autocast(cfg, procs):
            loss = self.train_model(
                **procs.to_device(
                    dict(
                        input_ids=data.input_ids[mine],
                        attention_mask=data.attention_mask[mine],
                        labels=data.labels[mine],
                    )
                )
            ).loss
        # scaled so the gradient averaged over processes is the whole batch's; logged: batch mean
        loss, batch_loss = procs.global_mean_loss(loss, data.labels[mine])
        procs.backward(loss)
        if cfg.grad_clip:
            procs.clip_grad_norm_(self.params, cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return batch_loss.item(), int(data.attention_mask[rows].sum())


def _stop_if_not_finite(log: list[dict], out: Path, *, write: bool) -> None:
    """Stop a run whose last loss is NaN or Inf, naming the step; ``write``: keep its losses."""
    row = log[-1]
    if math.isfinite(row["loss"]):
        return
    if write:
        import pandas as pd

        write_parquet(out / "losses.parquet", pd.DataFrame(log))
    raise ValueError(
        f"training stopped: the {row['split']} loss is {row['loss']} at step {row['step']} of "
        f"run {out} (lower lr=, or check the model's weights); the run cannot resume, use "
        "another out="
    )
