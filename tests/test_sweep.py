"""Sweeps: grid expansion and validation, local and Ray runs of a real 4-point grid."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from artent.pipelines.sweep import SweepSpec, expand, load_sweep_spec, run_sweep

GRID = {"rank": [2, 4], "lr": [3e-3, 6e-3]}


def _base(model) -> dict:
    return dict(
        method="lora",
        model=str(model),
        data="synthetic-tulu",
        steps=6,
        batch_size=4,
        seq_len=256,
        n_synthetic=200,
        save_steps=[0, 6],
        eval_every=0,
        warmup_steps=0,
    )


def test_expand_order_names_and_options():
    spec = SweepSpec(base={"method": "lora", "steps": 5}, grid={"rank": [2, 4], "lr": [1e-3, 0.01]})
    points = expand(spec)
    assert [p["name"] for p in points] == [
        "rank=2,lr=0.001",
        "rank=2,lr=0.01",
        "rank=4,lr=0.001",
        "rank=4,lr=0.01",
    ]
    assert [(p["rank"], p["lr"]) for p in points] == [(2, 1e-3), (2, 0.01), (4, 1e-3), (4, 0.01)]
    assert all(p["steps"] == 5 and p["method"] == "lora" for p in points)
    assert expand(spec) == points  # deterministic


def test_expand_without_grid_is_one_point():
    assert [p["name"] for p in expand(SweepSpec(base={"rank": 2}))] == ["base"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grid": {"rnk": [1]}}, "'rnk'"),
        ({"base": {"learning_rate": 1}}, "'learning_rate'"),
        ({"grid": {"rank": []}}, "empty"),
        ({"grid": {"rank": 4}}, "list"),
        ({"grid": {"out": ["x"]}}, "'out'"),
        ({"base": {"rank": 2}, "grid": {"rank": [4]}}, "both"),
        ({"internal": {"modulez": ["q_proj"]}}, "'modulez'"),
        ({"external": {"seq_len": 32}}, "needs 'texts'"),
        ({"external": {"texts": "x.txt", "seqlen": 32}}, "'seqlen'"),
        ({"external": {"texts": "/no/such/corpus.txt"}}, "no such file"),
    ],
)
def test_spec_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SweepSpec(**kwargs)


def test_expand_rejects_bad_values_naming_the_point():
    with pytest.raises(ValueError, match="method=lroa"):
        expand(SweepSpec(grid={"method": ["lora", "lroa"]}))


def test_load_spec_yaml_and_json(tmp_path):
    yaml_path = tmp_path / "s.yaml"
    yaml_path.write_text("base:\n  steps: 3\ngrid:\n  batch-size: [2, 4]\n")
    json_path = tmp_path / "s.json"
    json_path.write_text(json.dumps({"base": {"steps": 3}, "grid": {"batch_size": [2, 4]}}))
    assert load_sweep_spec(yaml_path) == load_sweep_spec(json_path)
    assert expand(load_sweep_spec(yaml_path))[1]["name"] == "batch_size=4"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"grid": {"rank": [1]}, "extra": 1}))
    with pytest.raises(ValueError, match="bad.json.*'extra'"):
        load_sweep_spec(bad)
    with pytest.raises(ValueError, match="no such file"):
        load_sweep_spec(tmp_path / "missing.yaml")


@pytest.fixture(scope="module")
def local_sweep(small_tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    spec = SweepSpec(base=_base(small_tiny), grid=GRID)
    return spec, out, run_sweep(spec, out)


def test_local_sweep_table(local_sweep):
    spec, out, table = local_sweep
    assert list(table.name) == [p["name"] for p in expand(spec)]
    assert (table.status == "ok").all(), table.error.tolist()
    assert table.error.isna().all()
    disk = pd.read_parquet(out / "sweep.parquet")
    assert list(disk.name) == list(table.name)
    for row in table.itertuples():
        run = out / "points" / row.name
        assert (run / "DONE").is_file()
        losses = pd.read_parquet(run / "losses.parquet")
        train = losses[losses.split == "train"].sort_values("step")
        held = losses[losses.split == "heldout"].sort_values("step")
        assert row.train_loss == train.loss.iloc[-1]
        assert row.heldout_loss == held.loss.iloc[-1]
        summary = pd.read_parquet(run / "internal_summary.parquet")
        assert set(summary.step) == {6}
        assert row.center_entropy == pytest.approx(summary.center_entropy.mean())
        # LoRA rank r: the centre entropy is at most ln r (the area law, docs/method.md).
        assert row.center_entropy <= np.log(row.rank) + 1e-9
        assert row.within_bound_all == bool(summary.within_bound.all())
    # Different learning rates give different runs.
    assert table.train_loss.nunique() == 4


def test_rerun_skips_finished_points(local_sweep):
    spec, out, table = local_sweep
    mtimes = {n: (out / "points" / n / "row.json").stat().st_mtime_ns for n in table.name}
    again = run_sweep(spec, out)
    assert again.reused.all()
    assert {n: (out / "points" / n / "row.json").stat().st_mtime_ns for n in table.name} == mtimes
    pd.testing.assert_frame_equal(
        again.drop(columns="reused"), table.drop(columns="reused"), check_like=True
    )


def test_report_reads_the_sweep(local_sweep):
    from artent.report import build_report
    from artent.report.claims import evaluate_claims
    from artent.report.tables import load_study

    _, out, table = local_sweep
    t = load_study(out)
    # The points are the runs; each point's final analysis is in the stacked internal tables.
    assert sorted(t.runs.name) == sorted(table.name)
    assert set(t.runs.method) == {"lora"}
    means = t.internal_summary.groupby("label").center_entropy.mean()
    for row in table.itertuples():
        assert means[row.name] == pytest.approx(row.center_entropy)
    assert set(t.internal.label) == set(table.name)
    claims = evaluate_claims(t).set_index("claim")
    assert claims.loc["Entanglement Valley floor", "reproduced"] is True  # LoRA: S_cut <= ln r
    assert claims.loc["valley vs rank", "reproduced"] is not None  # two ranks per lr: measured
    assert "lr=0.003" in claims.loc["valley vs rank", "measured"]
    assert claims.loc["attention area law + log", "reproduced"] is None  # no attention here
    page = build_report(out).read_text()
    assert "sweep report" in page
    sweep_html = page.split("<table id='sweep'>")[1].split("</table>")[0]
    assert sweep_html.count("<tr>") == 1 + len(table)
    assert all(name in sweep_html for name in table.name)
    assert "id='fig-sweep'><img" in page


def test_failing_point_does_not_stop_the_others(small_tiny, tmp_path):
    spec = SweepSpec(
        base={**_base(small_tiny), "rank": 2, "lr": 3e-3},
        grid={"targets": [["nope"], ["q_proj", "v_proj"]]},
    )
    table = run_sweep(spec, tmp_path)
    failed, ok = table.iloc[0], table.iloc[1]
    assert failed["name"] == "targets=nope" and failed.status == "failed"
    assert "nope" in failed.error and "\n" not in failed.error
    assert np.isnan(failed.train_loss)
    assert ok.status == "ok" and np.isfinite(ok.train_loss) and np.isfinite(ok.center_entropy)
    assert pd.read_parquet(tmp_path / "sweep.parquet").status.tolist() == ["failed", "ok"]


def _same_results(local, other):
    cols = ["name", "rank", "lr", "status", "train_loss", "heldout_loss", "center_entropy"]
    a = local[cols].sort_values("name").reset_index(drop=True)
    b = other[cols].sort_values("name").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, rtol=0, atol=1e-6)


def test_process_pool_matches_one_by_one(local_sweep, tmp_path):
    spec, _, local = local_sweep
    _same_results(local, run_sweep(spec, tmp_path, workers=2))


def test_ray_sweep_matches_local(local_sweep, tmp_path):
    pytest.importorskip("ray")
    spec, _, local = local_sweep
    _same_results(local, run_sweep(spec, tmp_path, ray="local", workers=2))


def test_missing_ray_is_a_clear_error(local_sweep, tmp_path, monkeypatch):
    import sys

    spec, _, _ = local_sweep
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'artent\[ray\]'"):
        run_sweep(spec, tmp_path, ray="local")


def test_sweep_command_runs_a_grid_and_rejects_a_bad_spec(small_tiny, tmp_path, capsys):
    from artent.cli import main as cli_main

    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"base: {{model: {small_tiny}, method: lora, steps: 4, batch_size: 4, seq_len: 256, "
        "n_synthetic: 200, save_steps: [0, 4]}\n"
        "grid: {rank: [2, 4]}\n"
    )
    assert cli_main(["sweep", str(spec), "--out", str(tmp_path / "sw")]) == 0
    printed = capsys.readouterr().out
    assert "2/2 points ok" in printed and "report.html" in printed
    assert (tmp_path / "sw" / "report.html").is_file()
    table = pd.read_parquet(tmp_path / "sw" / "sweep.parquet")
    assert sorted(table["rank"]) == [2, 4] and (table.status == "ok").all()
    spec.write_text("base: {}\ngrid: {rnak: [2]}\n")
    assert cli_main(["sweep", str(spec), "--out", str(tmp_path / "bad")]) == 2
    assert "rnak" in capsys.readouterr().err


def test_sweep_reads_attention_on_its_corpus(small_tiny, tmp_path):
    """The spec's external section: each point's final checkpoint, the corpus reader's windows."""
    from artent.data.generators import pretraining_corpus
    from artent.report.tables import load_study

    corpus = tmp_path / "corpus.jsonl"
    docs = pretraining_corpus(20, seed=2)
    corpus.write_text("\n".join(json.dumps({"text": d}) for d in docs) + "\n")
    base = {**_base(small_tiny), "steps": 2, "save_steps": [2]}
    external = {"texts": str(corpus), "seq_len": 32, "n_texts": 2, "baseline_samples": 2}
    spec = SweepSpec(base=base, external=external)
    table = run_sweep(spec, tmp_path / "sweep")
    assert (table.status == "ok").all(), table.error.tolist()
    run = tmp_path / "sweep" / "points" / "base"
    summary = pd.read_parquet(run / "external_summary.parquet")
    assert set(summary.step) == {2} and set(summary.label) == {"base"}
    first = summary[(summary.encoding == "amplitude") & (summary.order == "sequential")]
    assert table.attention_c.iloc[0] == pytest.approx(first.c.mean())
    assert table.attention_note.isna().all()
    tables = load_study(tmp_path / "sweep")
    assert tables.external_summary is not None and len(tables.external_summary) == len(summary)
