from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from artent.data.formats import DataError, load_conversations, split_heldout


def make_conversations(n: int) -> list[list[dict[str, str]]]:
    """``n`` distinct normalised conversations; some with a system turn, some multi-turn."""
    out = []
    for i in range(n):
        conv = []
        if i % 3 == 0:
            conv.append({"role": "system", "content": f"You are helper {i}."})
        conv += [
            {"role": "user", "content": f"What is {i} + {i}?"},
            {"role": "assistant", "content": f"{i} + {i} = {2 * i}.\nDone."},
        ]
        if i % 2 == 1:
            conv += [
                {"role": "user", "content": "And times two?"},
                {"role": "assistant", "content": f"{4 * i}"},
            ]
        out.append(conv)
    return out


def as_tulu_rows(convs):
    return [{"id": f"ex{i}", "messages": c, "source": "test"} for i, c in enumerate(convs)]


def as_openthoughts_rows(convs):
    # both spellings of each role, alternating by row
    spell = [
        {"system": "system", "user": "human", "assistant": "gpt"},
        {"system": "system", "user": "user", "assistant": "assistant"},
    ]
    return [
        {
            "difficulty": i % 5,
            "conversations": [{"from": spell[i % 2][m["role"]], "value": m["content"]} for m in c],
        }
        for i, c in enumerate(convs)
    ]


def write_rows(path: Path, rows: list) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        path.write_text("\n".join(map(str, rows)))
    return path


ROW_WRITERS = {"tulu": as_tulu_rows, "openthoughts": as_openthoughts_rows}


@pytest.mark.parametrize("fmt", ["tulu", "openthoughts"])
@pytest.mark.parametrize("ext", [".jsonl", ".parquet", ".json"])
def test_round_trip(tmp_path, fmt, ext):
    convs = make_conversations(9)
    path = write_rows(tmp_path / f"data{ext}", ROW_WRITERS[fmt](convs))
    got = load_conversations(path, heldout_fraction=0.0)
    assert got.format == fmt
    assert got.source == str(path)
    assert got.train == convs
    assert got.heldout == []


def test_heldout_split_deterministic_and_disjoint(tmp_path):
    convs = make_conversations(40)
    path = write_rows(tmp_path / "d.jsonl", as_tulu_rows(convs))
    a = load_conversations(path, heldout_fraction=0.25, seed=3)
    b = load_conversations(path, heldout_fraction=0.25, seed=3)
    c = load_conversations(path, heldout_fraction=0.25, seed=4)
    assert a.train == b.train and a.heldout == b.heldout
    assert len(a.heldout) == 10 and len(a.train) == 30
    keys = lambda cs: {json.dumps(x) for x in cs}  # noqa: E731
    assert not keys(a.train) & keys(a.heldout)
    assert keys(a.train) | keys(a.heldout) == keys(convs)
    # both parts keep source order
    order = [json.dumps(x) for x in convs]
    for part in (a.train, a.heldout):
        idx = [order.index(json.dumps(x)) for x in part]
        assert idx == sorted(idx)
    assert c.heldout != a.heldout


def test_split_heldout_edges():
    assert split_heldout([1], 0.5, 0) == ([1], [])
    train, held = split_heldout(list(range(3)), 0.01, 0)
    assert len(held) == 1 and sorted(train + held) == [0, 1, 2]
    with pytest.raises(DataError, match="heldout_fraction"):
        split_heldout([1, 2], 1.0, 0)


def test_limit_reads_first_rows(tmp_path):
    convs = make_conversations(10)
    path = write_rows(tmp_path / "d.parquet", as_openthoughts_rows(convs))
    got = load_conversations(path, heldout_fraction=0.0, limit=4)
    assert got.train == convs[:4]


def test_directory_with_split_files(tmp_path):
    convs = make_conversations(12)
    write_rows(tmp_path / "train-00000-of-00002.parquet", as_tulu_rows(convs[:5]))
    write_rows(tmp_path / "train-00001-of-00002.parquet", as_tulu_rows(convs[5:10]))
    write_rows(tmp_path / "test-00000-of-00001.parquet", as_tulu_rows(convs[10:]))
    (tmp_path / "README.md").write_text("not data")
    got = load_conversations(tmp_path, heldout_fraction=0.0)
    assert got.train == convs[:10]
    got_test = load_conversations(tmp_path, split="test", heldout_fraction=0.0)
    assert got_test.train == convs[10:]
    with pytest.raises(DataError, match="no files for split 'validation'") as err:
        load_conversations(tmp_path, split="validation")
    assert str(tmp_path) in str(err.value) and "test, train" in str(err.value)


