"""Class 6: wrongly typed files and options, unusable devices, absurd sizes, unwritable outputs
and unreachable clusters end in one line naming the file or option, exit 2, nothing created."""

from __future__ import annotations

import errno
import json
import os
import shutil

import pytest
import torch
from reliability_helpers import one_line_error, snapshot, train_args


@pytest.mark.parametrize(
    "text, option",
    [
        ("lr: fast\n", "lr"),
        ("save_steps: [a, b]\n", "save_steps"),
        ("targets: 5\n", "targets"),
        ("rank: [8]\n", "rank"),
        ("method: 3\n", "method"),
        ("- just\n- a list\n", "mapping"),
    ],
)
def test_train_config_of_the_wrong_types(artent, small_tiny, small_chats, tmp_path, text, option):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    out = tmp_path / "run"
    args = ["--model", small_tiny, "--data", small_chats, "--out", out, "--config", config]
    one_line_error(artent("train", *args), str(config), option)
    assert not out.exists()


@pytest.mark.parametrize(
    "text, needle",
    [("ranks: 8\n", "ranks"), ("lora_lrs: [fast]\n", "lora_lrs"), ("steps: 1.5\n", "steps")],
)
def test_study_config_of_the_wrong_types(artent, tmp_path, text, needle):
    config = tmp_path / "study.yaml"
    config.write_text(text)
    out = tmp_path / "demo"
    one_line_error(artent("demo", "--config", config, "--out", out), str(config), needle)
    assert not out.exists()


@pytest.mark.parametrize(
    "spec, needle",
    [
        ({"base": 5}, "base"),
        ({"grid": {"rank": 8}}, "rank"),
        ({"grid": [1, 2]}, "grid"),
        ({"internal": {"k": "wide"}}, "k"),
    ],
)
def test_sweep_spec_of_the_wrong_types(artent, tmp_path, spec, needle):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    out = tmp_path / "sweep"
    one_line_error(artent("sweep", path, "--out", out), str(path), needle)
    assert not out.exists()


ADAPTER_CONFIGS = {
    "a list": ([1, 2], "JSON object"),
    "string lora_alpha": ({"lora_alpha": "big"}, "lora_alpha"),
    "bad alpha_pattern key": ({"alpha_pattern": {"([": 8}}, "alpha_pattern"),
    "alpha_pattern a list": ({"alpha_pattern": [8]}, "alpha_pattern"),
    "unknown peft_type": ({"peft_type": "BOGUS"}, "BOGUS"),
    "r a string": ({"r": "eight"}, "'r'"),
}


@pytest.mark.parametrize("case", list(ADAPTER_CONFIGS))
def test_adapter_configs_of_the_wrong_shape(
    artent, small_tiny, lora_adapter, texts_file, tmp_path, case
):
    change, needle = ADAPTER_CONFIGS[case]
    adapter = tmp_path / "adapter"
    shutil.copytree(lora_adapter, adapter)
    config_file = adapter / "adapter_config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, **change} if isinstance(change, dict) else change))
    for args in (
        ["internal", "--adapter", adapter, "--out", tmp_path / "i"],
        ["external", "--model", small_tiny, "--adapter", adapter, "--texts", texts_file]
        + ["--out", tmp_path / "e"],
    ):
        one_line_error(artent(*args), str(config_file), needle)
    assert not (tmp_path / "i").exists() and not (tmp_path / "e").exists()


@pytest.mark.parametrize(
    "change", [{"hidden_size": "big"}, {"num_hidden_layers": [2]}, {"vocab_size": None}]
)
def test_a_model_config_of_the_wrong_types(
    artent, small_tiny, small_chats, texts_file, tmp_path, change
):
    model = tmp_path / "model"
    shutil.copytree(small_tiny, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, **change}))
    before = snapshot(model)
    one_line_error(artent(*train_args(model, small_chats, tmp_path / "run")), str(model))
    one_line_error(
        artent("external", "--model", model, "--texts", texts_file, "--out", tmp_path / "e"),
        str(model),
    )
    assert snapshot(model) == before
    assert not (tmp_path / "run").exists() and not (tmp_path / "e").exists()


