"""Each result saves and loads its own tables; the folder layout's one step-folder rule; the one
reader of records and tables."""

from __future__ import annotations

import pandas as pd
import pytest

from artent.folders import atomic
from artent.folders.layout import (
    any_checkpoint,
    checkpoint_folder,
    checkpoints,
    folder_step,
    step_folder_name,
)
from artent.folders.records import read_record, read_table
from artent.results import Baselines, External, Internal, NoHair


def _frames(n: int) -> list[pd.DataFrame]:
    return [pd.DataFrame({"label": ["a", "b"], "value": [i, i + 0.5]}) for i in range(n)]


@pytest.mark.parametrize("cls", [Internal, External, NoHair, Baselines])
def test_a_result_saves_and_loads_its_tables(cls, tmp_path):
    result = cls(*_frames(len(cls._fields)))
    assert not cls.saved(tmp_path)
    assert result.save(tmp_path) == tmp_path and cls.saved(tmp_path)
    loaded = cls.load(tmp_path)
    for field in cls._fields:
        pd.testing.assert_frame_equal(getattr(loaded, field), getattr(result, field))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(cls.file(f) for f in cls._fields)
    assert result.tables().keys() == {name for name in cls.FILES.values()}


def test_the_file_names_are_the_commands(tmp_path):
    assert Internal.writes() == ("internal.parquet", "internal_summary.parquet", "internal.png")
    assert External.writes()[-2:] == ("external.png", "models.png")
    assert [External.file(f) for f in External._fields] == [
        f"{name}.parquet"
        for name in ("external", "external_summary", "scaling", "baseline", "scaling_baseline")
    ]
    assert NoHair.writes() == (
        "nohair.parquet",
        "nohair_internal.parquet",
        "nohair_external.parquet",
        "nohair.png",
    )


def test_the_done_table_is_written_last(tmp_path, monkeypatch):
    written = []
    real = atomic.write_parquet

    def spy(path, frame):
        written.append(path.name)
        return real(path, frame)

    monkeypatch.setattr(atomic, "write_parquet", spy)
    External(*_frames(5)).save(tmp_path)
    assert written[-1] == "external_summary.parquet" and len(written) == 5


def test_a_missing_or_short_table_is_one_line_naming_it(tmp_path):
    Internal(*_frames(2)).save(tmp_path)
    with pytest.raises(ValueError, match=r"internal_summary.parquet: missing column 'rmt'"):
        Internal.load(tmp_path, columns={"summary": ("label", "rmt")})
    (tmp_path / "internal.parquet").write_text("not parquet")
    with pytest.raises(ValueError, match=r"internal.parquet: cannot read"):
        Internal.load(tmp_path)


def test_records_are_read_with_one_error_path(tmp_path):
    record = tmp_path / "run.json"
    record.write_text('{"command": "train"}')
    assert read_record(record) == {"command": "train"}
    record.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"run.json: expected a JSON object$"):
        read_record(record)
    record.write_text("{")
    with pytest.raises(ValueError, match=r"run.json: cannot parse JSON \("):
        read_record(record)
    with pytest.raises(ValueError, match=r"nope.parquet: cannot read"):
        read_table(tmp_path / "nope.parquet")


def test_one_step_folder_rule(tmp_path):
    assert step_folder_name(25) == "step-000025"
    assert checkpoint_folder(tmp_path, 25) == tmp_path / "checkpoints" / "step-000025"
    assert folder_step("step-000025") == 25 and folder_step("step-1234567") == 1234567
    assert folder_step("step-000025.tmp") is None and folder_step("checkpoint-25") is None
    run = tmp_path / "runs" / "a"
    assert checkpoints(run) == [] and not any_checkpoint(tmp_path / "runs")
    for name in ("step-000010", "step-000002", "step-000020.tmp"):
        (run / "checkpoints" / name).mkdir(parents=True)
    assert [s for s, _ in checkpoints(run)] == [2, 10]
    assert any_checkpoint(tmp_path / "runs")
