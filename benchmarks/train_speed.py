"""Training throughput of artent's trainer against a bare torch loop, in one run.

For each method (FFT, LoRA, MPS) on the tiny model, both loops see the same model with the same
method attached, the same batches and AdamW; the bare loop is forward, backward, clip, step and
nothing else. artent's figure is its steady-state step loop, read from the wall time it logs per
step in ``losses.parquet``; the whole ``train()`` call (loading, data, final evaluation and
checkpoint) is printed beside it.

    python benchmarks/train_speed.py                 # the cached tiny default (pretrains it once)
    python benchmarks/train_speed.py --model DIR --steps 60
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time

import torch

from artent.training.config import TrainConfig
from artent.training.loop import batch_indices, prepare, train


def bare_loop(cfg: TrainConfig) -> tuple[float, int]:
    model, _, data, _ = prepare(cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    model.train()
    tokens = 0
    t0 = time.perf_counter()
    for step in range(cfg.steps):
        rows = torch.from_numpy(batch_indices(len(data.input_ids), cfg.batch_size, step, cfg.seed))
        ids, mask = data.input_ids[rows], data.attention_mask[rows]
        loss = model(input_ids=ids, attention_mask=mask, labels=data.labels[rows]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens += int(mask.sum())
    return time.perf_counter() - t0, tokens


def artent_loop(cfg: TrainConfig) -> tuple[float, float, int]:
    """Steady-state loop time (from the per-step log), whole-call time, tokens."""
    import pandas as pd

    t0 = time.perf_counter()
    run = train(cfg)
    total = time.perf_counter() - t0
    log = pd.read_parquet(run / "losses.parquet")
    steps = log[log.split == "train"]
    return float(steps.wall_s.iloc[-1]), total, int(steps.tokens.sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256)
    args = ap.parse_args()
    print(
        f"train_speed: torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{args.steps} steps of {args.batch_size} x {args.seq_len} tokens"
    )
    print(
        f"{'method':<6} {'bare tok/s':>11} {'artent tok/s':>13} {'loop overhead':>14} "
        f"{'whole train() call':>19}"
    )
    for method in ("fft", "lora", "mps"):
        out = tempfile.mkdtemp(prefix=f"artent-bench-{method}-")
        cfg = TrainConfig(
            method=method,
            model=args.model,
            data="synthetic-tulu",
            out=out,
            steps=args.steps,
            batch_size=args.batch_size,
            seq_len=args.seq_len,
            save_steps=[],
            eval_every=0,
            eval_batches=4,
            progress=False,
        )
        t_bare, tokens = bare_loop(cfg)
        shutil.rmtree(out, ignore_errors=True)
        t_loop, t_total, tokens_art = artent_loop(cfg)
        assert tokens_art == tokens, "the two loops saw different batches"
        shutil.rmtree(out, ignore_errors=True)
        print(
            f"{method:<6} {tokens / t_bare:11.0f} {tokens / t_loop:13.0f} "
            f"{100 * (t_loop / t_bare - 1):13.1f}% {t_total:17.1f} s"
        )
    print(
        "loop overhead: artent's training steps (logged wall time) against the bare loop;"
        " the whole call adds\nloading, data preparation, the final held-out evaluation"
        " and checkpoint."
    )


if __name__ == "__main__":
    main()
