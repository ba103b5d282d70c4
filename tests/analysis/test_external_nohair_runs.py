"""artent external and artent nohair on real LoRA, MPS and FFT runs of the small tiny model."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from artent.analysis.nohair import js_divergence_rows
from artent.cli import main as cli_main


@pytest.fixture(scope="module")
def runs(tiny_runs):
    return tiny_runs


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    from artent.data.generators import pretraining_corpus

    path = tmp_path_factory.mktemp("texts") / "texts.txt"
    docs = [" ".join(d.split()) for d in pretraining_corpus(80, seed=5)]
    path.write_text("\n".join(" ".join(docs[i : i + 10]) for i in range(0, 80, 10)))
    return path


def test_external_along_training_for_every_method(runs, texts, tmp_path, capsys):
    out = tmp_path / "ext"
    code = cli_main(
        [
            "external",
            "--texts",
            str(texts),
            "--seq-len",
            "32",
            "--n-texts",
            "4",
            "--out",
            str(out),
            "--orders",
            "sequential",
            "--run",
            str(runs["lora"]),
            "--run",
            str(runs["mps"]),
            "--run",
            str(runs["fft"]),
        ]
    )
    assert code == 0, capsys.readouterr().err
    s = pd.read_parquet(out / "external_summary.parquet")
    assert set(s.label) == {"lora", "mps", "fft"} and sorted(s.step.unique()) == [0, 10, 20]
    assert set(s.encoding) == {"amplitude", "born"}
    # 2 layers x 4 heads per (label, step, encoding)
    assert s.groupby(["label", "step", "encoding"]).size().eq(8).all()
    assert np.isfinite(s.c).all() and s.law.isin(["area+log", "volume"]).all()
    ext = pd.read_parquet(out / "external.parquet")
    assert {"step", "layer", "head", "bond", "entropy"} <= set(ext.columns)
    assert (out / "external.png").stat().st_size > 1000


def test_nohair_pairs_on_the_same_texts(runs, texts, tmp_path, capsys):
    out = tmp_path / "nh"
    code = cli_main(
        [
            "nohair",
            str(runs["lora"]),
            str(runs["mps"]),
            str(runs["fft"]),
            "--texts",
            str(texts),
            "--seq-len",
            "32",
            "--n-texts",
            "4",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    pairs = pd.read_parquet(out / "nohair.parquet")
    got = {(r.model, r.reference) for r in pairs.itertuples()}
    assert {("lora", "fft"), ("mps", "fft"), ("lora", "base"), ("fft", "base")} <= got
    tuned = pairs[pairs.reference != "base"]
    assert (tuned.internal_contrast > 0).all() and (tuned.external_contrast >= 0).all()
    np.testing.assert_allclose(
        tuned.nohair_ratio, tuned.external_contrast / tuned.internal_contrast
    )
    vs_base = pairs[pairs.reference == "base"]
    assert vs_base.internal_contrast.isna().all()
    assert ((pairs.context_cos > 0) & (pairs.context_cos <= 1 + 1e-9)).all()
    record = json.loads((out / "run.json").read_text())
    assert record["command"] == "nohair"


def test_js_divergence_against_a_hand_computation():
    p = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    q = torch.tensor([[0.0, 1.0], [0.5, 0.5]])
    # row 1: disjoint supports -> ln 2; row 2: identical -> 0
    assert abs(js_divergence_rows(p, q) - np.log(2) / 2) < 1e-12


def test_corpus_shorter_than_one_window_exit_2(runs, tmp_path, capsys):
    short = tmp_path / "short.txt"
    short.write_text("a few words\nand a few more\n")
    code = cli_main(
        [
            "external",
            "--texts",
            str(short),
            "--seq-len",
            "64",
            "--n-texts",
            "2",
            "--out",
            str(tmp_path / "x"),
            "--run",
            str(runs["lora"]),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert re.search(
        r"short.txt: the corpus has \d+ tokens, fewer than one window of --seq-len 64", err
    )
    assert not (tmp_path / "x").exists()
