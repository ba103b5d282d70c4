"""The Python API (artent.internal / external / nohair): the tables the commands write."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import artent
from artent.cli import main as cli_main


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    from artent.data.generators import pretraining_corpus

    path = tmp_path_factory.mktemp("texts") / "texts.txt"
    docs = [" ".join(d.split()) for d in pretraining_corpus(40, seed=5)]
    path.write_text("\n".join(" ".join(docs[i : i + 10]) for i in range(0, 40, 10)))
    return path


def same_as_written(result, folder) -> None:
    """Every table of an API result equals the parquet file the command wrote."""
    tables = result.tables()
    assert sorted(f.name for f in folder.glob("*.parquet")) == sorted(
        f"{n}.parquet" for n in tables
    )
    for name, frame in tables.items():
        assert len(frame), name
        pd.testing.assert_frame_equal(frame, pd.read_parquet(folder / f"{name}.parquet"))


def test_internal_equals_the_command(tiny_runs, tmp_path, monkeypatch):
    runs = [str(tiny_runs["lora"]), str(tiny_runs["fft"])]
    args = ["internal", "--out", str(tmp_path / "cli"), "--layers", "0-1", "--k", "1"]
    assert cli_main([*args, "--run", runs[0], "--run", runs[1]]) == 0
    monkeypatch.chdir(tmp_path)
    res = artent.internal(run=runs, layers="0-1", k=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli"]  # nothing written without out=
    same_as_written(res, tmp_path / "cli")
    assert isinstance(res, artent.api.Internal)
    profiles, summary = res  # unpacks like a tuple

    # with out=, the same files as the command
    artent.internal(run=runs, layers=[0, 1], k=1, out=tmp_path / "api")
    assert sorted(p.name for p in (tmp_path / "api").iterdir()) == sorted(
        p.name for p in (tmp_path / "cli").iterdir()
    )

    # the valley table: per (label, step, module) means of the summary, done by hand here
    valleys = res.valleys()
    ok = summary[summary.status == "ok"]
    expected = ok.groupby(["label", "step", "module"], sort=False).center_entropy.mean()
    got = valleys.set_index(["label", "step", "module"]).center_entropy.dropna()
    pd.testing.assert_series_equal(got, expected, check_names=False)
    lora = valleys[(valleys.label == "lora") & (valleys.step > 0)]
    assert (lora.within_bound == 1.0).all() and (lora.updates == 2).all()
    step0 = valleys[(valleys.label == "lora") & (valleys.step == 0)]
    assert (step0.zero == 2).all() and step0.center_entropy.isna().all()

    from matplotlib.figure import Figure

    assert isinstance(res.plot(), Figure)


def test_internal_bad_input_is_one_line(tmp_path):
    with pytest.raises(ValueError, match="nothing to analyse"):
        artent.internal()
    with pytest.raises(ValueError, match="tuned= needs base="):
        artent.internal(tuned=tmp_path)
    with pytest.raises(ValueError, match="layers= must look like 0,1,5-7, got 'a-b'"):
        artent.internal(adapter=tmp_path, layers="a-b")
    with pytest.raises(ValueError, match="modules= is empty"):
        artent.internal(adapter=tmp_path, modules=" , ")


def test_external_equals_the_command(tiny_runs, texts, tmp_path):
    opts = dict(seq_len=16, n_texts=2, encodings="amplitude", orders="sequential")
    args = ["--seq-len", "16", "--n-texts", "2", "--encodings", "amplitude"]
    args += ["--orders", "sequential", "--run", str(tiny_runs["lora"])]
    assert cli_main(["external", "--texts", str(texts), "--out", str(tmp_path / "cli"), *args]) == 0
    res = artent.external(texts, run=tiny_runs["lora"], **opts)
    same_as_written(res, tmp_path / "cli")
    assert sorted(res.external_summary.step.unique()) == [0, 10, 20]
    # texts may be given as a list of strings too
    lines = [ln for ln in texts.read_text().splitlines() if ln.strip()]
    again = artent.external(lines, run=tiny_runs["lora"], **opts)
    pd.testing.assert_frame_equal(again.external, res.external)


def test_nohair_equals_the_command(tiny_runs, texts, tmp_path):
    runs = [str(tiny_runs["lora"]), str(tiny_runs["fft"])]
    args = ["--seq-len", "16", "--n-texts", "2", "--out", str(tmp_path / "cli")]
    assert cli_main(["nohair", *runs, "--texts", str(texts), *args]) == 0
    res = artent.nohair(runs, texts, seq_len=16, n_texts=2)
    same_as_written(res, tmp_path / "cli")
    assert set(res.pairs.model) | set(res.pairs.reference) == {"base", "lora", "fft"}
    assert np.isfinite(res.pairs.external_contrast).all()
