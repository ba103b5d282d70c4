"""Text corpora for the attention analyses, read the way language-model evaluation reads them.

A corpus is a ``.txt``, ``.jsonl`` or ``.parquet`` file, or a folder of them (searched
recursively, files in sorted path order). Its *documents* are:

* ``.txt``: the paragraphs of the file, separated by one or more blank lines (a file without
  blank lines is one document; line breaks inside a paragraph are kept);
* ``.jsonl``: the ``text`` field of every non-empty line (a JSON object);
* ``.parquet``: the ``text`` column, read in record batches.

:func:`corpus_windows` tokenises the documents (no special tokens inside a document), joins them
into one token stream with the tokenizer's separator between documents, and cuts the stream into
non-overlapping windows of ``T`` tokens (the tail shorter than ``T`` is dropped). The separator
is the tokenizer's ``sep`` token where it defines one (BERT's ``[SEP]``), else its EOS token
(GPT-2's ``<|endoftext|>``, LLaMA's ``</s>``), else its BOS token. Only as many documents are read
and tokenised as the requested windows need, so a large corpus costs what its first windows cost.

How each window starts (``start``, :data:`WINDOW_STARTS`; the reason is in docs/method.md):

* ``"model"`` (the default): every window begins and ends the way the tokenizer frames a text
  (``tokenizer(text)`` against ``tokenizer(text, add_special_tokens=False)``): BOS for tokenizers
  that add one (LLaMA, Gemma), nothing for those that add nothing (GPT-2, Qwen, SmolLM2),
  ``[CLS] ... [SEP]`` for BERT-like encoders. A window holds ``T`` tokens in all: ``T`` minus the
  frame's tokens come from the stream.
* ``"bos"``: every window begins with the tokenizer's BOS token, whatever the tokenizer adds.
* ``"none"``: the stream alone, begun once with the BOS (or CLS) token where the tokenizer has
  one; the windows after the first begin mid-stream (artent's windows before window starts).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artent.data.corpus_files import jsonl_documents, parquet_documents, txt_documents

__all__ = [
    "CORPUS_SUFFIXES",
    "DEFAULT_WINDOW_START",
    "WINDOW_STARTS",
    "Corpus",
    "CorpusWindows",
    "WindowFrame",
    "check_window_start",
    "corpus_windows",
    "document_tokens",
    "read_corpus",
    "stream_tokens",
    "window_frame",
]

CORPUS_SUFFIXES = (".txt", ".jsonl", ".parquet")
#: How a window starts: as the tokenizer frames a text, with BOS, or mid-stream (see above).
WINDOW_STARTS = ("model", "bos", "none")
DEFAULT_WINDOW_START = "model"
# A text every tokenizer turns into at least one ordinary token, to read its frame off.
_FRAME_PROBE = "The cat sat on the mat."


@dataclass(frozen=True)
class Corpus:
    """Documents to read attention on: files on disk, or texts already in memory.

    Build it with :func:`read_corpus` (a path) or :meth:`from_texts` (a list of strings).

    Attributes:
        source: what error messages name (the path, or ``"texts"``).
        files: the corpus files in reading order (empty for texts in memory).
        texts: the documents given in memory (``None`` for files).
    """

    source: str
    files: tuple[Path, ...] = ()
    texts: tuple[str, ...] | None = None

    @classmethod
    def from_texts(cls, texts: Iterable[str], source: str = "texts") -> Corpus:
        """A corpus of the given documents (each string one document)."""
        if isinstance(texts, str):
            raise ValueError(f"{source}: expected a list of documents, got one string")
        docs = tuple(texts)
        if not docs:
            raise ValueError(f"{source}: expected a non-empty list of strings")
        for i, doc in enumerate(docs):  # never str(): bytes and None are not text
            if not isinstance(doc, str):
                hint = " (decode bytes first)" if isinstance(doc, (bytes, bytearray)) else ""
                raise TypeError(f"{source}[{i}] must be a str, got {type(doc).__name__}{hint}")
        return cls(source, (), docs)

    def documents(self) -> Iterator[str]:
        """Every document, in order, read lazily (a file is opened when its turn comes).

        Raises:
            ValueError: a ``.jsonl`` line that is not a JSON object with a string ``text`` (named
                by file and line), a ``.parquet`` file without a string ``text`` column.
        """
        if self.texts is not None:
            yield from self.texts
            return
        for path in self.files:
            if path.suffix == ".txt":
                yield from txt_documents(path)
            elif path.suffix == ".jsonl":
                yield from jsonl_documents(path)
            else:
                yield from parquet_documents(path)


def read_corpus(path: str | Path) -> Corpus:
    """The corpus at ``path``: a ``.txt``, ``.jsonl`` or ``.parquet`` file, or a folder of them.

    Only the file names are checked here; the contents are read by :meth:`Corpus.documents`.

    Raises:
        ValueError: no such path, another suffix, or a folder holding no corpus file.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in CORPUS_SUFFIXES)
        if not files:
            raise ValueError(f"texts={p}: the folder holds no {', '.join(CORPUS_SUFFIXES)} file")
        return Corpus(str(p), tuple(files))
    if not p.is_file():
        raise ValueError(f"texts={p}: no such file or folder")
    if p.suffix not in CORPUS_SUFFIXES:
        raise ValueError(
            f"texts={p}: expected a {', '.join(CORPUS_SUFFIXES)} file or a folder of them, "
            f"got '{p.suffix or p.name}'"
        )
    return Corpus(str(p), (p,))


