"""SIGTERM is Ctrl-C: one line, exit 143, the lock and the record cleaned, the run resumable.

The signal is real (``os.kill`` of this process, from inside the command, where a scheduler's
``kill`` would land); the handler is the one ``artent.cli.main`` installs.
"""

from __future__ import annotations

import os
import signal

import pytest
from reliability_helpers import one_line_error, train_args


def _terminate_at_the_first_rename(monkeypatch, after: int = 0):
    """SIGTERM this process when the command renames its ``after``-th result file into place."""
    real = os.replace
    calls = []

    def replace(src, dst, *args, **kwargs):
        calls.append(dst)
        if len(calls) == after + 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    return calls


def _no_lock_left(folder):
    return not any(p.name == ".artent.lock" for p in folder.rglob("*")) if folder.exists() else True


def test_sigterm_during_training_exits_143_and_resumes(
    artent, small_tiny, small_chats, tmp_path, monkeypatch
):
    import artent.training.checkpoints as checkpoints

    def terminate(stage, step):
        if (stage, step) == ("losses", 2):
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(checkpoints, "journal", terminate)
    out = tmp_path / "run"
    result = artent(*train_args(small_tiny, small_chats, out, quiet=tmp_path))
    one_line_error(result, "terminated (SIGTERM)", "resumes", code=143)
    assert _no_lock_left(out) and not (out / "DONE").exists()
    assert (out / "checkpoints" / "step-000000").is_dir()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back as it was
    monkeypatch.undo()
    assert artent(*train_args(small_tiny, small_chats, out, quiet=tmp_path)).code == 0
    assert (out / "DONE").is_file()


@pytest.mark.parametrize("command", ["internal", "external"])
def test_sigterm_during_an_analysis_leaves_a_folder_the_next_command_accepts(
    artent, small_tiny, lora_adapter, texts_file, tmp_path, monkeypatch, command
):
    out = tmp_path / command
    args = {
        "internal": ["internal", "--adapter", lora_adapter, "--out", out],
        "external": ["external", "--model", small_tiny, "--adapter", lora_adapter]
        + ["--texts", texts_file, "--seq-len", "16", "--n-texts", "2", "--out", out],
    }[command]
    # a fresh folder: nothing worth keeping yet, so nothing is left
    _terminate_at_the_first_rename(monkeypatch, after=1)
    one_line_error(artent(*args), "terminated (SIGTERM)", code=143)
    assert not out.exists()
    monkeypatch.undo()
    assert artent(*args).code == 0
    before = sorted(p.name for p in out.iterdir())
    # its own finished folder, terminated on a rerun: lock gone, the next rerun accepted
    _terminate_at_the_first_rename(monkeypatch, after=1)
    one_line_error(artent(*args), "terminated (SIGTERM)", code=143)
    assert _no_lock_left(out)
    monkeypatch.undo()
    assert artent(*args).code == 0
    assert sorted(p.name for p in out.iterdir()) == before


def test_sigterm_to_a_real_train_process(artent, small_tiny, small_chats, tmp_path):
    """``kill PID`` from outside, as a scheduler sends it: exit 143, one line, no lock, resumes."""
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    args = train_args(small_tiny, small_chats, out, quiet=tmp_path)
    args[args.index("--steps") + 1] = "150"  # a few seconds: time to be terminated in
    args[args.index("--save-steps") + 1] = "0,150"
    proc = subprocess.Popen(
        [sys.executable, "-m", "artent.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 120
    while not (out / "checkpoints" / "step-000000").is_dir() and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines == [lines[-1]] and "terminated (SIGTERM)" in lines[-1], err
    assert _no_lock_left(out) and not (out / "DONE").exists()
    assert artent(*args).code == 0 and (out / "DONE").is_file()  # resumed from step 0
