"""Fixtures of the reliability tests: the CLI in-process, and small data, adapters and models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from reliability_helpers import Result

from artent.cli import main as cli_main


@pytest.fixture
def artent(capsys):
    """Run ``artent ARGS`` in-process; returns its exit code, stdout and stderr."""

    def run(*args) -> Result:
        capsys.readouterr()
        code = cli_main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def small_chats(tmp_path_factory):
    """A JSONL file of 48 short Tulu-format conversations (fast to tokenise)."""
    path = tmp_path_factory.mktemp("chats") / "chats.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"What is {i} plus {i + 1}?"},
                {"role": "assistant", "content": f"{i} plus {i + 1} is {2 * i + 1}."},
            ]
        }
        for i in range(48)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def texts_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("texts") / "texts.txt"
    line = "the quick brown fox jumps over the lazy dog and then runs far away into the woods"
    path.write_text("\n".join(f"{line} number {i}" for i in range(4)) + "\n")
    return path


@pytest.fixture(scope="session")
def lora_adapter(tiny_runs, tmp_path_factory):
    """A copy of the small tiny LoRA run's last adapter (tests may break copies, never runs)."""
    src = Path(tiny_runs["lora"]) / "checkpoints" / "step-000020"
    dst = tmp_path_factory.mktemp("adapter") / "lora"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("trainer_state.pt"))
    return dst


@pytest.fixture(scope="session")
def other_base(small_tiny, tmp_path_factory):
    """A model folder shaped unlike the small tiny (3 layers, hidden 32), with its tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("other") / "model"
    config = json.loads((Path(small_tiny) / "config.json").read_text())
    config.update(hidden_size=32, num_hidden_layers=3, intermediate_size=64, head_dim=8)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**config))
    model.save_pretrained(folder, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(small_tiny) / name, folder / name)
    return folder