#: Characters of a document tokenised in one call: a longer document is tokenised a piece at a
#: time, each piece cut at a space, and only as far as the windows read.
CHUNK_CHARS = 1 << 15
# a cut goes before a space that follows a non-space and precedes one: every pre-tokenizer of
# transformers' tokenizers (byte-level BPE, Metaspace, WordPiece) starts a token there
_CUT = re.compile(r"(?<=\S) (?=\S)")


def document_tokens(
    tokenizer: Any, doc: str, limit: int | None = None, chunk: int = CHUNK_CHARS
) -> Iterator[list[int]]:
    """The tokens of one document (no special tokens), in pieces of bounded size.

    A document of at most ``chunk`` characters is tokenised in one call, as a whole; a longer
    one in pieces of about ``chunk`` characters cut before a space between two words, which
    gives the whole document's tokens for tokenizers that start a token at every such space (a
    piece without any space is cut at ``chunk`` characters). Nothing past ``limit`` tokens, nor
    past what the caller reads, is tokenised.

    Args:
        tokenizer: a transformers tokenizer.
        doc: the document.
        limit: stop once this many tokens are yielded (``None``: the whole document).
        chunk: characters per piece.
    """
    done, start = 0, 0
    while start < len(doc) and (limit is None or done < limit):
        end = len(doc) if len(doc) - start <= chunk else _cut_before(doc, start, chunk)
        ids = list(tokenizer(doc[start:end], add_special_tokens=False, verbose=False)["input_ids"])
        if limit is not None:
            ids = ids[: limit - done]
        done += len(ids)
        start = end
        if ids:
            yield ids


def _cut_before(doc: str, start: int, chunk: int) -> int:
    """Where the piece from ``start`` ends: the last word-separating space in its window."""
    last = None
    for m in _CUT.finditer(doc, start + 1, start + chunk):
        last = m.start()
    return last if last is not None else start + chunk


@dataclass(frozen=True)
class WindowFrame:
    """The special tokens around every window: ``prefix + body + suffix`` (``T`` in all).

    Attributes:
        start: the rule that made it (:data:`WINDOW_STARTS`).
        prefix: token ids each window begins with.
        suffix: token ids each window ends with.
        tokens: the same tokens as text, ``"<s> ... "`` style, for run records.
    """

    start: str
    prefix: tuple[int, ...] = ()
    suffix: tuple[int, ...] = ()
    tokens: str = "..."

    @property
    def size(self) -> int:
        return len(self.prefix) + len(self.suffix)


