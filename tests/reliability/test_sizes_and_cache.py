"""A model config is checked against the machine's memory before it loads; the model cache is
never an output folder."""

from __future__ import annotations

import json
import shutil
import time

import pytest
from reliability_helpers import one_line_error, snapshot, train_args


@pytest.mark.parametrize(
    "change",
    [
        {"hidden_size": 4_000_000, "head_dim": 1_000_000, "intermediate_size": 4_000_000},
        {"vocab_size": 10**12},
        {"num_hidden_layers": 100_000, "intermediate_size": 1_000_000},
    ],
)
def test_absurd_model_sizes_are_refused_with_the_estimate(
    artent, small_tiny, small_chats, texts_file, tmp_path, change
):
    model = tmp_path / "model"
    shutil.copytree(small_tiny, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, **change}))
    before = snapshot(model)
    for args in (
        train_args(model, small_chats, tmp_path / "run"),
        ["external", "--model", model, "--texts", texts_file, "--out", tmp_path / "e"],
    ):
        start = time.monotonic()
        line = one_line_error(artent(*args), str(model), "parameters", "more than this machine")
        assert time.monotonic() - start < 20
        assert "GB" in line or "TB" in line or "PB" in line
    assert snapshot(model) == before
    assert not (tmp_path / "run").exists() and not (tmp_path / "e").exists()


def test_the_size_check_counts_what_transformers_builds(small_tiny):
    from transformers import AutoConfig, AutoModelForCausalLM

    from artent.models.size_check import config_parameters

    config = AutoConfig.from_pretrained(small_tiny)
    built = AutoModelForCausalLM.from_pretrained(small_tiny)
    assert config_parameters(config, AutoModelForCausalLM) == sum(
        p.numel() for p in built.parameters()
    )


def test_the_cache_is_never_an_output_folder(
    artent, artent_cache, small_tiny, small_chats, lora_adapter, tmp_path
):
    cached = artent_cache / "some-model"
    cached.mkdir(exist_ok=True)
    (cached / "config.json").write_text("{}")
    before = snapshot(artent_cache)
    for out in (artent_cache, cached, artent_cache / "new"):
        one_line_error(
            artent("internal", "--adapter", lora_adapter, "--out", out), "model cache", str(out)
        )
        one_line_error(artent(*train_args(small_tiny, small_chats, out)), "model cache")
    one_line_error(artent("profile", lora_adapter, "--out", cached / "p.parquet"), "model cache")
    # nor a folder that holds the cache (a --force rerun clears its folder)
    one_line_error(
        artent("internal", "--adapter", lora_adapter, "--out", artent_cache.parent), "holds"
    )
    assert snapshot(artent_cache) == before and not (artent_cache / "new").exists()
