"""Pipelines own only what they wrote; a sweep reports each failed point and exits non-zero."""

from __future__ import annotations

import json

import pytest
import sweep_workers
from reliability_helpers import one_line_error, snapshot

FOREIGN = "<html><body>my own notes, not artent's</body></html>\n"


@pytest.fixture
def foreign_report(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "report.html").write_text(FOREIGN)
    return folder


def test_demo_never_replaces_a_report_it_did_not_write(artent, foreign_report):
    before = snapshot(foreign_report)
    result = artent("demo", "--quick", "--out", foreign_report)
    one_line_error(result, str(foreign_report / "report.html"), "not written by artent")
    assert snapshot(foreign_report) == before
    # nor in a folder that is a study's: the record lists its files, the page is still foreign
    (foreign_report / "study.json").write_text(json.dumps({"config": {"quick": True}}))
    before = snapshot(foreign_report)
    one_line_error(artent("report", foreign_report), "report.html", "not written by artent")
    assert snapshot(foreign_report) == before


def test_a_folder_holding_a_studys_file_without_its_record_is_refused(artent, tmp_path):
    folder = tmp_path / "notes"
    (folder / "internal").mkdir(parents=True)
    (folder / "texts.txt").write_text("my text\n")
    before = snapshot(folder)
    one_line_error(artent("demo", "--quick", "--out", folder), str(folder), "texts.txt")
    assert snapshot(folder) == before


def test_sweep_never_replaces_a_report_it_did_not_write(artent, foreign_report, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("base: {method: lora, steps: 2}\ngrid: {rank: [2]}\n")
    before = snapshot(foreign_report)
    result = artent("sweep", spec, "--out", foreign_report)
    one_line_error(result, str(foreign_report / "report.html"), "not written by artent")
    assert snapshot(foreign_report) == before
    (foreign_report / "report.html").unlink()
    (foreign_report / "points").mkdir()
    one_line_error(artent("sweep", spec, "--out", foreign_report), "points")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_killed_worker_fails_its_point_alone(tmp_path, workers):
    from artent.pipelines.sweep import SweepSpec, expand
    from artent.pipelines.sweep_workers import run_processes

    data = ["a", "die", "b", "c", "d"]
    points = expand(SweepSpec(base={"method": "lora"}, grid={"data": data}))
    rows = run_processes(
        points, tmp_path, {"grid_keys": ["data"]}, workers, runner=sweep_workers.killed_or_ok
    )
    assert [r["status"] for r in rows] == ["ok", "failed", "ok", "ok", "ok"]
    assert "killed by signal 9" in rows[1]["error"] and rows[1]["data"] == "die"
    # workers are reused; the dead one is replaced: at most one process more than workers
    assert len({r["pid"] for r in rows if r["status"] == "ok"}) <= workers + 1
    record = json.loads((tmp_path / "points" / "data=die" / "row.json").read_text())
    assert record["status"] == "failed"  # a rerun retries it


def test_failed_points_are_named_and_the_sweep_exits_non_zero(artent, small_tiny, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"base: {{model: {small_tiny}, method: lora, steps: 2, batch_size: 2, seq_len: 128, "
        "n_synthetic: 40, save_steps: [0, 2], eval_every: 0}\n"
        "grid: {targets: [[nope], [q_proj]]}\n"
    )
    result = artent("sweep", spec, "--out", tmp_path / "sw")
    assert result.code == 2 and "Traceback" not in result.err
    lines = [ln for ln in result.err.splitlines() if ln.strip()]
    assert len(lines) == 2, result.err
    assert "sweep point targets=nope" in lines[0] and "nope" in lines[0]
    assert "1 of 2 sweep points failed" in lines[1]
    assert "1/2 points ok" in result.out and (tmp_path / "sw" / "report.html").is_file()


def test_long_legal_grid_values_get_short_folders(tmp_path):
    from artent.pipelines.points import MAX_FOLDER_NAME, point_folder_name
    from artent.pipelines.sweep import SweepSpec, expand

    deep = "/".join(["a-rather-long-folder-name"] * 12) + "/data.jsonl"
    points = expand(SweepSpec(base={"method": "lora"}, grid={"data": [deep, deep + "l"]}))
    names = [point_folder_name(p["name"]) for p in points]
    assert len(set(names)) == 2 and all(len(n) <= MAX_FOLDER_NAME for n in names)
    for n in names:
        (tmp_path / "points" / n).mkdir(parents=True)  # a legal name on this file system
    assert point_folder_name("rank=2,lr=0.001") == "rank=2,lr=0.001"  # short names as before
