"""Class 5: no command unpickles without ``--allow-pickle``, and none runs a model's own code
unasked. Every loader goes through the guarded reader; nohair refuses before it loads anything."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from reliability_helpers import one_line_error, snapshot
from safetensors.torch import load_file


class _Payload:
    """Unpickling this creates the marker file: what a malicious checkpoint would do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture
def pickle_adapters(lora_adapter, tmp_path):
    """The LoRA adapter as ``adapter_model.bin`` (benign), and a malicious one."""
    benign, evil = tmp_path / "benign", tmp_path / "evil"
    for folder in (benign, evil):
        folder.mkdir()
        shutil.copy(lora_adapter / "adapter_config.json", folder / "adapter_config.json")
    weights = load_file(lora_adapter / "adapter_model.safetensors")
    torch.save(weights, benign / "adapter_model.bin")
    marker = tmp_path / "PWNED"
    torch.save({**weights, "payload": _Payload(marker)}, evil / "adapter_model.bin")
    return benign, evil, marker


@pytest.fixture
def no_unpickling(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.load was called without --allow-pickle")

    monkeypatch.setattr(torch, "load", refuse)


def test_every_command_refuses_a_pickle_without_the_flag(
    artent, small_tiny, pickle_adapters, texts_file, tmp_path, no_unpickling
):
    benign, evil, marker = pickle_adapters
    before = snapshot(benign, evil)
    for adapter in (benign, evil):
        bin_file = adapter / "adapter_model.bin"
        for args in (
            ["internal", "--adapter", adapter, "--out", tmp_path / "i"],
            ["external", "--model", small_tiny, "--adapter", adapter, "--texts", texts_file]
            + ["--out", tmp_path / "e"],
            ["nohair", adapter, "--base", small_tiny, "--texts", texts_file]
            + ["--out", tmp_path / "n"],
            ["profile", bin_file],
        ):
            one_line_error(artent(*args), str(bin_file), "--allow-pickle")
    assert not marker.exists()
    assert snapshot(benign, evil) == before
    assert not any((tmp_path / d).exists() for d in "ien")


def test_with_the_flag_a_pickle_is_read_by_the_weights_only_unpickler(
    artent, small_tiny, pickle_adapters, tmp_path
):
    _, evil, marker = pickle_adapters
    result = artent("internal", "--adapter", evil, "--out", tmp_path / "i", "--allow-pickle")
    one_line_error(result, str(evil / "adapter_model.bin"))  # refused, never executed
    assert not marker.exists()


def test_an_adapter_is_put_on_its_model_as_peft_itself_does(small_tiny, lora_adapter, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from artent.models.loading import load_for_forward

    benign = tmp_path / "benign"
    benign.mkdir()
    shutil.copy(lora_adapter / "adapter_config.json", benign / "adapter_config.json")
    torch.save(load_file(lora_adapter / "adapter_model.safetensors"), benign / "adapter_model.bin")
    ids = torch.arange(1, 33).reshape(2, 16)
    base = AutoModelForCausalLM.from_pretrained(small_tiny, dtype=torch.float32)
    want = PeftModel.from_pretrained(base, str(lora_adapter)).eval()(ids).logits
    ours, _ = load_for_forward(str(small_tiny), adapter=str(lora_adapter))
    from_pickle, _ = load_for_forward(str(small_tiny), adapter=str(benign), allow_pickle=True)
    with torch.no_grad():
        assert torch.equal(ours(ids).logits, want.detach())
        assert torch.equal(from_pickle(ids).logits, want.detach())
    plain = AutoModelForCausalLM.from_pretrained(small_tiny, dtype=torch.float32).eval()
    assert not torch.equal(plain(ids).logits, want.detach())  # the adapter changes something


def test_a_models_own_code_never_runs_unasked(artent, small_tiny, texts_file, tmp_path):
    model = tmp_path / "custom"
    shutil.copytree(small_tiny, model)
    marker = tmp_path / "RAN"
    (model / "custom_model.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    config = json.loads((model / "config.json").read_text())
    config.update(
        model_type="artent-custom",
        auto_map={"AutoConfig": "custom_model.Config", "AutoModelForCausalLM": "custom_model.M"},
    )
    (model / "config.json").write_text(json.dumps(config))
    before = snapshot(model)
    one_line_error(
        artent("external", "--model", model, "--texts", texts_file, "--out", tmp_path / "o"),
        str(model),
    )
    assert not marker.exists() and snapshot(model) == before
