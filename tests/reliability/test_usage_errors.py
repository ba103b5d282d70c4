"""Class 3: usage errors end in one line and exit 2 (typer's bundled click included); Ctrl-C in
one line and exit 130, never 0."""

from __future__ import annotations

from importlib import metadata

import pytest
from reliability_helpers import one_line_error, snapshot, train_args

from artent.cli.app import _click_exception


@pytest.mark.parametrize(
    "args, needles",
    [
        (["trian"], ["No such command 'trian'", "train"]),
        (["train", "--rank", "abc", "--out", "x"], ["--rank"]),
        (["train", "--no-such-option"], ["--no-such-option"]),
        (["internal"], ["--out"]),
        (["external", "--out", "o"], ["--texts"]),
        (["profile"], ["'path'"]),
        (["sweep", "spec.yaml"], ["--out"]),
        (["profile", "missing.safetensors"], ["missing.safetensors"]),
        (["internal", "--adapter", "EMPTYDIR", "--out", "o"], ["EMPTYDIR", "adapter_config.json"]),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) and "--out" not in v[:1] else "",
)
def test_usage_mistakes_are_one_line_and_exit_2(artent, tmp_path, monkeypatch, args, needles):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "EMPTYDIR").mkdir()
    before = snapshot(tmp_path)
    one_line_error(artent(*args), *needles)
    assert snapshot(tmp_path) == before  # nothing created, nothing changed


def test_bare_artent_lists_the_commands_and_exits_2(artent):
    result = artent()
    one_line_error(result, "no command given")
    assert "train" in result.out and "internal" in result.out


def test_the_handlers_catch_the_click_typer_raises():
    # typer >= 0.22 raises its bundled copy's exceptions, which `click.ClickException` misses;
    # the pin in pyproject.toml keeps typer on the range these tests ran on
    import typer

    assert issubclass(typer.BadParameter, _click_exception())
    version = tuple(int(p) for p in metadata.version("typer").split(".")[:2])
    assert (0, 27) <= version < (0, 30), metadata.version("typer")


def test_ctrl_c_during_training_exits_130_in_one_line(
    artent, small_tiny, small_chats, tmp_path, monkeypatch
):
    import artent.training.checkpoints as checkpoints

    def interrupt(stage, step):
        if (stage, step) == ("prune", 2):
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoints, "journal", interrupt)
    out = tmp_path / "run"
    result = artent(*train_args(small_tiny, small_chats, out, quiet=tmp_path))
    one_line_error(result, "interrupted", code=130)
    assert not (out / "DONE").exists()
    monkeypatch.undo()
    # the interrupted run resumes and finishes
    assert artent(*train_args(small_tiny, small_chats, out, quiet=tmp_path)).code == 0
    assert (out / "DONE").is_file()


def test_ctrl_c_before_the_first_checkpoint_leaves_nothing(
    artent, small_tiny, small_chats, tmp_path, monkeypatch
):
    import artent.training.loop as loop

    def interrupt(cfg, device="cpu"):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "prepare", interrupt)
    out = tmp_path / "deep" / "run"
    one_line_error(artent(*train_args(small_tiny, small_chats, out)), "interrupted", code=130)
    assert not (tmp_path / "deep").exists()
