"""Class 7: everything is validated before anything is created, and a command that fails before
it has something worth keeping removes the folder it made, so a retry is never blocked."""

from __future__ import annotations

import errno
import os

import pytest
from reliability_helpers import one_line_error, train_args


def test_a_refused_demo_leaves_nothing_and_a_retry_is_not_blocked(artent, tmp_path, monkeypatch):
    import artent.pipelines.study as study

    config = tmp_path / "study.yaml"
    config.write_text("fft_lr: -1\n")  # a valid study option, an invalid run option
    out = tmp_path / "demo"
    one_line_error(artent("demo", "--config", config, "--out", out), "tulu-fft", "lr")
    assert not out.exists()

    # with valid options the same folder is taken: the stages start in a claimed folder
    # from which what a killed writer left is gone (the stages themselves are test_study's)
    out.mkdir()
    stale = out / ".study.json.k1ll3d.tmp"
    stale.write_text("{")
    seen = {}

    def stages(out_, cfg, plan, timings, *, log, progress):
        seen.update(stale=stale.exists(), locked=(out_ / ".artent.lock").is_file())
        raise KeyboardInterrupt  # as if interrupted before any run had a checkpoint

    monkeypatch.setattr(study, "_make_study", stages)
    config.write_text("steps: 4\n")
    one_line_error(artent("demo", "--config", config, "--out", out), "interrupted", code=130)
    assert seen == {"stale": False, "locked": True}
    assert out.is_dir() and list(out.iterdir()) == []  # not ours to remove, nothing left in it


def test_a_config_error_found_late_leaves_no_run_folder(artent, small_tiny, small_chats, tmp_path):
    out = tmp_path / "a" / "b" / "run"
    # the data is read, the model loaded, then the target is found missing
    result = artent(*train_args(small_tiny, small_chats, out, "--targets", "no_such_proj"))
    one_line_error(result, "targets", "no_such_proj")
    assert not (tmp_path / "a").exists()
    assert artent(*train_args(small_tiny, small_chats, out)).code == 0  # the retry runs


@pytest.mark.parametrize("failing", ["run.json", "losses.parquet"])
def test_a_full_disk_before_the_first_checkpoint_leaves_no_run_folder(
    artent, small_tiny, small_chats, tmp_path, monkeypatch, failing
):
    import artent.folders.atomic as io

    real = io.atomic_path

    def full(path):
        if os.path.basename(path) == failing:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path)

    monkeypatch.setattr(io, "atomic_path", full)
    out = tmp_path / "run"
    one_line_error(artent(*train_args(small_tiny, small_chats, out)), failing, "No space left")
    assert not out.exists()
