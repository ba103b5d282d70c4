"""Training under ``accelerate launch`` (2 CPU processes, gloo) follows the single-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from artent.training.config import TrainConfig
from artent.training.distributed import _share, supervised_tokens
from artent.training.loop import train

OPTIONS = dict(
    method="lora",
    data="synthetic-tulu",
    steps=6,
    batch_size=4,
    seq_len=256,
    rank=4,
    lr=5e-3,
    dropout=0.0,
    save_steps=[0, 3, 6],
    eval_every=3,
    eval_batches=3,
    n_synthetic=200,
    progress=False,
)


def _losses(run: Path, split: str) -> pd.Series:
    df = pd.read_parquet(run / "losses.parquet")
    return df[df.split == split].set_index("step").loss


@pytest.mark.parametrize("n,world", [(4, 2), (5, 2), (7, 3), (2, 2), (3, 4)])
def test_shares_cover_every_row_once_in_order(n, world):
    shares = [_share(n, r, world) for r in range(world)]
    rows = [i for s in shares for i in range(n)[s]]
    assert rows == list(range(n))
    sizes = [s.stop - s.start for s in shares]
    assert max(sizes) - min(sizes) <= 1


def test_supervised_tokens_counts_shifted_labels():
    import torch

    labels = torch.tensor([[5, -100, 7, 8], [-100, -100, -100, 9]])
    assert supervised_tokens(labels) == 3  # the first column never carries a loss


def test_single_process_run_starts_no_process_group(small_tiny, tmp_path, monkeypatch):
    # transformers itself imports accelerate where it is installed, so the check is on what the
    # loop does with it: no Accelerator / PartialState is created, no process group is started.
    import torch.distributed

    import artent.training.loop as loop
    from artent.training.distributed import SingleProcess

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    seen = []
    real_detect = loop.detect_processes
    monkeypatch.setattr(
        loop, "detect_processes", lambda *a: seen.append(real_detect(*a)) or seen[-1]
    )
    accelerate_state = sys.modules.get("accelerate.state")
    before = dict(accelerate_state.PartialState._shared_state) if accelerate_state else {}
    cfg = dict(OPTIONS, model=str(small_tiny), out=str(tmp_path / "run"), steps=2, save_steps=[2])
    train(TrainConfig(**cfg))
    assert [type(p) for p in seen] == [SingleProcess]
    assert not (torch.distributed.is_available() and torch.distributed.is_initialized())
    accelerate_state = sys.modules.get("accelerate.state")
    after = dict(accelerate_state.PartialState._shared_state) if accelerate_state else {}
    assert after == before
    assert (tmp_path / "run" / "DONE").is_file()


def test_two_processes_follow_the_single_process_loss_curve(small_tiny, artent_cache, tmp_path):
    single = train(TrainConfig(**OPTIONS, model=str(small_tiny), out=str(tmp_path / "single")))

    out = tmp_path / "double"
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text(
        "".join(f"{k}: {v!r}\n".replace("'", "") for k, v in OPTIONS.items())
        + f"model: {small_tiny}\nout: {out}\n"
    )
    env = {**os.environ, "ARTENT_CACHE": str(artent_cache), "OMP_NUM_THREADS": "1"}
    launcher = Path(sys.executable).with_name("accelerate")
    done = subprocess.run(
        [
            str(launcher),
            "launch",
            "--multi_gpu",  # on a machine without GPUs: torchrun, 2 processes, gloo
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "-m",
            "artent.cli",
            "train",
            "--config",
            str(cfg_file),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "run.json").read_text())["processes"] == 2  # really launched two
    assert "processes" not in json.loads((single / "run.json").read_text())

    a_train, b_train = _losses(single, "train"), _losses(out, "train")
    assert list(b_train.index) == list(range(1, 7))
    print("max |train loss 2 procs - 1 proc|:", np.abs(b_train.values - a_train.values).max())
    np.testing.assert_allclose(b_train.values, a_train.values, rtol=1e-3)
    a_held, b_held = _losses(single, "heldout"), _losses(out, "heldout")
    assert list(b_held.index) == [0, 3, 6]
    print("max |heldout loss 2 procs - 1 proc|:", np.abs(b_held.values - a_held.values).max())
    np.testing.assert_allclose(b_held.values, a_held.values, rtol=1e-3)
    assert b_held.loc[6] < b_held.loc[0]  # it did train: the comparison is not of two idle runs
    # one writer: one set of checkpoints, one finished marker, the adapter that single saved
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "step-000000",
        "step-000003",
        "step-000006",
    ]
    assert (out / "DONE").is_file()
    from safetensors.torch import load_file

    wa = load_file(single / "checkpoints" / "step-000006" / "adapter_model.safetensors")
    wb = load_file(out / "checkpoints" / "step-000006" / "adapter_model.safetensors")
    assert wa.keys() == wb.keys()
    for key in wa:
        np.testing.assert_allclose(wb[key].numpy(), wa[key].numpy(), rtol=1e-3, atol=1e-5)
