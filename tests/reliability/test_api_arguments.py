"""Wrong input is refused, not computed: API arguments (TypeError/ValueError naming the argument,
before any work), files of the wrong shape (one line, exit 2), values that only look legal."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from reliability_helpers import one_line_error, snapshot

import artent as api
from artent.data.corpus import Corpus
from artent.entanglement import LowRank, entanglement_profile


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if any model is loaded or any profile is computed."""
    import importlib

    import artent.analysis.internal as internal
    import artent.models.loading as loading

    # the modules that import these names: imported now, so that none binds the stand-in
    bound_at_import = ("artent.analysis.nohair", "artent.training.loop", "artent.pipelines.sweep")
    for name in (*bound_at_import, "artent.pipelines.study"):
        importlib.import_module(name)

    def boom(*a, **k):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(loading, "load_base", boom)
    monkeypatch.setattr(internal, "run_internal", boom)


@pytest.mark.parametrize(
    "call, error, needle",
    [
        (lambda: api.internal(adapter=123), TypeError, "adapter must be a path"),
        (lambda: api.internal(adapter=["a", 7]), TypeError, "adapter[1] must be a path"),
        (lambda: api.internal(base=3.5, tuned="x"), TypeError, "base must be a path"),
        (lambda: api.internal(adapter="x", modules=None), TypeError, "modules must be"),
        (lambda: api.internal(adapter="x", allow_pickle="yes"), TypeError, "allow_pickle"),
        (lambda: api.external(None, model="tiny"), TypeError, "texts must be a path"),
        (lambda: api.external([b"doc"], model="tiny"), TypeError, "texts[0] must be a str"),
        (lambda: api.external(["a", None], model="tiny"), TypeError, "texts[1] must be a str"),
        (lambda: api.external(["doc"], model=1), TypeError, "model must be a path"),
        (lambda: api.external(["doc"], model="tiny", orders=3), TypeError, "orders must be"),
        (lambda: api.nohair("runs/x", ["doc"]), TypeError, "models must be a list of folders"),
        (lambda: api.nohair(None, ["doc"]), TypeError, "models must be a list"),
    ],
)
def test_api_arguments_of_the_wrong_type_are_named_before_any_work(no_work, call, error, needle):
    with pytest.raises(error) as info:
        call()
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_valleys_by_a_column_that_is_not_there(tiny_runs):
    from pathlib import Path

    adapter = Path(tiny_runs["lora"]) / "checkpoints" / "step-000020"
    result = api.internal(adapter=adapter)
    with pytest.raises(ValueError, match=r"^by: no column 'm'"):
        result.valleys(by="m")
    by_module = result.valleys(by="module")  # one name, not its letters
    assert list(by_module.module) == sorted(
        set(result.summary.module), key=list(result.summary.module).index
    )


@pytest.mark.parametrize(
    "x, kwargs, error, needle",
    [
        ([[1.0, 2.0], [3.0]], {}, ValueError, "x: a nested list"),
        ([["a", "b"], ["c", "d"]], {}, ValueError, "x: a nested list"),
        (None, {}, TypeError, "x must be a matrix"),
        ("abcd", {}, TypeError, "x must be a matrix"),
        ([[1.0, 2.0], [3.0, 4.0]], {"device": "cuda:7"}, ValueError, "device cuda:7"),
        (LowRank(np.ones((4, 1)), np.ones((1, 4)), scale=0), {}, ValueError, "scale is 0"),
    ],
)
def test_profile_input_that_is_no_array_is_refused(x, kwargs, error, needle):
    with pytest.raises(error, match=None) as info:
        entanglement_profile(x, **kwargs)
    assert needle in str(info.value)


def test_a_nested_list_is_the_matrix_it_spells():
    m = [[1.0, 2.0, 0.5, 1.0], [3.0, 4.0, 1.0, 2.0]]
    np.testing.assert_array_equal(entanglement_profile(m), entanglement_profile(np.array(m)))


@pytest.mark.parametrize("docs", [[b"bytes"], [None], ["fine", 3]])
def test_documents_that_are_not_text_are_refused(docs):
    with pytest.raises(TypeError, match=r"texts\[\d\] must be a str"):
        Corpus.from_texts(docs)


def test_the_callback_refuses_modules_none():
    from artent.integrations.transformers import EntanglementCallback

    with pytest.raises(TypeError, match="modules must be a name or a list of names"):
        EntanglementCallback(modules=None)


@pytest.mark.parametrize("r", [0, -2, 2.5])
def test_an_adapter_of_rank_zero_is_one_line(
    artent, small_tiny, lora_adapter, texts_file, tmp_path, r
):
    adapter = tmp_path / "adapter"
    shutil.copytree(lora_adapter, adapter)
    config_file = adapter / "adapter_config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "r": r}))
    for args in (
        ["internal", "--adapter", adapter, "--out", tmp_path / "i"],
        ["external", "--model", small_tiny, "--adapter", adapter, "--texts", texts_file]
        + ["--out", tmp_path / "e"],
    ):
        one_line_error(artent(*args), str(config_file), "'r' must be a positive integer")
    assert not (tmp_path / "i").exists() and not (tmp_path / "e").exists()


@pytest.mark.parametrize("record", ["[1, 2]", "{}", '{"config": {"method": "lora"}}', "{not json"])
def test_a_run_record_of_the_wrong_shape_is_one_line(artent, tmp_path, record):
    run = tmp_path / "run"
    (run / "checkpoints" / "step-000000").mkdir(parents=True)
    (run / "run.json").write_text(record)
    before = snapshot(run)
    result = artent("internal", "--run", run, "--out", tmp_path / "i")
    one_line_error(result, str(run / "run.json"))
    assert snapshot(run) == before and not (tmp_path / "i").exists()


def test_a_study_record_that_is_a_list_is_one_line(artent, tmp_path):
    study = tmp_path / "study"
    study.mkdir()
    (study / "study.json").write_text("[1, 2]")
    before = snapshot(study)
    one_line_error(artent("demo", "--quick", "--out", study), str(study / "study.json"))
    one_line_error(artent("report", study), str(study / "study.json"))
    assert snapshot(study) == before


def test_a_config_file_with_a_key_that_is_not_a_name(artent, small_chats, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("1: 2\nsteps: 3\n")
    for args in (
        ["train", "--config", config, "--data", small_chats, "--out", tmp_path / "t"],
        ["demo", "--config", config, "--out", tmp_path / "d"],
    ):
        one_line_error(artent(*args), str(config), "key 1 is not a name")
    spec = tmp_path / "spec.yaml"
    spec.write_text("base: {1: 2}\ngrid: {}\n")
    one_line_error(artent("sweep", spec, "--out", tmp_path / "s"), str(spec), "1")
    assert not any((tmp_path / n).exists() for n in "tds")
