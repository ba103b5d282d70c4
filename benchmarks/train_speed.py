"""Training throughput of artent's trainer against a bare torch loop, in one run.

For each method (FFT, LoRA, MPS) on the tiny model, both loops see the same model with the same
method attached, the same batches and AdamW; the bare loop is forward, backward, clip, step and
nothing else. artent's figure is the whole ``train()`` call minus its set-up (``prepare``), so it
includes the per-step bookkeeping and the final held-out evaluation and checkpoint.

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


def artent_loop(cfg: TrainConfig) -> float:
    t0 = time.perf_counter()
    prepare(cfg)
    t_prepare = time.perf_counter() - t0
    t0 = time.perf_counter()
    train(cfg)
    return time.perf_counter() - t0 - t_prepare


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
    print(f"{'method':<6} {'bare tok/s':>11} {'artent tok/s':>13} {'overhead':>9}")
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
        t_art = artent_loop(cfg)
        shutil.rmtree(out, ignore_errors=True)
        print(
            f"{method:<6} {tokens / t_bare:11.0f} {tokens / t_art:13.0f} "
            f"{100 * (t_art / t_bare - 1):8.1f}%"
        )


if __name__ == "__main__":
    main()
