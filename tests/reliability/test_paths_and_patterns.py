"""Nothing read or removed outside its folder (links, shard indexes); user regexes never hang."""

from __future__ import annotations

import json
import shutil
import time

import pytest
import torch
from reliability_helpers import one_line_error, snapshot
from safetensors.torch import save_file


def test_cleaning_up_never_follows_a_link_out_of_the_folder(tmp_path):
    from artent.folders.claim import remove_stale_temporaries

    outside = tmp_path / "outside"
    (outside / "step-000001.tmp").mkdir(parents=True)
    (outside / "step-000001.tmp" / "weights").write_text("precious")
    (outside / ".losses.parquet.abc.tmp").write_text("precious too")
    (outside / "notes.txt").write_text("mine")
    folder = tmp_path / "run"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "step-000002.tmp").mkdir()  # a real leftover: removed
    (folder / ".run.json.x.tmp").write_text("half")  # a real leftover: removed
    (folder / "linked").symlink_to(outside, target_is_directory=True)
    (folder / "step-000003.tmp").symlink_to(outside / "step-000001.tmp")
    (folder / ".evil.y.tmp").symlink_to(outside / "notes.txt")
    before = snapshot(outside)
    remove_stale_temporaries(folder)
    assert snapshot(outside) == before
    assert not (folder / "checkpoints" / "step-000002.tmp").exists()
    assert not (folder / ".run.json.x.tmp").exists()
    assert not (folder / ".evil.y.tmp").is_symlink()  # the link went, not what it named
    assert (folder / "linked").is_symlink()


def test_a_sweep_rerun_leaves_what_a_link_points_at(artent, tmp_path):
    outside = tmp_path / "outside"
    (outside / "keep.tmp").mkdir(parents=True)
    (outside / ".x.json.1.tmp").write_text("precious")
    spec = tmp_path / "spec.yaml"
    spec.write_text("base: {method: lora, model: /nonexistent/model, steps: 1}\ngrid: {}\n")
    out = tmp_path / "sw"
    artent("sweep", spec, "--out", out)  # one failed point: the folder is a sweep's
    assert (out / "sweep.json").is_file()
    (out / "elsewhere").symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)
    result = artent("sweep", spec, "--out", out)
    assert result.code == 2 and "Traceback" not in result.err
    assert snapshot(outside) == before


def _sharded(folder, name_of_shard):
    folder.mkdir(parents=True)
    index = {"metadata": {}, "weight_map": {"w": name_of_shard}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder


@pytest.mark.parametrize("where", ["dotdot", "absolute", "nested-dotdot"])
def test_a_shard_index_never_names_a_file_outside_its_folder(artent, tmp_path, where, monkeypatch):
    secret = tmp_path / "secret.safetensors"
    save_file({"w": torch.eye(4)}, str(secret))
    name = {
        "dotdot": "../secret.safetensors",
        "absolute": str(secret),
        "nested-dotdot": "sub/../../secret.safetensors",
    }[where]
    folder = _sharded(tmp_path / "ckpt", name)
    import safetensors

    opened = []
    real = safetensors.safe_open
    monkeypatch.setattr(
        safetensors, "safe_open", lambda f, *a, **k: opened.append(f) or real(f, *a, **k)
    )
    line = one_line_error(artent("profile", folder), "model.safetensors.index.json", "outside")
    assert repr(name) in line or name in line
    assert opened == []


def test_a_shard_index_inside_its_folder_still_reads(artent, tmp_path):
    folder = _sharded(tmp_path / "ckpt", "shards/part-1.safetensors")
    (folder / "shards").mkdir()
    save_file({"w": torch.eye(4)}, str(folder / "shards" / "part-1.safetensors"))
    result = artent("profile", folder)
    assert result.code == 0, result.err


# re.fullmatch of this against 'model.layers.0.self_attn.q_proj' backtracks for hours (checked: it
# was still running when stopped after 3 s); the `regex` matcher decides it at once
BACKTRACKS_IN_RE = r"(\w*\.?\w*)*!"
# this one outruns `regex` too: refused when its time is up
OUTRUNS_THE_BUDGET = r"(.*){1,32000}[bc]"


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"target_modules": BACKTRACKS_IN_RE}, "matches no module"),
        ({"target_modules": OUTRUNS_THE_BUDGET}, "takes more than"),
        ({"exclude_modules": OUTRUNS_THE_BUDGET}, "exclude_modules"),
        ({"alpha_pattern": {OUTRUNS_THE_BUDGET: 4}}, "alpha_pattern"),
        ({"modules_to_save": ["lm_(head|x)*"]}, "modules_to_save"),
    ],
)
def test_a_hostile_adapter_pattern_returns_within_seconds(
    artent, small_tiny, lora_adapter, texts_file, tmp_path, monkeypatch, change, needle
):
    import artent.models.user_regex as user_regex

    monkeypatch.setattr(user_regex, "MATCH_BUDGET_S", 0.5)
    adapter = tmp_path / "adapter"
    shutil.copytree(lora_adapter, adapter)
    config_file = adapter / "adapter_config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), **change}))
    out = tmp_path / "e"
    start = time.monotonic()
    result = artent(
        "external", "--model", small_tiny, "--adapter", adapter, "--texts", texts_file, "--out", out
    )
    assert time.monotonic() - start < 10
    one_line_error(result, str(config_file), needle)
    assert not out.exists()


def test_a_pattern_target_is_the_list_of_names_it_matches(small_tiny, lora_adapter, tmp_path):
    """A legal pattern still works: the same logits as the adapter saved with a list."""
    from artent.models.loading import load_for_forward

    config_file = lora_adapter / "adapter_config.json"
    targets = json.loads(config_file.read_text())["target_modules"]
    adapter = tmp_path / "adapter"
    shutil.copytree(lora_adapter, adapter)
    pattern = r".*\.(" + "|".join(sorted(targets)) + ")"
    config = json.loads(config_file.read_text())
    (adapter / "adapter_config.json").write_text(json.dumps({**config, "target_modules": pattern}))
    ids = torch.arange(12).reshape(1, -1)
    logits = []
    for folder in (lora_adapter, adapter):
        model, _ = load_for_forward(str(small_tiny), adapter=str(folder))
        with torch.no_grad():
            logits.append(model(ids).logits)
    torch.testing.assert_close(logits[0], logits[1], rtol=0, atol=0)


def test_a_model_folder_whose_index_names_an_outside_file_is_refused(
    artent, small_tiny, texts_file, tmp_path
):
    model = tmp_path / "model"
    shutil.copytree(small_tiny, model)
    index = {"metadata": {}, "weight_map": {"lm_head.weight": "/etc/passwd"}}
    (model / "model.safetensors.index.json").write_text(json.dumps(index))
    out = tmp_path / "e"
    result = artent("external", "--model", model, "--texts", texts_file, "--out", out)
    one_line_error(result, "model.safetensors.index.json", "'/etc/passwd' lies outside")
    assert not out.exists()
