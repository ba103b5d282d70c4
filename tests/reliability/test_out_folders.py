"""Class 2: no command overwrites another's results or any of its inputs; a second process writing
the same folder is refused. Each refusal is one line, exit 2, and leaves every file as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from reliability_helpers import one_line_error, snapshot, train_args
from safetensors.torch import save_file

from artent.folders.claim import LOCK_NAME, claim_out


@pytest.fixture
def weights(tmp_path) -> Path:
    path = tmp_path / "w.safetensors"
    save_file({"w": torch.randn(8, 4, generator=torch.Generator().manual_seed(0))}, str(path))
    return path


def test_analyses_refuse_a_training_run_folder(
    artent, small_tiny, tiny_runs, lora_adapter, texts_file
):
    run = Path(tiny_runs["lora"])
    before = snapshot(run)
    for args in (
        ["internal", "--adapter", lora_adapter, "--out", run],
        ["external", "--model", small_tiny, "--texts", texts_file, "--out", run],
        ["nohair", lora_adapter, "--base", small_tiny, "--texts", texts_file, "--out", run],
    ):
        one_line_error(artent(*args), f"--out {run}", "artent train")
    assert snapshot(run) == before


def test_an_output_folder_holding_an_input_is_refused(artent, tiny_runs, texts_file):
    run = Path(tiny_runs["lora"])
    checkpoints = run / "checkpoints"
    before = snapshot(run)
    adapter = checkpoints / "step-000020"
    one_line_error(
        artent("internal", "--adapter", adapter, "--out", checkpoints), "holds the input"
    )
    one_line_error(artent("internal", "--adapter", adapter, "--out", adapter), "holds the input")
    one_line_error(
        artent("internal", "--run", run, "--out", run.parent), f"--out {run.parent}", "input"
    )
    assert snapshot(run) == before


def test_commands_refuse_each_others_folders(artent, small_tiny, small_chats, tmp_path):
    analysis = tmp_path / "analysis"
    analysis.mkdir()
    (analysis / "run.json").write_text('{"command": "internal", "config": {}}\n')
    (analysis / "internal.parquet").write_bytes(b"results")
    study = tmp_path / "study"
    study.mkdir()
    (study / "study.json").write_text("{}\n")
    before = snapshot(tmp_path)
    one_line_error(
        artent(*train_args(small_tiny, small_chats, analysis)), f"--out {analysis}", "internal"
    )
    one_line_error(artent("demo", "--quick", "--out", analysis), "artent internal")
    one_line_error(
        artent(*train_args(small_tiny, small_chats, study)), f"--out {study}", "artent demo"
    )
    assert snapshot(tmp_path) == before


def test_an_analysis_refuses_files_it_did_not_write(artent, lora_adapter, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "internal.png").write_bytes(b"somebody's picture")
    before = snapshot(out)
    one_line_error(artent("internal", "--adapter", lora_adapter, "--out", out), "internal.png")
    assert snapshot(out) == before


def test_profile_never_destroys_its_input_or_a_foreign_file(artent, weights, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me\n")
    before = snapshot(tmp_path)
    one_line_error(artent("profile", weights, "--out", weights), f"--out {weights}", "input")
    one_line_error(artent("profile", weights, "--out", notes), f"--out {notes}")
    one_line_error(artent("profile", weights, "--out", tmp_path), "folder")
    assert snapshot(tmp_path) == before
    # its own earlier result it replaces
    out = tmp_path / "p.parquet"
    assert artent("profile", weights, "--out", out).code == 0
    assert artent("profile", weights, "--out", out).code == 0


def test_a_second_process_writing_the_same_folder_is_refused(
    artent, small_tiny, small_chats, lora_adapter, tmp_path
):
    out = tmp_path / "busy"
    with claim_out(out, "train", record=False):  # what a running `artent train` holds
        assert (out / LOCK_NAME).is_file()
        before = snapshot(out)
        one_line_error(
            artent(*train_args(small_tiny, small_chats, out)), f"--out {out}", "another artent"
        )
        assert snapshot(out) == before
    assert list(out.iterdir()) == []  # the holder let go: its lock file went with it
    # the lock goes with its holder: now the folder is free
    result = artent("internal", "--adapter", lora_adapter, "--out", out)
    assert result.code == 0, result
    assert not (out / LOCK_NAME).exists()
