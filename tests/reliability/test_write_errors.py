"""Every write failure names its file; unreadable data names its file too."""

from __future__ import annotations

import errno
import os

import pandas as pd
from reliability_helpers import one_line_error, train_args


def _fail_once_at(monkeypatch, owner, name, when, exc):
    real = getattr(owner, name)
    calls = []

    def fake(*args, **kwargs):
        calls.append(args)
        if when(len(calls), args):
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, fake)


def test_a_disk_that_fills_during_a_checkpoint_save_names_the_file_and_resumes(
    artent, small_tiny, small_chats, tmp_path, monkeypatch
):
    import torch

    # torch.save on a full disk: a RuntimeError from its C++ writer, naming no file of ours
    full = RuntimeError(
        "[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file "
        "data/0: file write failed"
    )
    _fail_once_at(monkeypatch, torch, "save", lambda n, a: "step-000002" in str(a[1]), full)
    out = tmp_path / "run"
    result = artent(*train_args(small_tiny, small_chats, out, quiet=tmp_path))
    one_line_error(result, str(out / "checkpoints" / "step-000002.tmp" / "trainer_state.pt"))
    assert "file write failed" in result.err
    monkeypatch.undo()
    assert artent(*train_args(small_tiny, small_chats, out, quiet=tmp_path)).code == 0
    assert (out / "DONE").is_file() and not (out / "checkpoints" / "step-000002.tmp").exists()


def test_a_full_disk_in_the_adapter_save_names_the_folder(
    artent, small_tiny, small_chats, tmp_path, monkeypatch
):
    import peft

    nospace = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as the C library raises it
    _fail_once_at(monkeypatch, peft.PeftModel, "save_pretrained", lambda n, a: n == 1, nospace)
    out = tmp_path / "run"
    result = artent(*train_args(small_tiny, small_chats, out, quiet=tmp_path))
    one_line_error(result, str(out / "checkpoints" / "step-000000.tmp"), "No space left on device")


def test_a_full_disk_inside_a_library_write_names_the_result_file(
    artent, lora_adapter, tmp_path, monkeypatch
):
    nospace = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # pyarrow's: no file named
    _fail_once_at(monkeypatch, pd.DataFrame, "to_parquet", lambda n, a: n == 2, nospace)
    out = tmp_path / "analysis"
    one_line_error(
        artent("internal", "--adapter", lora_adapter, "--out", out),
        "internal_summary.parquet",
        "No space left on device",
    )
    assert not out.exists()


def test_corrupt_parquet_pages_name_the_file(artent, small_tiny, tmp_path):
    corpus = tmp_path / "corpus.parquet"
    texts = [f"word {i} " * 50 for i in range(2000)]
    pd.DataFrame({"text": texts}).to_parquet(corpus, compression="snappy", row_group_size=500)
    data = bytearray(corpus.read_bytes())
    data[100:2100] = bytes(b ^ 0x5A for b in data[100:2100])  # the first data page
    corpus.write_bytes(bytes(data))
    args = ["--model", small_tiny, "--texts", corpus, "--n-texts", "2", "--seq-len", "16"]
    result = artent("external", *args, "--out", tmp_path / "e")
    one_line_error(result, f"--texts {corpus}", "cannot read")
    assert not (tmp_path / "e").exists()


def test_a_bad_json_record_names_the_line_and_why(artent, small_tiny, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"text": "fine words here"}\n{"text": "cut off\n')
    result = artent("external", "--model", small_tiny, "--texts", corpus, "--out", tmp_path / "e")
    line = one_line_error(result, f"--texts {corpus}: line 2 is not valid JSON")
    assert "(" in line  # the parser's reason, after the file and line


def test_corrupt_parquet_training_data_names_the_file(artent, small_tiny, tmp_path):
    import json

    data = tmp_path / "train.parquet"
    rows = [
        {"messages": json.dumps([{"role": "user", "content": f"q {i} " * 40}])} for i in range(3000)
    ]
    pd.DataFrame(rows).to_parquet(data, compression="snappy", row_group_size=500)
    raw = bytearray(data.read_bytes())
    raw[100:2100] = bytes(b ^ 0x5A for b in raw[100:2100])
    data.write_bytes(bytes(raw))
    result = artent(*train_args(small_tiny, data, tmp_path / "run"))
    one_line_error(result, str(data), "cannot read rows")
    assert not (tmp_path / "run").exists()
