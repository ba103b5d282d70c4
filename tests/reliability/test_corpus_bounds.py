"""The corpus reader reads what the windows need, whatever the line lengths: a 20 MB one-line
corpus gives its first windows in bounded time and tokenises a bounded number of characters,
and they are the windows the whole document's tokenisation would give."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from artent.data.corpus import CHUNK_CHARS, corpus_windows, document_tokens, read_corpus

# the paragraph rule as the reader stated it before it read a line at a time
BLANK_LINES = re.compile(r"\n[ \t\r\f\v]*\n")

WORDS = "the quick brown fox jumps over 12 lazy dogs, and then: runs far away into the woods!"


class Counting:
    """A tokenizer that counts the characters it is given."""

    def __init__(self, tokenizer):
        self.tokenizer, self.chars, self.calls = tokenizer, 0, 0
        for name in ("bos", "eos", "sep", "cls"):
            setattr(self, f"{name}_token_id", getattr(tokenizer, f"{name}_token_id", None))

    def __call__(self, text, **kwargs):
        self.chars += len(text)
        self.calls += 1
        return self.tokenizer(text, **kwargs)


@pytest.fixture(scope="module")
def tokenizer(small_tiny):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(small_tiny)  # byte-level BPE with split digits


def _words(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return list(rng.choice(WORDS.split(), size=n))


def test_a_20_mb_line_gives_its_first_windows_in_bounded_time(tokenizer, tmp_path):
    line = " ".join(_words(4_000_000))[:20_000_000]
    path = tmp_path / "one-line.txt"
    path.write_text(line + "\n")
    counting = Counting(tokenizer)
    start = time.perf_counter()
    # the stream as it is (start none): what is read and tokenised, with no window frame
    windows = corpus_windows(counting, read_corpus(path), seq_len=64, max_windows=8, start="none")
    took = time.perf_counter() - start
    assert windows.n_windows == 8 and not windows.exhausted
    assert counting.chars <= CHUNK_CHARS and counting.calls == 1  # 512 tokens: one piece
    assert took < 5, took  # tokenising the whole line takes minutes and gigabytes
    # the windows are the first tokens of the line tokenised whole (a prefix suffices here)
    whole = tokenizer(line[:200_000], add_special_tokens=False)["input_ids"]
    start_id = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    assert windows.ids.flatten().tolist() == (start_id + whole)[: 8 * 64]


@pytest.mark.parametrize("chunk", [64, 1000])
def test_pieces_give_the_whole_documents_tokens(tokenizer, chunk):
    text = " ".join(_words(3000, seed=1))
    pieces = list(document_tokens(tokenizer, text, chunk=chunk))
    assert len(pieces) > 1
    assert sum(pieces, []) == tokenizer(text, add_special_tokens=False)["input_ids"]
    limited = list(document_tokens(tokenizer, text, limit=100, chunk=chunk))
    assert sum(limited, []) == sum(pieces, [])[:100]


def test_one_line_and_paragraphs_agree_where_they_must(tokenizer, tmp_path):
    """The same words, one line or in paragraphs: the windows before the first paragraph break
    are the same tokens."""
    words = _words(60_000, seed=2)
    one = tmp_path / "one.txt"
    one.write_text(" ".join(words) + "\n")
    paras = tmp_path / "paras.txt"
    paras.write_text("\n\n".join(" ".join(words[i : i + 20_000]) for i in range(0, 60_000, 20_000)))
    first_paragraph = " ".join(words[:20_000])
    n = len(tokenizer(first_paragraph, add_special_tokens=False)["input_ids"]) // 64
    a = corpus_windows(tokenizer, read_corpus(one), 64, n)
    b = corpus_windows(tokenizer, read_corpus(paras), 64, n)
    assert n > 8 and a.n_windows == b.n_windows == n
    assert a.ids.tolist() == b.ids.tolist()


def test_paragraphs_read_a_line_at_a_time_are_the_blank_line_split(tmp_path):
    text = "a b\r\nc\n\n\n d e \n \t\n\r\nf\rg\n\x0bh\n\n  \n"
    path = tmp_path / "t.txt"
    path.write_bytes(text.encode())
    expected = [p.strip() for p in BLANK_LINES.split(text.replace("\r\n", "\n")) if p.strip()]
    assert list(read_corpus(path).documents()) == expected


def test_invalid_utf8_deep_in_a_file_names_its_byte(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"good line\n" * 1000 + b"bad \xff byte\n")
    with pytest.raises(ValueError, match=re.escape(f"texts={path}: not UTF-8 text")) as info:
        list(read_corpus(path).documents())
    assert "at byte 10004" in str(info.value)
