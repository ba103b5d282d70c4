"""Reading chat datasets and normalising them to ``[{role, content}, ...]`` conversations.

Two input formats are understood, told apart by their columns:

* ``"tulu"`` (the Tulu 3 SFT mixture): a ``messages`` column holding ``[{role, content}, ...]``
  with roles ``system``, ``user``, ``assistant``;
* ``"openthoughts"`` (OpenThoughts3): a ``conversations`` column holding ``[{from, value}, ...]``
  with ``from`` in ``system``, ``human``/``user``, ``gpt``/``assistant``.

Every example comes out as a list of ``{"role": ..., "content": ...}`` dicts whose roles are
``system``, ``user`` or ``assistant`` (the roles of :mod:`artent.data.template`). Sources are local
``.jsonl`` / ``.json`` / ``.parquet`` files, directories of them, or (only when the source is not a
local path) a dataset name on a hub, read through ``datasets.load_dataset``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import Any

import numpy as np

from artent.errors import one_line

Message = dict[str, str]
Conversation = list[Message]

SUPPORTED_EXTENSIONS = (".jsonl", ".json", ".parquet")
FORMATS = ("tulu", "openthoughts")

# column holding the conversation, and the keys of one turn, per format
_COLUMN = {"tulu": "messages", "openthoughts": "conversations"}
_TURN_KEYS = {"tulu": ("role", "content"), "openthoughts": ("from", "value")}
# accepted role spellings per format, mapped to the template's roles
_ROLE_MAP = {
    "tulu": {"system": "system", "user": "user", "assistant": "assistant"},
    "openthoughts": {
        "system": "system",
        "human": "user",
        "user": "user",
        "gpt": "assistant",
        "assistant": "assistant",
    },
}


class DataError(ValueError):
    """Bad training data or data options; the one-line message names the file or source at fault."""


@dataclass
class Conversations:
    """Normalised conversations of one source, split into training and held-out parts.

    Attributes:
        train: conversations to train on, in source order.
        heldout: conversations held out for evaluation, in source order; disjoint from ``train``.
        format: ``"tulu"`` or ``"openthoughts"``, the format the source was read in.
        source: the file, directory or hub name the conversations came from.
    """

    train: list[Conversation]
    heldout: list[Conversation]
    format: str
    source: str
    heldout_fraction: float = field(default=0.0)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise DataError(
                f"{self.source}: unknown format {self.format!r}; expected tulu/openthoughts"
            )

    def __len__(self) -> int:
        return len(self.train) + len(self.heldout)


def detect_format(columns: Iterable[str], where: str) -> str:
    """Tell the format of a table from its column names.

    Args:
        columns: the column names (for JSON, the keys seen in any row).
        where: the file or source, named in errors.

    Returns:
        ``"tulu"`` (a ``messages`` column) or ``"openthoughts"`` (a ``conversations`` column).

    Raises:
        DataError: neither column, or both, are present.
    """
    cols = sorted(set(columns))
    has = {fmt: _COLUMN[fmt] in cols for fmt in FORMATS}
    if has["tulu"] and has["openthoughts"]:
        raise DataError(
            f"{where}: ambiguous format, both 'messages' (Tulu 3) and 'conversations' "
            "(OpenThoughts3) columns are present"
        )
    for fmt in FORMATS:
        if has[fmt]:
            return fmt
    raise DataError(
        f"{where}: neither Tulu 3 ('messages') nor OpenThoughts3 ('conversations') format; "
        f"columns seen: {', '.join(cols) if cols else '(none)'}"
    )


def normalise_example(row: Any, fmt: str, where: str, row_number: int) -> Conversation:
    """Normalise one row of a ``fmt`` table to ``[{role, content}, ...]``.

    Args:
        row: the row, a mapping from column name to value.
        fmt: ``"tulu"`` or ``"openthoughts"``.
        where: the file or source, named in errors.
        row_number: 1-based row number (for JSONL, the line number), named in errors.

    Raises:
        DataError: the conversation column is missing or malformed, a role is unknown, or the
            conversation has no assistant turn.
    """
    column = _COLUMN[fmt]
    role_key, content_key = _TURN_KEYS[fmt]
    at = f"{where}: row {row_number}"
    if not isinstance(row, dict):
        raise DataError(
            f"{at}: expected an object with a {column!r} column, got {type(row).__name__}"
        )
    if column not in row or row[column] is None:
        raise DataError(f"{at}: missing column {column!r}")
    turns = row[column]
    if not isinstance(turns, list | tuple) or not turns:
        raise DataError(f"{at}: column {column!r} must be a non-empty list of turns")
    roles = _ROLE_MAP[fmt]
    out: Conversation = []
    for t, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise DataError(f"{at}: {column}[{t}] is a {type(turn).__name__}, expected an object")
        for key in (role_key, content_key):
            if not isinstance(turn.get(key), str):
                raise DataError(f"{at}: {column}[{t}] has no string {key!r}")
        role = turn[role_key]
        if role not in roles:
            raise DataError(
                f"{at}: {column}[{t}] has unknown {role_key} {role!r}; "
                f"expected one of {', '.join(roles)}"
            )
        out.append({"role": roles[role], "content": turn[content_key]})
    if not any(m["role"] == "assistant" for m in out):
        raise DataError(f"{at}: conversation has no assistant turn")
    return out


def _read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line_number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield line_number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{path}: row {line_number} is not valid JSON ({exc.msg})"
                ) from None


def _read_json(path: Path) -> Iterator[tuple[int, Any]]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        # `datasets` reads JSON Lines from .json files too; so do we
        yield from _read_jsonl(path)
        return
    if isinstance(data, dict):
        # {"data": [...]}-style wrappers: one key holding the list of rows
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(data) == 1 and len(lists) == 1:
            data = lists[0]
        else:
            yield 1, data  # a single JSON object is one row
            return
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of rows, got {type(data).__name__}")
    yield from enumerate(data, start=1)


def _utf8(path: Path, rows: Iterator[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
    """``rows`` of a JSON file, with a file that is not UTF-8 text (binary) reported by name."""
    try:
        yield from rows
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file (binary?)") from None


def _read_parquet(path: Path) -> tuple[list[str], Iterator[tuple[int, Any]]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    if parquet.metadata.num_rows == 0:
        raise DataError(f"{path}: file is empty (no rows)")

    def rows() -> Iterator[tuple[int, Any]]:
        # batch by batch, so that `limit` does not read a multi-GB file whole
        row_number = 0
        batches = parquet.iter_batches(batch_size=1024)
        while True:
            try:
                batch = next(batches, None)
            except Exception as exc:  # a corrupt page: pyarrow's message names no file
                why = one_line(exc, whole=True)
                raise DataError(
                    f"{path}: cannot read rows after row {row_number} ({why})"
                ) from None
            if batch is None:
                return
            for row in batch.to_pylist():
                row_number += 1
                yield row_number, row

    return list(parquet.schema_arrow.names), rows()


def _read_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, Any]]]:
    """Columns and a lazy iterator of ``(row_number, row)`` pairs of one file.

    For JSON the columns are the keys of the first row; a later row missing one is reported by
    :func:`normalise_example` with its row number.
    """
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise DataError(
            f"{path}: unsupported file extension {path.suffix or '(none)'!r}; "
            f"expected one of {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    if suffix == ".parquet":
        return _read_parquet(path)
    rows = _utf8(path, _read_jsonl(path) if suffix == ".jsonl" else _read_json(path))
    first = next(rows, None)
    if first is None:
        raise DataError(f"{path}: file is empty (no rows)")
    columns = sorted(first[1]) if isinstance(first[1], dict) else []
    return columns, chain([first], rows)


_SPLIT_NAMES = ("train", "test", "validation", "valid", "dev", "eval")


def _split_of(path: Path, directory: Path) -> str | None:
    """The split a file is named for (`train.jsonl`, `train-00000-of-00001.parquet`, `train/`)."""
    for name in (path.stem, path.stem.split("-")[0], *path.relative_to(directory).parts[:-1]):
        if name in _SPLIT_NAMES:
            return name
    return None


def _files_of(directory: Path, split: str) -> list[Path]:
    files = sorted(
        p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS
    )
    if not files:
        raise DataError(f"{directory}: directory holds no {'/'.join(SUPPORTED_EXTENSIONS)} files")
    splits = {p: _split_of(p, directory) for p in files}
    in_split = [p for p in files if splits[p] == split or p.stem == split]
    if in_split:
        return in_split
    found = sorted({s for s in splits.values() if s is not None})
    if found:
        # never fall back to reading, say, the test files as training data
        raise DataError(
            f"{directory}: no files for split {split!r}; files are named for {', '.join(found)}"
        )
    return files


def _looks_local(source: str | os.PathLike[str]) -> bool:
    if isinstance(source, os.PathLike):
        return True
    s = str(source)
    return (
        os.path.exists(s)
        or s.startswith((".", "/", "~", "\\"))
        or Path(s).suffix.lower() in SUPPORTED_EXTENSIONS
    )


def _hub_rows(
    name: str, split: str, limit: int | None
) -> tuple[list[str], Iterator[tuple[int, Any]]]:
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"{name}: not a local file or directory, and reading a hub dataset needs the "
            "`datasets` package: pip install datasets"
        ) from None
    # streaming reads only the first `limit` rows instead of downloading the whole dataset
    ds = datasets.load_dataset(name, split=split, streaming=limit is not None)
    rows = list(enumerate(islice(iter(ds), limit), start=1))
    if not rows:
        raise DataError(f"{name}: split {split!r} is empty")
    columns = list(getattr(ds, "column_names", None) or [])
    columns = columns or sorted({k for _, r in rows if isinstance(r, dict) for k in r})
    return columns, iter(rows)


def split_heldout(
    items: list[Any], heldout_fraction: float, seed: int
) -> tuple[list[Any], list[Any]]:
    """Split ``items`` into ``(train, heldout)`` deterministically.

    The held-out part is ``round(heldout_fraction * n)`` items (at least one when the fraction is
    positive and ``n >= 2``, never all of them) drawn by a permutation seeded with ``seed``; both
    parts keep the source order.
    """
    if not 0.0 <= heldout_fraction < 1.0:
        raise DataError(f"heldout_fraction={heldout_fraction} must lie in [0, 1)")
    n = len(items)
    n_heldout = int(round(heldout_fraction * n))
    if heldout_fraction > 0:
        n_heldout = max(n_heldout, 1)
    n_heldout = min(n_heldout, n - 1) if n > 0 else 0
    perm = np.random.default_rng(seed).permutation(n)
    heldout_idx = set(perm[:n_heldout].tolist())
    train = [x for i, x in enumerate(items) if i not in heldout_idx]
    heldout = [x for i, x in enumerate(items) if i in heldout_idx]
    return train, heldout


def load_conversations(
    source: str | os.PathLike[str],
    *,
    split: str = "train",
    heldout_fraction: float = 0.1,
    seed: int = 0,
    limit: int | None = None,
) -> Conversations:
    """Read a Tulu 3 or OpenThoughts3 dataset and split off a held-out part.

    Args:
        source: a local ``.jsonl`` / ``.json`` / ``.parquet`` file, a directory of them (read
            recursively in sorted order), or, only when ``source`` is not a local path, a hub
            dataset name (read with ``datasets.load_dataset``; needs the ``datasets`` package).
        split: the hub split to read. For a directory, files named after the split
            (``train.jsonl``, ``train-00000-of-00001.parquet``, ``train/...``) are read when any
            exist, else all files. Ignored for a single file.
        heldout_fraction: fraction of conversations held out, in ``[0, 1)``.
        seed: seed of the held-out draw; the same seed, source and limit give the same split.
        limit: read only the first ``limit`` conversations (before splitting).

    Returns:
        The normalised conversations, split into ``train`` and ``heldout``.

    Raises:
        DataError: a file is in neither format, malformed, empty or of an unsupported type; a
            local path does not exist; ``datasets`` is missing for a hub name; bad options.
    """
    if limit is not None and limit < 1:
        raise DataError(f"{source}: limit={limit} must be a positive number of conversations")
    if not 0.0 <= heldout_fraction < 1.0:
        raise DataError(f"{source}: heldout_fraction={heldout_fraction} must lie in [0, 1)")

    readers: Iterator[tuple[str, Path | None]]
    if _looks_local(source):
        path = Path(source).expanduser()
        if not path.exists():
            raise DataError(f"{path}: no such file or directory")
        files = _files_of(path, split) if path.is_dir() else [path]
        # read lazily, one file at a time, so `limit` stops early
        readers = ((str(f), f) for f in files)
    else:
        readers = iter([(str(source), None)])

    conversations: list[Conversation] = []
    fmt: str | None = None
    fmt_file = ""
    for where, file in readers:
        columns, rows = _read_rows(file) if file is not None else _hub_rows(where, split, limit)
        file_fmt = detect_format(columns, where)
        if fmt is not None and file_fmt != fmt:
            raise DataError(
                f"{where}: {file_fmt} format, but {fmt_file} is in {fmt} format; "
                "a source must hold one format"
            )
        fmt, fmt_file = file_fmt, where
        for row_number, row in rows:
            conversations.append(normalise_example(row, file_fmt, where, row_number))
            if limit is not None and len(conversations) >= limit:
                break
        if limit is not None and len(conversations) >= limit:
            break
    assert fmt is not None  # every reader yields rows or raises
    train, heldout = split_heldout(conversations, heldout_fraction, seed)
    return Conversations(
        train=train,
        heldout=heldout,
        format=fmt,
        source=str(source),
        heldout_fraction=heldout_fraction,
    )
