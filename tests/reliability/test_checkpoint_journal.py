"""Class 1: a kill while a checkpoint is saved loses nothing and never blocks the resume.

The run folder is a journal: losses are on disk before the checkpoint that depends on them, a
checkpoint exists complete (``step-NNNNNN/``) or not at all (``step-NNNNNN.tmp/`` is never resumed
from), and what a killed writer left is removed on the next start; the demo and the sweep clean
their folders the same way.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load_file

import artent
from artent.folders.claim import LOCK_NAME, remove_stale_temporaries

STAGES = ("losses", "weights", "state", "rename", "prune")
DRIVER = Path(__file__).with_name("kill_driver.py")


def _losses(run: Path) -> pd.DataFrame:
    return pd.read_parquet(run / "losses.parquet").drop(columns="wall_s")


def test_sigkill_at_each_stage_of_a_save_then_rerun_matches_an_uninterrupted_run(
    small_tiny, small_chats, tmp_path
):
    src = str(Path(artent.__file__).parents[1])
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    args = [str(tmp_path), str(small_tiny), str(small_chats), ",".join(STAGES)]
    proc = subprocess.run(
        [sys.executable, str(DRIVER), *args], env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.splitlines()[-1])
    assert results["reference"]["code"] == 0, results["reference"]
    reference = tmp_path / "reference"
    want_losses = _losses(reference)
    want_weights = load_file(reference / "checkpoints/step-000004/adapter_model.safetensors")
    for stage in STAGES:
        killed, rerun = results[stage]["killed"], results[stage]["rerun"]
        assert killed["signal"] == signal.SIGKILL, (stage, killed)
        assert rerun["code"] == 0 and "Traceback" not in rerun["stderr"], (stage, rerun)
        run = tmp_path / stage
        pd.testing.assert_frame_equal(_losses(run), want_losses, check_exact=True, obj=stage)
        got = load_file(run / "checkpoints/step-000004/adapter_model.safetensors")
        assert got.keys() == want_weights.keys()
        for key, tensor in want_weights.items():
            assert torch.equal(got[key], tensor), (stage, key)
        # only complete checkpoints, no temporaries, no lock left behind
        assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
            "step-000000",
            "step-000002",
            "step-000004",
        ]
        assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")], stage
        assert not (run / LOCK_NAME).exists()
        resumed = json.loads((run / "run.json").read_text())["resumed_at"]
        # a kill before the rename resumes from step 0; after it, from the new checkpoint
        assert resumed == ([0] if stage in ("losses", "weights", "state") else [2]), stage


def test_stale_temporaries_are_removed_but_not_in_skipped_folders(tmp_path):
    (tmp_path / "checkpoints" / "step-000010.tmp").mkdir(parents=True)
    (tmp_path / "checkpoints" / "step-000010.tmp" / "adapter_model.safetensors").write_bytes(b"x")
    (tmp_path / ".losses.parquet.abc123.tmp").write_bytes(b"half")
    (tmp_path / "external" / ".external.parquet.x.tmp").parent.mkdir()
    (tmp_path / "external" / ".external.parquet.x.tmp").write_bytes(b"half")
    (tmp_path / "notes.tmp").write_text("a user's file, not an artent temporary")
    (tmp_path / "runs" / "a" / "checkpoints" / "step-000001.tmp").mkdir(parents=True)
    remove_stale_temporaries(tmp_path, skip=("runs",))
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert left == [
        "checkpoints",
        "external",
        "notes.tmp",
        "runs",
        "runs/a",
        "runs/a/checkpoints",
        "runs/a/checkpoints/step-000001.tmp",
    ]


def test_a_sweep_rerun_removes_what_a_killed_writer_left(small_tiny, small_chats, tmp_path):
    from artent.pipelines.sweep import SweepSpec, run_sweep

    base = dict(
        model=str(small_tiny),
        data=str(small_chats),
        steps=2,
        batch_size=4,
        seq_len=64,
        save_steps=[0, 2],
        eval_every=0,
    )
    spec = SweepSpec(base=base, grid={"rank": [2]}, internal={"modules": ["q_proj"]})
    out = tmp_path / "sweep"
    assert list(run_sweep(spec, out).status) == ["ok"]
    stale = out / ".sweep.parquet.k1ll3d.tmp"  # the sweep killed while writing its table
    stale.write_bytes(b"half a table")
    again = run_sweep(spec, out)
    assert list(again.status) == ["ok"] and bool(again.reused.all())
    assert not stale.exists() and not (out / LOCK_NAME).exists()
