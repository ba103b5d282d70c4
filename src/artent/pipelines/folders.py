"""What a study and a sweep share: one folder of many training runs that a rerun resumes.

Both refuse a folder that holds another config (their record says which), never replace a
report.html artent did not write, lock the folder while they write it, keep it on a failure once
any of its runs has a checkpoint (trained work to resume from), and clear what killed writers
left (their runs clean themselves).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from artent.folders.claim import Claim, claim_out, remove_stale_temporaries
from artent.folders.layout import any_checkpoint
from artent.folders.records import read_record
from artent.report.html import REPORT_FILE, check_report_replaceable


def check_resumable(
    out: Path, record: str, matches: Callable[[dict[str, Any]], bool], refusal: str
) -> dict[str, Any] | None:
    """The record an earlier run of this pipeline left in ``out`` (``None``: a new folder).

    Args:
        out: the study or sweep folder.
        record: its record's file name (``study.json``, ``sweep.json``).
        matches: whether the old record is of this very config (options added since count as
            their defaults); a ``KeyError`` or ``TypeError`` reads as no.
        refusal: what the folder holds otherwise (``"a study with another config"``).

    Raises:
        ValueError: ``--out OUT: holds REFUSAL; use a new folder``, a record that is no JSON
            object, or a report.html artent did not write.
    """
    old = None
    if (out / record).is_file():
        old = read_record(out / record)
        try:
            same = matches(old)
        except (KeyError, TypeError):
            same = False
        if not same:
            raise ValueError(f"--out {out}: holds {refusal}; use a new folder")
    check_report_replaceable(out / REPORT_FILE)
    return old


@contextmanager
def claim_runs_folder(
    out: Path,
    command: str,
    runs: str,
    *,
    writes: Iterable[str],
    inputs: Iterable[str | Path | None] = (),
) -> Iterator[Claim]:
    """Claim and lock ``out`` for a pipeline whose training runs sit in ``out/runs``.

    Args:
        out: the folder.
        command: ``demo`` or ``sweep``.
        runs: the subfolder of its run folders (``runs``, ``points``).
        writes: what the pipeline writes (see :func:`artent.folders.claim.check_out`).
        inputs: what it reads.
    """
    with claim_out(out, command, inputs=inputs, writes=writes, record=False) as claim:
        # a pipeline that fails before any run has a checkpoint leaves nothing behind
        claim.keep = lambda: any_checkpoint(out / runs)
        remove_stale_temporaries(out, skip=(runs,))
        yield claim