def test_binary_texts_and_data(artent, small_tiny, lora_adapter, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_bytes(bytes(range(256)) * 4)
    for args in (
        ["external", "--model", small_tiny, "--texts", texts, "--out", tmp_path / "e"],
        ["nohair", lora_adapter, "--base", small_tiny, "--texts", texts, "--out", tmp_path / "n"],
    ):
        one_line_error(artent(*args), str(texts), "UTF-8")
    for name in ("data.jsonl", "data.json"):
        data = tmp_path / name
        data.write_bytes(bytes(range(128, 256)) * 4)
        one_line_error(artent(*train_args(small_tiny, data, tmp_path / "r")), str(data), "UTF-8")
    assert not any((tmp_path / d).exists() for d in ("e", "n", "r"))


@pytest.mark.parametrize("device", ["banana", "cuda:x", "cuda", "cuda:7"])
def test_devices_that_are_not_there(
    artent, small_tiny, small_chats, lora_adapter, tmp_path, device
):
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has the GPUs asked for")
    run = tmp_path / "run"
    one_line_error(
        artent(*train_args(small_tiny, small_chats, run, "--device", device)), "device", device
    )
    result = artent(
        "internal", "--adapter", lora_adapter, "--out", tmp_path / "i", "--device", device
    )
    one_line_error(result, "--device", device)
    assert not run.exists() and not (tmp_path / "i").exists()


@pytest.mark.parametrize(
    "flag, value, needle",
    [("--rank", "1000000000", "--rank"), ("--seq-len", "100000", "seq_len")],
)
def test_sizes_that_cannot_fit_are_refused_with_the_estimate(
    artent, small_tiny, small_chats, tmp_path, flag, value, needle
):
    out = tmp_path / "run"
    line = one_line_error(artent(*train_args(small_tiny, small_chats, out, flag, value)), needle)
    assert "needs at least" in line or "max_position_embeddings" in line
    assert not out.exists()


def test_memory_estimate_refuses_what_cannot_fit(small_tiny, monkeypatch):
    # the bound against a machine's memory, whatever this machine has: plenty passes; the
    # base weights' size alone is less than the bound (which adds adapter, data, activations)
    import artent.training.memory as memory
    from artent.models.loading import load_base
    from artent.training.config import TrainConfig
    from artent.training.methods import check_targets

    model, _ = load_base(str(small_tiny))
    cfg = TrainConfig(model=str(small_tiny), rank=64, seq_len=128, batch_size=8)
    targets = check_targets(model, cfg.targets)
    weights = sum(p.numel() * 4 for p in model.parameters())
    monkeypatch.setattr(memory, "machine_memory", lambda device: 10**12)
    memory.check_sizes(model, cfg, targets, 100, "cpu")
    monkeypatch.setattr(memory, "machine_memory", lambda device: weights)
    with pytest.raises(ValueError, match="needs at least .* more than its"):
        memory.check_sizes(model, cfg, targets, 100, "cpu")


def test_an_out_that_is_a_file(artent, small_tiny, small_chats, lora_adapter, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder\n")
    before = snapshot(blocker)
    one_line_error(artent(*train_args(small_tiny, small_chats, blocker)), f"--out {blocker}")
    one_line_error(
        artent("internal", "--adapter", lora_adapter, "--out", blocker / "sub"), f"--out {blocker}"
    )
    assert snapshot(blocker) == before


def test_a_read_only_out(artent, lora_adapter, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: make the folder read-only as access() sees it
        real = os.access
        monkeypatch.setattr(
            os, "access", lambda p, mode: False if str(p) == str(locked) else real(p, mode)
        )
    else:
        locked.chmod(0o555)
    out = locked / "analysis"
    one_line_error(artent("internal", "--adapter", lora_adapter, "--out", out), "not writable")
    assert not out.exists()


def test_a_full_disk_leaves_no_partial_folder(artent, lora_adapter, tmp_path, monkeypatch):
    import artent.folders.atomic as io

    real = io.write_parquet
    calls = {"n": 0}

    def fill_up(path, frame):
        calls["n"] += 1
        if calls["n"] == 2:  # the second table: the first is already on disk
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, frame)

    monkeypatch.setattr(io, "write_parquet", fill_up)
    out = tmp_path / "analysis"
    one_line_error(
        artent("internal", "--adapter", lora_adapter, "--out", out),
        "internal_summary.parquet",
        "No space left on device",
    )
    assert not out.exists()
    monkeypatch.undo()
    assert artent("internal", "--adapter", lora_adapter, "--out", out).code == 0  # retry works


def test_an_unreachable_ray_address(artent, small_tiny, small_chats, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"base: {{model: {small_tiny}, data: {small_chats}, steps: 2}}\ngrid: {{rank: [2]}}\n"
    )
    out = tmp_path / "sweep"
    one_line_error(artent("sweep", spec, "--out", out, "--ray", "127.0.0.1:1"), "--ray 127.0.0.1:1")
    assert not out.exists()