def test_directory_without_split_names_reads_all(tmp_path):
    convs = make_conversations(6)
    write_rows(tmp_path / "a.jsonl", as_tulu_rows(convs[:3]))
    write_rows(tmp_path / "b.jsonl", as_tulu_rows(convs[3:]))
    assert load_conversations(tmp_path, heldout_fraction=0.0).train == convs


def _rows_with(bad_row: dict, fmt: str = "tulu", at: int = 2) -> list[dict]:
    rows = ROW_WRITERS[fmt](make_conversations(4))
    rows.insert(at, bad_row)
    return rows


# (case id, file name, rows or raw text, substrings the message must contain)
ERROR_CASES = [
    ("neither-format", "x.jsonl", [{"prompt": "hi", "response": "yo"}], ["prompt", "response"]),
    ("missing-column", "x.jsonl", _rows_with({"id": "z"}), ["row 3", "messages"]),
    ("not-a-list", "x.jsonl", _rows_with({"messages": "hello"}), ["row 3", "messages"]),
    ("null-in-parquet", "x.parquet", _rows_with({"messages": None}), ["row 3", "messages"]),
    (
        "turn-without-content",
        "x.jsonl",
        _rows_with({"messages": [{"role": "user"}]}),
        ["row 3", "content"],
    ),
    (
        "unknown-role-tulu",
        "x.jsonl",
        _rows_with({"messages": [{"role": "bot", "content": "x"}]}),
        ["row 3", "'bot'"],
    ),
    (
        "unknown-role-openthoughts",
        "x.parquet",
        _rows_with({"conversations": [{"from": "robot", "value": "x"}]}, "openthoughts"),
        ["row 3", "'robot'"],
    ),
    (
        "no-assistant-turn",
        "x.jsonl",
        _rows_with({"messages": [{"role": "user", "content": "only a question"}]}, at=0),
        ["row 1", "no assistant turn"],
    ),
    ("empty-file", "x.jsonl", "", ["empty"]),
    ("blank-lines-only", "x.jsonl", "\n\n", ["empty"]),
    ("empty-json-list", "x.json", [], ["empty"]),
    (
        "bad-json-line",
        "x.jsonl",
        json.dumps(as_tulu_rows(make_conversations(1))[0]) + "\n{not json\n",
        ["row 2", "JSON"],
    ),
    ("unsupported-extension", "x.csv", "messages\n1\n", [".csv"]),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_errors_name_the_file(tmp_path, case):
    _, name, content, needles = case
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    else:
        write_rows(path, content)
    with pytest.raises(DataError) as err:
        load_conversations(path)
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message
    for needle in needles:
        assert needle in message


def test_empty_parquet(tmp_path):
    path = tmp_path / "x.parquet"
    pq.write_table(
        pa.table({"messages": pa.array([], pa.list_(pa.struct([("role", pa.string())])))}), path
    )
    with pytest.raises(DataError, match="empty") as err:
        load_conversations(path)
    assert str(path) in str(err.value)


def test_directory_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="no .jsonl") as err:
        load_conversations(tmp_path)
    assert str(tmp_path) in str(err.value)
    write_rows(tmp_path / "a.jsonl", as_tulu_rows(make_conversations(2)))
    write_rows(tmp_path / "b.jsonl", as_openthoughts_rows(make_conversations(2)))
    with pytest.raises(DataError, match="one format") as err:
        load_conversations(tmp_path)
    assert "b.jsonl" in str(err.value)


def test_missing_local_path_is_not_a_hub_name(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # any hub access would raise ImportError
    for missing in (tmp_path / "nope.jsonl", f"{tmp_path}/nope", "./nope.parquet"):
        with pytest.raises(DataError, match="no such file"):
            load_conversations(missing)


def test_hub_name_without_datasets(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(DataError, match="pip install datasets") as err:
        load_conversations("someorg/some-sft-mixture")
    assert "someorg/some-sft-mixture" in str(err.value)


def test_hub_name_reads_through_datasets(monkeypatch):
    """A stand-in `datasets` module: checks the call and the normalisation, no hub involved."""
    convs = make_conversations(7)
    calls = []

    def fake_load_dataset(name, split, streaming):
        calls.append((name, split, streaming))
        return as_openthoughts_rows(convs)

    monkeypatch.setitem(
        sys.modules, "datasets", types.SimpleNamespace(load_dataset=fake_load_dataset)
    )
    got = load_conversations("org/thoughts", split="train", heldout_fraction=0.0, limit=5)
    assert calls == [("org/thoughts", "train", True)]
    assert got.format == "openthoughts" and got.train == convs[:5]


def test_bad_options(tmp_path):
    path = write_rows(tmp_path / "d.jsonl", as_tulu_rows(make_conversations(3)))
    with pytest.raises(DataError, match="limit"):
        load_conversations(path, limit=0)
    with pytest.raises(DataError, match="heldout_fraction"):
        load_conversations(path, heldout_fraction=-0.1)
