"""The API on models in memory, and hub ids: no files for a live model, one line offline.

Independent answers: the same adapter saved and reloaded from its folder, the same two models
saved as checkpoints, the same model loaded from its folder by the external analysis.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import artent
import tiny_families
from artent.cli import main as cli_main


def tiny_llama(seed: int = 0):
    return tiny_families.tiny_llama(seed, eval=True, max_position_embeddings=64)


def same_tables(a: pd.DataFrame, b: pd.DataFrame, atol: float = 1e-10) -> None:
    """Equal keys and text, numbers within ``atol`` (the names of the inputs aside: label,
    source and model)."""
    drop = [c for c in ("label", "source", "model") if c in a]
    a, b = a.drop(columns=drop).reset_index(drop=True), b.drop(columns=drop).reset_index(drop=True)
    assert list(a.columns) == list(b.columns) and len(a) == len(b) > 0
    for col in a.columns:
        if pd.api.types.is_float_dtype(a[col]):
            np.testing.assert_allclose(a[col], b[col], rtol=0, atol=atol, err_msg=col)
        else:
            assert a[col].astype(str).tolist() == b[col].astype(str).tolist(), col


@pytest.fixture(scope="module")
def lora(tmp_path_factory):
    """A peft LoRA model in memory (random B, so the update is not zero) and its saved folder."""
    import peft

    from artent.models.peft_warnings import peft_quietly

    with peft_quietly():
        model = peft.get_peft_model(
            tiny_llama(),
            peft.LoraConfig(
                r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
            ),
        )
    folder = tmp_path_factory.mktemp("lora") / "adapter"
    model.save_pretrained(folder)
    return model, folder


def test_peft_model_in_memory_equals_the_saved_and_reloaded_adapter(lora):
    import peft

    from artent.models.peft_warnings import peft_quietly

    model, folder = lora
    live = artent.internal(model=model, label="live")
    saved = artent.internal(adapter=folder)
    with peft_quietly():
        reloaded = peft.PeftModel.from_pretrained(tiny_llama(), folder)
    again = artent.internal(model=reloaded, label="reloaded")
    for res in (saved, again):
        same_tables(live.profiles, res.profiles, atol=1e-10)
    same_tables(live.summary, again.summary, atol=1e-10)
    # the saved adapter was read without its base: the companions that need W are NaN there
    need_base = ["relative_norm", "intruders"]
    assert saved.summary[need_base].isna().all().all()
    assert live.summary[need_base].notna().all().all()
    same_tables(live.summary.drop(columns=need_base), saved.summary.drop(columns=need_base))
    assert (live.summary.label == "live").all() and live.summary.source.isna().all()
    assert (live.summary.kind == "lora").all() and (live.summary.nominal_rank == 4).all()
    assert len(live.summary) == 4  # 2 layers x q, v
    assert not list(folder.parent.glob("*.tmp"))  # nothing written for the live model


def test_two_models_in_memory_equal_the_same_models_saved(tmp_path):
    base, tuned = tiny_llama(0), tiny_llama(0)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))
    base.save_pretrained(tmp_path / "base")
    tuned.save_pretrained(tmp_path / "tuned")
    live = artent.internal(base=base, tuned=tuned, modules="all", layers="1")
    files = artent.internal(base=tmp_path / "base", tuned=tmp_path / "tuned", modules="all",
                            layers="1")  # fmt: skip
    same_tables(live.profiles, files.profiles, atol=1e-10)
    same_tables(live.summary, files.summary, atol=1e-10)
    assert len(live.summary) == 7 and (live.summary.kind == "dense").all()


def test_bad_models_in_memory_are_one_line(lora, tmp_path):
    model, folder = lora
    with pytest.raises(ValueError, match="carries no peft adapter layers"):
        artent.internal(model=tiny_llama())
    with pytest.raises(ValueError, match="both models in memory or both paths"):
        artent.internal(base=tiny_llama(), tuned=folder)
    with pytest.raises(ValueError, match="model=: give a model in memory"):
        artent.internal(model=str(folder))
    with pytest.raises(ValueError, match="a model in memory needs its tokenizer"):
        artent.external(["a b c"], model=tiny_llama())
    with pytest.raises(ValueError, match="'k_proj' is frozen and carries no adapter"):
        artent.internal(model=model, modules="k_proj")


def test_external_on_a_loaded_model_equals_the_folder(family_folder, paragraphs_corpus):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = family_folder("llama")
    opts = dict(seq_len=16, n_texts=2, encodings="amplitude", orders="sequential", device="cpu")
    by_path = artent.external(paragraphs_corpus, model=str(folder), **opts)
    model = AutoModelForCausalLM.from_pretrained(folder)
    loaded = artent.external(
        paragraphs_corpus, model=model, tokenizer=AutoTokenizer.from_pretrained(folder), **opts
    )
    for name in ("external", "external_summary"):
        a, b = getattr(by_path, name), getattr(loaded, name)
        assert set(a.label) == set(b.label) == {folder.name}  # the name it was loaded from
        same_tables(a, b, atol=1e-10)
    assert model.training is False


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No hub: HF_HUB_OFFLINE=1 and an empty cache, so a hub id is never looked up."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))


def test_a_hub_id_offline_says_the_hub_is_unreachable(offline, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"adapter=someone/some-lora: .*hub is unreachable"):
        artent.internal(adapter="someone/some-lora")
    with pytest.raises(ValueError, match=r"model=someone/some-model: .*hub is unreachable"):
        artent.external(["a b c d"], model="someone/some-model", device="cpu")
    code = cli_main(["internal", "--adapter", "someone/some-lora", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "someone/some-lora" in err
    assert "HF_HUB_OFFLINE" in err and not (tmp_path / "o").exists()
    # a path that is not there and not hub-shaped stays a missing path
    with pytest.raises(ValueError, match="no such file or folder"):
        artent.internal(adapter=str(tmp_path / "missing" / "x"))
