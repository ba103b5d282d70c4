"""Several models in one external analysis, the window start through the command, and the
random-attention prediction of the sequence-length reading against a dense reference."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from artent import api
from artent.analysis.external import ExternalConfig
from artent.analysis.external.baseline import scaling_baseline
from artent.analysis.external.readings import per_layer
from artent.cli import main as cli_main
from artent.entanglement.rmt import random_attention
from tiny_families import FAMILY_WORDS, make_family_model, make_family_tokenizer


def _save(family: str, folder):
    make_family_model(family).save_pretrained(folder)
    make_family_tokenizer(family).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {f: _save(f, root / f) for f in ("llama", "gpt2", "bert")}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("texts") / "texts.txt"
    path.write_text("\n\n".join(" ".join(rng.choice(FAMILY_WORDS, size=30)) for _ in range(12)))
    return path


def test_several_models_in_one_table_with_a_model_column(folders, corpus, tmp_path):
    out = tmp_path / "ext"
    res = api.external(
        corpus,
        model=[folders["llama"], folders["gpt2"]],
        seq_len=16,
        n_texts=3,
        encodings="amplitude",
        orders="sequential",
        device="cpu",
        out=out,
    )
    for name, frame in res.tables().items():
        assert set(frame.model) == {folders["llama"], folders["gpt2"]}, name
        assert (frame.window_start == "model").all(), name
    # each model's rows are its own: the same as measuring it alone
    alone = api.external(
        corpus,
        model=folders["gpt2"],
        seq_len=16,
        n_texts=3,
        encodings="amplitude",
        orders="sequential",
        device="cpu",
    )
    mine = res.external_summary[res.external_summary.model == folders["gpt2"]]
    np.testing.assert_allclose(mine.c.to_numpy(), alone.external_summary.c.to_numpy(), atol=1e-12)
    layers = per_layer(res.tables())
    assert len(layers) == 2 * 2  # two models of two layers
    assert (out / "models.png").stat().st_size > 1000
    config = json.loads((out / "run.json").read_text())["config"]
    assert config["window_start"] == "model"
    # each model's frame as its tokenizer gives it: LLaMA's BOS, nothing for GPT-2
    assert config["window_frames"] == {folders["llama"]: "<s> ...", folders["gpt2"]: "..."}


def run_cli(capsys, *args) -> tuple[int, str]:
    capsys.readouterr()
    code = cli_main([str(a) for a in args])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("family", "start", "needle"),
    [
        ("llama", "first", "--window-start: expected one of model, bos, none, got 'first'"),
        ("bert", "bos", "the tokenizer has no BOS token"),
    ],
)
def test_bad_window_start_is_one_line_and_writes_nothing(
    capsys, folders, corpus, tmp_path, family, start, needle
):
    out = tmp_path / "out"
    code, err = run_cli(
        capsys,
        "external",
        "--model",
        folders[family],
        "--texts",
        corpus,
        "--out",
        out,
        "--window-start",
        start,
        "--seq-len",
        "16",
    )
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert needle in lines[0] and "--window-start" in lines[0]
    assert not out.exists()


def test_window_start_none_on_the_command_reproduces_the_stream(capsys, folders, corpus, tmp_path):
    from artent.analysis.external import run_external
    from artent.data.corpus import Corpus, corpus_windows, read_corpus
    from artent.models.loading import load_for_forward

    out = tmp_path / "none"
    code, err = run_cli(
        capsys,
        "external",
        "--model",
        folders["llama"],
        "--texts",
        corpus,
        "--out",
        out,
        "--window-start",
        "none",
        "--seq-len",
        "16",
        "--n-texts",
        "3",
        "--orders",
        "sequential",
    )
    assert code == 0, err
    got = pd.read_parquet(out / "external_summary.parquet")
    assert (got.window_start == "none").all()
    # the same numbers from windows cut by hand from the stream (BOS once, EOS between documents)
    model, tok = load_for_forward(folders["llama"])
    docs = list(read_corpus(corpus).documents())
    assert isinstance(read_corpus(corpus), Corpus)
    stream = [tok.bos_token_id]
    for i, doc in enumerate(docs):
        stream += ([tok.eos_token_id] if i else []) + tok(doc, add_special_tokens=False)[
            "input_ids"
        ]
    windows = corpus_windows(tok, docs, 16, 3, start="none")
    assert windows.ids.reshape(-1).tolist() == stream[: 3 * 16]
    cfg = ExternalConfig(seq_len=16, n_texts=3, orders=("sequential",), window_start="none")
    ref = run_external(model, tok, windows, cfg, label=got.label.iloc[0])["external_summary"]
    np.testing.assert_allclose(got.c.to_numpy(), ref.c.to_numpy(), atol=1e-10)


def test_scaling_baseline_equals_a_dense_reference():
    summary = pd.DataFrame(dict(layer=[0, 0, 1], head=[0, 1, 0], beta_fit=[0.5, 1.5, 3.0]))
    cfg = ExternalConfig(
        seq_len=16,
        scaling_lengths=(4, 8, 16),
        scaling_baseline_samples=2,
        seed=5,
        encodings=("amplitude", "born"),
    )
    got = scaling_baseline(summary, cfg, {"step": 0, "label": "x"})
    assert len(got) == 3 * 3 * 2
    for t in (4, 8, 16):
        rng = np.random.default_rng([5, t])  # the documented draw order: heads, then samples
        for layer, head, beta in summary.itertuples(index=False):
            mats = [random_attention(t, beta, causal=True, rng=rng) for _ in range(2)]
            for encoding in ("amplitude", "born"):
                cuts = []
                for a in mats:
                    x = a if encoding == "amplitude" else np.sqrt(a)
                    s = np.linalg.svd(x, compute_uv=False) ** 2
                    p = s / s.sum()
                    p = p[p > 0]
                    cuts.append(-(p * np.log(p)).sum())
                row = got[(got["T"] == t) & (got.layer == layer) & (got["head"] == head)]
                row = row[row.encoding == encoding]
                np.testing.assert_allclose(row.cut_entropy.iloc[0], np.mean(cuts), atol=1e-10)
    none = ExternalConfig(seq_len=16, scaling_baseline_samples=0)
    assert scaling_baseline(summary, none, {"step": 0}).empty


def test_read_texts_names_a_missing_path_once(tmp_path):
    missing = tmp_path / "no" / "such.txt"
    with pytest.raises(ValueError) as e:
        api.read_texts(missing)
    assert str(e.value) == f"texts={missing}: no such file or folder"
