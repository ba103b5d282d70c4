"""Class 8: the small things: messages name what they are about, no dataclass internals in them,
``nohair --base tiny``, no transformers warning per adapter, ordinary file permissions, one
step-0 held-out row after a resume from step 0."""

from __future__ import annotations

import json
import os
import shutil
import stat
import warnings
from pathlib import Path

import pandas as pd
from reliability_helpers import one_line_error, train_args


def test_messages_name_the_option_or_file(artent, lora_adapter, tmp_path):
    one_line_error(
        artent("internal", "--adapter", lora_adapter, "--out", tmp_path / "o", "--layers", "x"),
        "--layers",
    )
    one_line_error(
        artent("internal", "--adapter", lora_adapter, "--out", tmp_path / "o", "--k", "0"), "k"
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text("base: {lr: fast}\n")
    one_line_error(artent("sweep", spec, "--out", tmp_path / "s"), str(spec), "lr")


def test_a_changed_default_factory_option_is_named_by_its_value(
    artent, small_tiny, small_chats, tmp_path
):
    out = tmp_path / "run"
    assert artent(*train_args(small_tiny, small_chats, out)).code == 0
    record = json.loads((out / "run.json").read_text())
    del record["config"]["targets"]  # as a run written before the option existed
    (out / "run.json").write_text(json.dumps(record))
    line = one_line_error(
        artent(*train_args(small_tiny, small_chats, out, "--targets", "q_proj")), "targets"
    )
    assert "['q_proj', 'v_proj']" in line and "MISSING" not in line


def test_nohair_accepts_base_tiny_beside_runs_of_tiny(
    tiny_runs, small_tiny, lora_adapter, tmp_path, monkeypatch
):
    import artent.models.tiny as tiny
    from artent.analysis.nohair import resolve_specs

    # the cached tiny model, which the runs record as "tiny", is the small one here
    monkeypatch.setattr(tiny, "ensure_tiny_model", lambda *a, **k: Path(small_tiny))
    run = Path(tiny_runs["mps"])
    record = json.loads((run / "run.json").read_text())
    assert record["config"]["model"] == str(small_tiny)
    tiny_run = tmp_path / "mps"
    shutil.copytree(run, tiny_run)
    record["config"]["model"] = "tiny"
    (tiny_run / "run.json").write_text(json.dumps(record))
    specs = resolve_specs([str(tiny_run), str(lora_adapter)], base="tiny")
    assert {s.base for s in specs} == {str(small_tiny)}


def test_putting_an_adapter_on_prints_no_transformers_warning(small_tiny, lora_adapter):
    from artent.models.loading import load_for_forward

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_for_forward(str(small_tiny), adapter=str(lora_adapter))
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]


def test_result_files_get_ordinary_permissions(artent, lora_adapter, tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "analysis"
        assert artent("internal", "--adapter", lora_adapter, "--out", out).code == 0
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert set(modes) == {
        "run.json",
        "internal.parquet",
        "internal_summary.parquet",
        "internal.png",
    }
    assert set(modes.values()) == {0o644}, modes


def test_a_resume_from_step_0_keeps_one_step_0_row(
    artent, small_tiny, small_chats, tmp_path, monkeypatch
):
    import artent.training.checkpoints as checkpoints

    def stop_after_step_0(stage, step):
        if (stage, step) == ("prune", 0):
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoints, "journal", stop_after_step_0)
    out = tmp_path / "run"
    assert artent(*train_args(small_tiny, small_chats, out)).code == 130
    monkeypatch.undo()
    assert artent(*train_args(small_tiny, small_chats, out)).code == 0
    losses = pd.read_parquet(out / "losses.parquet")
    assert json.loads((out / "run.json").read_text())["resumed_at"] == [0]
    assert len(losses[(losses.step == 0) & (losses.split == "heldout")]) == 1
    assert list(losses[losses.split == "train"].step) == [1, 2]
