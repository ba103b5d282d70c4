"""Windows as the model reads text (``window_start``): every family's windows begin as its
tokenizer begins a text, ``none`` is the stream cut as it is, and a model whose attention sinks
on BOS keeps its sink only under windows that begin with BOS."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from artent.analysis.attention_sink import attention_sink, sink_table
from artent.analysis.external import ExternalConfig, run_external
from artent.data.corpus import corpus_windows
from tiny_families import FAMILIES, FAMILY_FRAMES, FAMILY_WORDS, make_family_tokenizer

T = 16


def _texts(n: int = 12, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(FAMILY_WORDS, size=int(rng.integers(5, 25)))) for _ in range(n)]


def _stream(tok, texts: list[str], *, start: bool) -> list[int]:
    """By hand: [BOS or CLS] doc_1 [sep] doc_2 ...; the separator is sep, else eos, else bos."""
    first = tok.bos_token_id if tok.bos_token_id is not None else tok.cls_token_id
    sep = next(i for i in (tok.sep_token_id, tok.eos_token_id, tok.bos_token_id) if i is not None)
    stream = [first] if start and first is not None else []
    for i, doc in enumerate(texts):
        stream += ([sep] if i else []) + tok(doc, add_special_tokens=False)["input_ids"]
    return stream


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family_tokenizer(request, tmp_path_factory):
    """Each family's tokenizer as a user has it: saved to a folder and reloaded."""
    folder = tmp_path_factory.mktemp(f"tok-{request.param}")
    make_family_tokenizer(request.param).save_pretrained(folder)
    return request.param, AutoTokenizer.from_pretrained(folder)


def test_every_window_begins_as_its_tokenizer_begins_a_text(family_tokenizer):
    family, tok = family_tokenizer
    # what the family's tokenizer puts around a text, written out independently of artent
    prefix, suffix = {
        "bos": ([tok.bos_token_id], []),
        "none": ([], []),
        "cls-sep": ([tok.cls_token_id], [tok.sep_token_id]),
    }[FAMILY_FRAMES[family]]
    text = " ".join(FAMILY_WORDS[3:9])
    framed = tok(text)["input_ids"]
    assert framed[: len(prefix)] == prefix and framed[len(framed) - len(suffix) :] == suffix
    got = corpus_windows(tok, _texts(), T, 4)
    assert got.ids.shape == (4, T) and got.window_start == "model"
    for window in got.ids.tolist():
        assert window[: len(prefix)] == prefix
        assert window[T - len(suffix) :] == suffix
    # inside the frames: the documents joined by the separator, no start token, in order
    inner = got.ids[:, len(prefix) : T - len(suffix)].reshape(-1).tolist()
    assert inner == _stream(tok, _texts(), start=False)[: len(inner)]


def test_bos_starts_every_window_and_none_is_the_stream_as_it_is(family_tokenizer):
    family, tok = family_tokenizer
    texts = _texts()
    none = corpus_windows(tok, texts, T, 3, start="none")
    stream = _stream(tok, texts, start=True)
    assert none.ids.tolist() == torch.tensor(stream[: 3 * T]).reshape(3, T).tolist()
    if tok.bos_token_id is None:
        with pytest.raises(ValueError, match="window_start bos: the tokenizer has no BOS token"):
            corpus_windows(tok, texts, T, 3, start="bos")
    else:
        bos = corpus_windows(tok, texts, T, 3, start="bos")
        assert (bos.ids[:, 0] == tok.bos_token_id).all() and bos.ids.shape == (3, T)


def sink_llama(sink: float = 7.0):
    """A 2-layer LLaMA whose every head attends to the BOS token (id 1) with score ``sink`` and
    spreads the rest evenly: the key of BOS alone carries the feature every query reads.

    The feature sits in the last rotary pair of each head (lowest frequency; rope_theta 1e12
    makes its rotation over 64 positions below 1e-7 rad), attention outputs and MLPs are zero
    so the residual stream stays the embeddings in every layer.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        intermediate_size=64,
        vocab_size=512,
        max_position_embeddings=256,
        rope_theta=1e12,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    head_dim = 8
    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        emb.normal_(0, 0.05)
        emb[:, 0] = 1.0  # every token: the query feature
        emb[:, 1] = 0.0
        emb[1, 1] = 1.0  # BOS alone: the key feature
        for layer in model.model.layers:
            attn = layer.self_attn
            attn.q_proj.weight.zero_()
            attn.k_proj.weight.zero_()
            for h in range(4):
                d = h * head_dim + head_dim - 1  # the last (slowest) rotary pair's second half
                attn.q_proj.weight[d, 0] = 1.0
                attn.k_proj.weight[d, 1] = 1.0
            attn.o_proj.weight.zero_()
            for proj in (layer.mlp.gate_proj, layer.mlp.up_proj, layer.mlp.down_proj):
                proj.weight.zero_()
        # RMSNorm scales the unit features by about sqrt(32 / 2) = 4: set the score via k alone
        rms = math.sqrt(32 / 2)
        for layer in model.model.layers:
            layer.self_attn.k_proj.weight.mul_(sink * math.sqrt(head_dim) / rms**2)
    return model


def test_a_bos_sink_survives_model_windows_and_is_lost_without_them():
    tok = make_family_tokenizer("llama")  # adds BOS, as LLaMA's tokenizer does
    model = sink_llama()
    texts, n = _texts(40, seed=1), 6
    uniform = float(np.mean(1.0 / np.arange(2, 65)))
    shares = {
        start: attention_sink(model, tok, texts, seq_len=64, n_texts=n, window_start=start)
        for start in ("model", "bos", "none")
    }
    for start in ("model", "bos"):  # every window begins with BOS: every head sinks
        assert shares[start].sink_share.min() > 0.7, shares[start]
        assert (shares[start].window_start == start).all()
    # none: only the first window begins with BOS, the others mid-stream
    none = shares["none"].sink_share
    assert none.max() < (1 + (n - 1) * 2 * uniform) / n, none
    # the external summary reads the same sink (its own per-head mean), and the window start
    cfg = ExternalConfig(seq_len=64, n_texts=n, baseline_samples=1, orders=("sequential",))
    for start, floor in (("model", 0.7), ("none", None)):
        tables = run_external(
            model, tok, texts, ExternalConfig(**{**cfg.__dict__, "window_start": start})
        )
        s = tables["external_summary"]
        s = s[(s.encoding == "amplitude")].drop_duplicates(["layer", "head"])
        expected = shares[start].set_index(["layer", "head"]).sink_share
        np.testing.assert_allclose(
            s.set_index(["layer", "head"]).sink_share.loc[expected.index], expected, atol=1e-9
        )
        assert all((f.window_start == start).all() for f in tables.values())
        # the sink table read off the summary is the one a separate pass gives
        table = sink_table(tables["external_summary"])
        ref = shares[start]
        assert list(table.columns) == list(ref.columns)
        np.testing.assert_allclose(table.sink_share, ref.sink_share, atol=1e-9)
        np.testing.assert_allclose(table.uniform_share, ref.uniform_share, atol=0)
        assert table[["T", "layer", "head", "window_start"]].equals(
            ref[["T", "layer", "head", "window_start"]]
        )
        if floor:
            assert s.sink_share.min() > floor