def check_window_start(start: Any, name: str = "window_start") -> str:
    """``start`` if it is one of :data:`WINDOW_STARTS`, else a ValueError naming ``name``."""
    if not isinstance(start, str) or start not in WINDOW_STARTS:
        raise ValueError(f"{name}: expected one of {', '.join(WINDOW_STARTS)}, got {start!r}")
    return start


def _token_text(tokenizer: Any, ids: Iterable[int]) -> list[str]:
    convert = getattr(tokenizer, "convert_ids_to_tokens", None)
    return [str(convert(i)) if convert else str(i) for i in ids]


def window_frame(tokenizer: Any, start: str = DEFAULT_WINDOW_START) -> WindowFrame:
    """How each window starts and ends under ``start`` (see the module docstring).

    ``"model"`` reads the frame off the tokenizer: ``tokenizer(probe)`` against
    ``tokenizer(probe, add_special_tokens=False)``; the tokens before and after the bare text
    are the frame (transformers' post-processor: BOS for LLaMA, ``[CLS]``/``[SEP]`` for BERT).

    Raises:
        ValueError: an unknown ``start``; ``"bos"`` for a tokenizer without a BOS token; a
            tokenizer whose framed text does not contain its bare text.
    """
    check_window_start(start)
    if start == "none":
        return WindowFrame("none")
    if start == "bos":
        bos = _special_id(tokenizer, "bos")
        if bos is None:
            raise ValueError(
                "window_start bos: the tokenizer has no BOS token; use 'model' (the frame the "
                "tokenizer itself adds) or 'none'"
            )
        return WindowFrame("bos", (bos,), (), " ".join([*_token_text(tokenizer, [bos]), "..."]))
    bare = list(tokenizer(_FRAME_PROBE, add_special_tokens=False)["input_ids"])
    framed = list(tokenizer(_FRAME_PROBE, add_special_tokens=True)["input_ids"])
    at = next(
        (i for i in range(len(framed) - len(bare) + 1) if framed[i : i + len(bare)] == bare),
        None,
    )
    if not bare or at is None:
        raise ValueError(
            "window_start model: the tokenizer's framed text does not contain its bare text, so "
            "its frame cannot be read off; use 'bos' or 'none'"
        )
    prefix, suffix = tuple(framed[:at]), tuple(framed[at + len(bare) :])
    text = " ".join([*_token_text(tokenizer, prefix), "...", *_token_text(tokenizer, suffix)])
    return WindowFrame("model", prefix, suffix, text)


@dataclass
class CorpusWindows:
    """Token windows cut from a corpus.

    Attributes:
        ids: ``[windows, T]`` ``torch.long`` token ids.
        seq_len: ``T``.
        n_tokens: tokens read from the corpus (all of it when ``exhausted``).
        exhausted: the whole corpus was read (fewer windows than asked, or just enough).
        requested: the number of windows asked for (``None``: as many as the corpus gives).
        source: the corpus's name.
        frame: how every window starts and ends (:class:`WindowFrame`).
    """

    ids: Any
    seq_len: int
    n_tokens: int
    exhausted: bool
    requested: int | None
    source: str
    frame: WindowFrame = WindowFrame("none")

    @property
    def n_windows(self) -> int:
        return int(self.ids.shape[0])

    @property
    def window_start(self) -> str:
        return self.frame.start

    def record(self) -> dict[str, Any]:
        """What a run record keeps of these windows: the rule and the tokens it put there."""
        return dict(
            window_start=self.frame.start,
            window_prefix=list(self.frame.prefix),
            window_suffix=list(self.frame.suffix),
            window_frame=self.frame.tokens,
        )

    @property
    def note(self) -> str | None:
        """One line saying that fewer windows than asked were found; ``None`` otherwise."""
        if self.requested is None or self.n_windows >= self.requested:
            return None
        return (
            f"texts={self.source}: {self.n_tokens} tokens make {self.n_windows} window(s) of "
            f"{self.seq_len} tokens, fewer than n_texts={self.requested}; using "
            f"{self.n_windows}"
        )


