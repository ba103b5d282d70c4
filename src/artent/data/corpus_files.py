"""The documents of each kind of corpus file (:mod:`artent.data.corpus` reads a corpus with them).

Every error names the file after the ``texts=`` parameter it came in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from artent.errors import one_line


def txt_documents(path: Path) -> Iterator[str]:
    """The paragraphs of a ``.txt`` file: runs of lines that are not blank, read a line at a
    time (only as far as the windows read)."""
    lines: list[str] = []
    for line in text_lines(path):
        if line.strip(" \t\r\f\v"):
            lines.append(line)
        elif lines:
            if "\n".join(lines).strip():
                yield "\n".join(lines).strip()
            lines = []
    if lines and "\n".join(lines).strip():
        yield "\n".join(lines).strip()


def text_lines(path: Path) -> Iterator[str]:
    """The lines of a UTF-8 file, without their ``\n`` (``\r\n`` too), read one at a time."""
    offset = 0
    try:
        with open(path, "rb") as f:
            for raw in f:
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise ValueError(
                        f"texts={path}: not UTF-8 text ({e.reason} at byte {offset + e.start})"
                    ) from None
                offset += len(raw)
                yield line[:-2] if line.endswith("\r\n") else line.removesuffix("\n")
    except OSError as e:
        raise ValueError(f"texts={path}: cannot read ({e.strerror or e})") from None


def jsonl_documents(path: Path) -> Iterator[str]:
    """The non-blank ``text`` field of every non-empty line of a ``.jsonl`` file."""
    for number, line in enumerate(text_lines(path), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as e:
            raise ValueError(
                f"texts={path}: line {number} is not valid JSON ({one_line(e)})"
            ) from None
        text = record.get("text") if isinstance(record, dict) else None
        if not isinstance(text, str):
            raise ValueError(f"texts={path}: line {number} has no string 'text' field")
        if text.strip():
            yield text


def parquet_documents(path: Path) -> Iterator[str]:
    """The non-blank values of a ``.parquet`` file's ``text`` column, a record batch at a time."""
    import pyarrow.parquet as pq  # lazy: pyarrow takes a while to import, for this kind alone

    try:
        table = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a file that is not Parquet
        raise ValueError(f"texts={path}: not a readable Parquet file ({e})") from None
    field = next((f for f in table.schema_arrow if f.name == "text"), None)
    if field is None:
        raise ValueError(f"texts={path}: no 'text' column")
    if str(field.type) not in ("string", "large_string", "string_view"):
        raise ValueError(f"texts={path}: column 'text' holds {field.type}, not strings")
    batches = table.iter_batches(columns=["text"], batch_size=256)
    while True:
        try:
            batch = next(batches, None)
        except Exception as e:  # a corrupt page: pyarrow's message alone names no file
            raise ValueError(
                f"texts={path}: cannot read its 'text' column ({one_line(e, whole=True)})"
            ) from None
        if batch is None:
            return
        for text in batch.column(0).to_pylist():
            if text is not None and text.strip():
                yield text
