"""The tiny LLaMA: architecture, tokenizer, a short pretraining, saving, caching and reloading."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from artent.data import template
from artent.data.generators import pretraining_corpus
from artent.models import tiny
from artent.models.tiny import (
    PRETRAIN_RECORD,
    TOKENIZER_SPECIAL_TOKENS,
    TinyPretrainConfig,
    ensure_tiny_model,
    load_tiny,
    pretrain_tiny,
    tiny_llama_config,
    tiny_model_path,
    train_tokenizer,
)

# A pretraining small enough for the fast suite: one layer, 40 steps, a small corpus.
SMALL = dict(
    steps=40,
    seq_len=64,
    batch_size=8,
    lr=3e-3,
    warmup_steps=4,
    n_documents=1500,
    heldout_fraction=0.1,
    vocab_size=512,
    num_hidden_layers=1,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # These shapes are too small to gain from threads, and on a busy machine two OpenMP threads
    # per process can slow a run tenfold; one thread keeps the suite fast and its timing stable.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _projection_shapes(model) -> dict[str, tuple[int, int]]:
    attn = model.model.layers[0].self_attn
    return {
        n: tuple(getattr(attn, n).weight.shape) for n in ("q_proj", "k_proj", "v_proj", "o_proj")
    }


def test_default_config_has_power_of_two_gqa_shapes():
    from transformers import LlamaForCausalLM

    config = tiny_llama_config(1024)
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (4, 2, 32)
    assert config.tie_word_embeddings is False and config.num_hidden_layers == 4
    model = LlamaForCausalLM(config)
    shapes = _projection_shapes(model)
    assert shapes == {
        "q_proj": (128, 128),
        "k_proj": (64, 128),
        "v_proj": (64, 128),
        "o_proj": (128, 128),
    }
    assert math.log2(shapes["q_proj"][0] * shapes["q_proj"][1]) == 14


def test_config_and_options_are_validated():
    with pytest.raises(ValueError, match="not divisible"):
        tiny_llama_config(100, hidden_size=130)
    with pytest.raises(ValueError, match="num_key_value_heads"):
        tiny_llama_config(100, num_key_value_heads=3)
    with pytest.raises(ValueError, match="unknown tiny pretrain option"):
        tiny_model_path(stepz=3)
    with pytest.raises(ValueError, match="schedule"):
        TinyPretrainConfig(schedule="linear")
    with pytest.raises(ValueError, match="seq_len"):
        TinyPretrainConfig(seq_len=4096)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(pretraining_corpus(800, seed=9), vocab_size=600)


def test_tokenizer_round_trips_and_keeps_special_tokens_atomic(tokenizer):
    assert len(tokenizer) == 600 and tokenizer.chat_template is None
    assert tokenizer.model_max_length == 512
    # Special tokens come first, in template order, each a single id.
    for i, tok in enumerate(TOKENIZER_SPECIAL_TOKENS):
        assert tokenizer.convert_tokens_to_ids(tok) == i
        assert tokenizer(f"a{tok}b")["input_ids"][1] == i
    assert (tokenizer.pad_token, tokenizer.bos_token, tokenizer.eos_token, tokenizer.unk_token) == (
        template.PAD,
        template.BOS,
        template.EOS,
        tiny.UNK,
    )
    chat = template.render_messages(
        [{"role": "user", "content": "What is 17 + 25?"}, {"role": "assistant", "content": "42"}]
    )
    texts = [chat, "Tabs\tand  spaces\n\nünïcødé ✓ 😀", "x<|end|><|user|>y", "", "  lead"]
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.decode(ids) == text
    # No BOS is added on encoding: a rendered chat carries its own, exactly once.
    ids = tokenizer(chat)["input_ids"]
    assert ids.count(tokenizer.bos_token_id) == 1 and ids[0] == tokenizer.bos_token_id
    assert tokenizer("hello")["input_ids"][0] != tokenizer.bos_token_id
    # Digits are one token each; special tokens never appear inside merges.
    assert len(tokenizer("12345")["input_ids"]) == 5
    assert not [t for t in tokenizer.get_vocab() if "<|" in t and t not in TOKENIZER_SPECIAL_TOKENS]
    # Decoding with skip_special_tokens drops the template's tokens.
    assert tokenizer.decode(ids, skip_special_tokens=True) == "\nWhat is 17 + 25?\n\n42\n"


def test_tokenizer_training_is_deterministic(tokenizer):
    again = train_tokenizer(pretraining_corpus(800, seed=9), vocab_size=600)
    assert again.get_vocab() == tokenizer.get_vocab()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain") / "tiny"
    return pretrain_tiny(out, progress=False, **SMALL)


def _heldout_blocks(tokenizer, cfg: dict) -> torch.Tensor:
    """Re-derive the held-out blocks from the corpus, independently of the training code."""
    docs = pretraining_corpus(cfg["n_documents"], seed=cfg["seed"])
    heldout = docs[-round(cfg["heldout_fraction"] * len(docs)) :]
    stream = []
    for doc in heldout:
        ids = tokenizer(doc)["input_ids"]
        if ids[0] != tokenizer.bos_token_id:
            ids = [tokenizer.bos_token_id, *ids]
        stream += [*ids, tokenizer.eos_token_id]
    n = len(stream) // cfg["seq_len"]
    return torch.tensor(stream[: n * cfg["seq_len"]]).view(n, cfg["seq_len"])


def _mean_loss(model, blocks: torch.Tensor) -> float:
    with torch.no_grad():
        logits = model(input_ids=blocks).logits[:, :-1]
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), blocks[:, 1:].reshape(-1)
    ).item()


def test_small_pretrain_saves_a_complete_folder(small_run):
    names = {p.name for p in small_run.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", PRETRAIN_RECORD} <= names
    assert [p.name for p in small_run.parent.iterdir()] == [small_run.name]  # no temp folders
    record = json.loads((small_run / PRETRAIN_RECORD).read_text())
    assert record["config"] == {**TinyPretrainConfig().__dict__, **SMALL}
    assert record["seed"] == 0 and record["versions"]["torch"] == torch.__version__
    assert record["corpus"]["documents"] == SMALL["n_documents"]
    assert record["train_loss_ema_curve"][-1][0] == SMALL["steps"]
    with pytest.raises(FileExistsError):
        pretrain_tiny(small_run, progress=False, **SMALL)


def test_small_pretrain_learns_and_reloads_with_its_logits(small_run):
    model, tokenizer = load_tiny(small_run)
    record = json.loads((small_run / PRETRAIN_RECORD).read_text())
    losses = record["losses"]
    blocks = _heldout_blocks(tokenizer, record["config"])
    # The reloaded model reproduces the held-out loss measured in memory before saving.
    assert _mean_loss(model, blocks) == pytest.approx(losses["final_heldout"], rel=1e-5)
    # Against a fresh initialisation of the same architecture, training helped by a margin.
    torch.manual_seed(0)
    fresh = type(model)(model.config).eval()
    before = _mean_loss(fresh, blocks)
    assert before == pytest.approx(losses["initial_heldout"], rel=1e-4)
    assert before == pytest.approx(math.log(len(tokenizer)), abs=0.3)
    assert _mean_loss(model, blocks) < before - 1.5
    assert _projection_shapes(model) == {
        "q_proj": (128, 128),
        "k_proj": (64, 128),
        "v_proj": (64, 128),
        "o_proj": (128, 128),
    }
    assert model.generation_config.eos_token_id == [
        tokenizer.eos_token_id,
        tokenizer.convert_tokens_to_ids(template.END),
    ]


def test_pretrain_is_deterministic_per_seed(small_run, tmp_path):
    weights = load_file(small_run / "model.safetensors")
    again = load_file(pretrain_tiny(tmp_path / "a", progress=False, **SMALL) / "model.safetensors")
    assert weights.keys() == again.keys()
    assert all(torch.equal(weights[k], again[k]) for k in weights)
    other = {**SMALL, "seed": 1, "steps": 2, "warmup_steps": 1}
    moved = load_file(pretrain_tiny(tmp_path / "b", progress=False, **other) / "model.safetensors")
    assert not torch.equal(
        weights["model.layers.0.self_attn.q_proj.weight"],
        moved["model.layers.0.self_attn.q_proj.weight"],
    )


def test_cache_reuses_a_pretrained_model(tmp_path, monkeypatch):
    calls = []
    real = tiny.pretrain_tiny

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(tiny, "pretrain_tiny", counting)
    options = {**SMALL, "steps": 3, "warmup_steps": 1}
    first = ensure_tiny_model(tmp_path, progress=False, **options)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    second = ensure_tiny_model(tmp_path, progress=False, **options)
    assert first == second == tiny_model_path(tmp_path, **options) and len(calls) == 1
    assert (second / "model.safetensors").stat().st_mtime_ns == stamp
    assert first.parent == tmp_path and first.name.startswith("tiny-llama-v1-")
    # Any changed option gets its own cache entry; $ARTENT_CACHE moves the default root.
    assert tiny_model_path(tmp_path, **{**options, "lr": 1e-3}) != first
    monkeypatch.setenv("ARTENT_CACHE", str(tmp_path / "env"))
    assert tiny_model_path(**options) == tmp_path / "env" / first.name


def test_interrupted_pretrain_leaves_nothing(tmp_path, monkeypatch):
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pretrain_tiny(tmp_path / "tiny", progress=False, **{**SMALL, "steps": 2, "warmup_steps": 1})
    assert list(tmp_path.iterdir()) == []


def test_load_tiny_rejects_an_empty_folder(tmp_path):
    with pytest.raises(ValueError, match="config.json"):
        load_tiny(tmp_path)


@pytest.mark.slow
def test_default_pretrain_learns_beyond_unigram(tmp_path):
    path = pretrain_tiny(tmp_path / "tiny", progress=False)
    record = json.loads((path / PRETRAIN_RECORD).read_text())
    losses = record["losses"]
    assert losses["final_heldout"] < losses["unigram_heldout"] - 1.0
    assert losses["final_heldout"] < losses["ln_vocab"] / 3
    assert losses["final_train"] < losses["initial_heldout"] - 4.0
    model, _ = load_tiny(path)
    assert model.config.num_hidden_layers == 4
    assert _projection_shapes(model)["v_proj"] == (64, 128)