def _special_id(tokenizer: Any, *names: str) -> int | None:
    for name in names:
        value = getattr(tokenizer, f"{name}_token_id", None)
        if isinstance(value, int):
            return value
    return None


def stream_tokens(
    tokenizer: Any, documents: Iterable[str], *, start_token: bool = True
) -> Iterator[list[int]]:
    """The corpus's token stream, in pieces: the start token, then each document and separator.

    The stream is ``[BOS or CLS] doc_1 [SEP] doc_2 [SEP] ... doc_n``, each document tokenised
    without special tokens (see the module docstring for the separator); ``start_token=False``
    leaves the first token out (the windows then bring their own frame).
    """
    start = _special_id(tokenizer, "bos", "cls") if start_token else None
    separator = _special_id(tokenizer, "sep", "eos", "bos")
    if start is not None:
        yield [start]
    for i, doc in enumerate(documents):
        if i and separator is not None:
            yield [separator]
        yield from document_tokens(tokenizer, doc)


def corpus_windows(
    tokenizer: Any,
    corpus: Corpus | Iterable[str],
    seq_len: int,
    max_windows: int | None = None,
    *,
    start: str = DEFAULT_WINDOW_START,
) -> CorpusWindows:
    """Non-overlapping windows of ``seq_len`` tokens from the corpus's token stream.

    Args:
        tokenizer: a transformers tokenizer (``tokenizer(text)["input_ids"]``).
        corpus: a :class:`Corpus`, or a list of documents.
        seq_len: tokens per window ``T``, the frame's special tokens included.
        max_windows: at most this many windows (the first ones); ``None`` for all.
        start: how each window starts (:data:`WINDOW_STARTS`, see the module docstring);
            ``"none"`` gives the stream cut as it is.

    Returns:
        :class:`CorpusWindows`; its ``note`` is set when fewer than ``max_windows`` were found,
        its ``frame`` says what each window begins and ends with.

    Raises:
        ValueError: the corpus has fewer tokens than one window needs (its token count is named),
            a document that cannot be read, an unknown ``start``, ``"bos"`` without a BOS token,
            or a frame that leaves no room for text in ``seq_len`` tokens.
    """
    import torch

    if not isinstance(corpus, Corpus):
        corpus = Corpus.from_texts(corpus)
    if seq_len < 1:
        raise ValueError(f"seq_len=: expected a positive integer, got {seq_len!r}")
    frame = window_frame(tokenizer, start)
    body = seq_len - frame.size
    if body < 1:
        raise ValueError(
            f"seq_len={seq_len}: the window frame '{frame.tokens}' takes {frame.size} tokens, "
            "leaving none for text"
        )
    needed = None if max_windows is None else max_windows * body
    tokens: list[int] = []
    exhausted = True
    for piece in stream_tokens(tokenizer, corpus.documents(), start_token=start == "none"):
        tokens += piece
        if needed is not None and len(tokens) >= needed:
            exhausted = False
            break
    n_windows = len(tokens) // body
    if max_windows is not None:
        n_windows = min(n_windows, max_windows)
    if n_windows == 0:
        raise ValueError(
            f"texts={corpus.source}: the corpus has {len(tokens)} tokens, fewer than one window "
            f"of seq_len={seq_len}"
            + (f" ({body} of text inside the frame '{frame.tokens}')" if frame.size else "")
        )
    ids = torch.tensor(tokens[: n_windows * body], dtype=torch.long).reshape(n_windows, body)
    if frame.size:
        ids = torch.cat(
            [
                torch.tensor(frame.prefix, dtype=torch.long).expand(n_windows, -1),
                ids,
                torch.tensor(frame.suffix, dtype=torch.long).expand(n_windows, -1),
            ],
            dim=1,
        )
    return CorpusWindows(ids, seq_len, len(tokens), exhausted, max_windows, corpus.source, frame)
