"""The corpus reader: files and folders to documents, documents to one stream, windows of T."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from artent.data.corpus import Corpus, corpus_windows, read_corpus


class WordTokenizer:
    """Each word is its integer: ``"7 8 9"`` -> ``[7, 8, 9]`` (other words: 99); special ids as
    configured; ``add_special_tokens`` puts ``prefix`` before and ``suffix`` after a text."""

    def __init__(self, prefix=(), suffix=(), **special: int | None) -> None:
        for name in ("bos", "eos", "sep", "cls"):
            setattr(self, f"{name}_token_id", special.get(name))
        self.prefix, self.suffix = list(prefix), list(suffix)
        self.framed = 0  # calls with add_special_tokens: documents must never be framed

    def __call__(self, text: str, add_special_tokens: bool = True, verbose: bool = True) -> dict:
        ids = [int(w) if w.isdigit() else 99 for w in text.split()]
        if add_special_tokens:
            self.framed += 1
            ids = self.prefix + ids + self.suffix
        return {"input_ids": ids}


def _docs(corpus: Corpus) -> list[str]:
    return list(corpus.documents())


def test_every_kind_of_file_and_a_folder_in_sorted_order(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a.txt").write_text("10 11\n12\n\n\n13 14\n  \n\n15\n")  # three paragraphs
    (tmp_path / "b" / "c.jsonl").write_text(
        json.dumps({"text": "20 21"}) + "\n\n" + json.dumps({"text": "22", "id": 3}) + "\n"
    )
    pd.DataFrame({"text": ["30 31", None, "32"], "n": [1, 2, 3]}).to_parquet(
        tmp_path / "b" / "d.parquet"
    )
    (tmp_path / "notes.md").write_text("not a corpus file")
    assert _docs(read_corpus(tmp_path / "a.txt")) == ["10 11\n12", "13 14", "15"]
    assert _docs(read_corpus(tmp_path / "b" / "c.jsonl")) == ["20 21", "22"]
    assert _docs(read_corpus(tmp_path / "b" / "d.parquet")) == ["30 31", "32"]
    folder = read_corpus(tmp_path)
    assert [f.name for f in folder.files] == ["a.txt", "c.jsonl", "d.parquet"]
    assert len(_docs(folder)) == 7


def test_stream_separators_and_windows():
    docs = ["10 11 12", "13 14", "15 16 17 18"]
    # LLaMA-like: BOS first, EOS between documents.
    got = corpus_windows(WordTokenizer(bos=1, eos=2), docs, 4, start="none")
    assert got.ids.tolist() == [[1, 10, 11, 12], [2, 13, 14, 2], [15, 16, 17, 18]]
    assert (got.n_tokens, got.n_windows, got.note) == (12, 3, None)
    # BERT-like: CLS first, SEP between (sep wins over eos); the short tail is dropped.
    got = corpus_windows(WordTokenizer(cls=101, sep=102, eos=2), docs, 5, start="none")
    assert got.ids.tolist() == [[101, 10, 11, 12, 102], [13, 14, 102, 15, 16]]
    # No BOS, EOS only (Qwen-like): no start token.
    got = corpus_windows(WordTokenizer(eos=2), docs, 3, max_windows=2, start="none")
    assert got.ids.tolist() == [[10, 11, 12], [2, 13, 14]] and not got.exhausted
    assert got.ids.dtype == torch.long


def test_fewer_windows_than_asked_and_none_at_all(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("10 11 12\n\n13 14\n")
    got = corpus_windows(
        WordTokenizer(bos=1, eos=2), read_corpus(path), 3, max_windows=5, start="none"
    )
    assert got.n_windows == 2 and got.exhausted
    assert got.note == (
        f"texts={path}: 7 tokens make 2 window(s) of 3 tokens, fewer than n_texts=5; using 2"
    )
    with pytest.raises(
        ValueError,
        match=r"short\.txt: the corpus has 7 tokens, fewer than one window of seq_len=8$",
    ):
        corpus_windows(WordTokenizer(bos=1, eos=2), read_corpus(path), 8, start="none")


def test_only_what_the_windows_need_is_read(tmp_path):
    (tmp_path / "1.jsonl").write_text(json.dumps({"text": " ".join(["5"] * 50)}) + "\n")
    (tmp_path / "2.jsonl").write_text("this line is not JSON\n")
    got = corpus_windows(
        WordTokenizer(bos=1), read_corpus(tmp_path), 10, max_windows=3, start="none"
    )
    assert got.n_windows == 3  # the broken second file was never opened
    with pytest.raises(ValueError, match=r"2\.jsonl: line 1 is not valid JSON"):
        corpus_windows(WordTokenizer(bos=1), read_corpus(tmp_path), 10, start="none")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("x.jsonl", '{"text": "1 2"}\n{"body": "3"}\n', r"x\.jsonl: line 2 has no string 'text'"),
        ("x.jsonl", '{"text": "1"}\n[1, 2]\n', r"line 2 has no string 'text' field"),
        ("x.txt", b"\xff\xfe bad", r"x\.txt: not UTF-8 text"),
        ("x.parquet", b"not parquet at all", r"x\.parquet: not a readable Parquet file"),
    ],
)
def test_bad_contents_name_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ValueError, match=message):
        _docs(read_corpus(path))


def test_bad_paths_and_columns(tmp_path):
    with pytest.raises(ValueError, match=r"texts=.*missing\.txt: no such file or folder"):
        read_corpus(tmp_path / "missing.txt")
    (tmp_path / "x.csv").write_text("text\nhello\n")
    with pytest.raises(ValueError, match=r"x\.csv: expected a \.txt, \.jsonl, \.parquet file"):
        read_corpus(tmp_path / "x.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: the folder holds no \.txt, \.jsonl, \.parquet"):
        read_corpus(tmp_path / "empty")
    pd.DataFrame({"body": ["a"]}).to_parquet(tmp_path / "a.parquet")
    with pytest.raises(ValueError, match=r"a\.parquet: no 'text' column"):
        _docs(read_corpus(tmp_path / "a.parquet"))
    pd.DataFrame({"text": [1, 2]}).to_parquet(tmp_path / "b.parquet")
    with pytest.raises(ValueError, match=r"b\.parquet: column 'text' holds int64, not strings"):
        _docs(read_corpus(tmp_path / "b.parquet"))
    with pytest.raises(ValueError, match="expected a non-empty list of strings"):
        Corpus.from_texts([])


DOCS = ["10 11 12", "13 14", "15 16 17 18 19 20"]


def test_model_windows_begin_as_the_tokenizer_begins_a_text():
    # LLaMA-like (adds BOS): every window is BOS + T - 1 stream tokens, EOS between documents
    tok = WordTokenizer(prefix=[1], bos=1, eos=2)
    got = corpus_windows(tok, DOCS, 4)
    assert got.ids.tolist() == [[1, 10, 11, 12], [1, 2, 13, 14], [1, 2, 15, 16], [1, 17, 18, 19]]
    assert got.frame.prefix == (1,) and got.frame.suffix == () and got.window_start == "model"
    assert tok.framed == 1  # the frame is read off once; documents are never framed
    # BERT-like: [CLS] + T - 2 tokens + [SEP], SEP between documents
    got = corpus_windows(WordTokenizer(prefix=[101], suffix=[102], cls=101, sep=102), DOCS, 5)
    assert got.ids.tolist() == [
        [101, 10, 11, 12, 102],
        [101, 102, 13, 14, 102],
        [101, 102, 15, 16, 102],
        [101, 17, 18, 19, 102],
    ]
    # GPT-2-like (adds nothing, though its BOS id exists): the stream alone, with no start token
    got = corpus_windows(WordTokenizer(bos=50, eos=50), DOCS, 4)
    assert got.ids.tolist() == [[10, 11, 12, 50], [13, 14, 50, 15], [16, 17, 18, 19]]
    assert got.record() == dict(
        window_start="model", window_prefix=[], window_suffix=[], window_frame="..."
    )


def test_bos_windows_and_none_reproduces_the_stream():
    tok = WordTokenizer(bos=1, eos=2)  # a tokenizer that adds nothing, asked for BOS anyway
    got = corpus_windows(tok, DOCS, 4, start="bos")
    assert got.ids.tolist() == [[1, 10, 11, 12], [1, 2, 13, 14], [1, 2, 15, 16], [1, 17, 18, 19]]
    # none: the stream begun once with BOS, cut as it is
    got = corpus_windows(tok, DOCS, 4, start="none")
    assert got.ids.tolist() == [[1, 10, 11, 12], [2, 13, 14, 2], [15, 16, 17, 18]]
    assert got.record()["window_start"] == "none"


def test_window_start_errors_are_one_line_naming_the_option():
    with pytest.raises(ValueError, match=r"^window_start: expected one of model, bos, none, got"):
        corpus_windows(WordTokenizer(bos=1), DOCS, 4, start="first")
    with pytest.raises(ValueError, match=r"^window_start bos: the tokenizer has no BOS token"):
        corpus_windows(WordTokenizer(cls=101, sep=102), DOCS, 4, start="bos")
    with pytest.raises(
        ValueError, match=r"^seq_len=2: the window frame '1 \.\.\. 2' takes 2 tokens"
    ):
        corpus_windows(WordTokenizer(prefix=[1], suffix=[2]), DOCS, 2)
