"""The records that say what made a folder, and the one reader of them and of option files.

A training run has ``run.json`` (its command, config and versions; ``artent internal``,
``external``, ``nohair`` and the training callback write one too), a study ``study.json``
(``artent demo``), a sweep ``sweep.json``. :func:`read_record` reads any of them with one error
path; :func:`folder_owner` tells whose results a folder holds; :func:`read_mapping` reads the
JSON or YAML option files (study configs, sweep specs, training configs).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from artent.errors import one_line
from artent.folders.atomic import write_json
from artent.folders.layout import RUN_RECORD, STUDY_RECORD, SWEEP_RECORD

PACKAGES = ("artent", "numpy", "scipy", "torch", "transformers", "peft", "safetensors", "pandas")
#: Files that mark a folder as an artent command's; ``run.json`` names its command inside.
RECORDS = {RUN_RECORD: None, STUDY_RECORD: "demo", SWEEP_RECORD: "sweep"}


def versions() -> dict[str, str]:
    """Python, platform and the versions of the packages a result depends on."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_run_record(out_dir: str | os.PathLike, command: str, config: dict[str, Any]) -> Path:
    """Record the exact config and versions that made a run folder (``run.json``)."""
    return write_json(
        Path(out_dir) / RUN_RECORD,
        {"command": command, "argv": sys.argv, "config": config, "versions": versions()},
    )


def read_record(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON record holding an object (``run.json``, ``study.json``, ``sweep.json``,
    ``row.json``), or a one-line ValueError naming the file.

    Args:
        path: the record file.

    Raises:
        ValueError: ``PATH: cannot parse JSON (...)`` or ``PATH: expected a JSON object``.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot parse JSON ({' '.join(str(e).split())})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def folder_owner(folder: str | os.PathLike) -> str | None:
    """The artent command whose results ``folder`` holds, or ``None``.

    A ``run.json`` that is not an artent record reads as ``"unknown"`` (never overwritten).
    """
    folder = Path(folder)
    for name, command in RECORDS.items():
        record = folder / name
        if not record.is_file():
            continue
        if command is not None:
            return command
        try:
            found = read_record(record).get("command")
        except ValueError:
            found = None
        return found if isinstance(found, str) else "unknown"
    return None


def read_mapping(
    path: str | os.PathLike, what: str, expected: str, *, allow_empty: bool = False
) -> dict[str, Any]:
    """A JSON or YAML (``.yaml``/``.yml``) file holding a mapping, or a one-line ValueError.

    Args:
        path: the file.
        what: how errors name the file (``"config file"``, ``"sweep spec"``).
        expected: what the top level must be, for the error (``"a mapping of options"``).
        allow_empty: an empty YAML file reads as ``{}`` instead of an error.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} {path}: no such file")
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml  # optional until a YAML file is read

            data = yaml.safe_load(path.read_text())
        else:
            data = json.loads(path.read_text())
    except Exception as e:  # noqa: BLE001 - any parse error is the file's fault
        raise ValueError(f"{what} {path}: cannot parse ({one_line(e)})") from None
    if data is None and allow_empty:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{what} {path}: expected {expected}")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:  # YAML reads `1: 2` as an integer key
        raise ValueError(f"{what} {path}: key {bad[0]!r} is not a name (expected {expected})")
    return data


def read_table(path: str | os.PathLike, columns: tuple[str, ...] = ()):
    """A Parquet table (pandas DataFrame) holding ``columns``, or a one-line ValueError naming
    the file: ``PATH: cannot read (...)`` or ``PATH: missing column 'NAME'``."""
    import pandas as pd  # lazy: keeps `import artent` light

    try:
        frame = pd.read_parquet(path)
    except Exception as e:  # noqa: BLE001 - any read error is the file's fault
        raise ValueError(f"{path}: cannot read ({one_line(e)})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column {missing[0]!r}")
    return frame
