"""Helpers of the reliability tests: check one-line errors, snapshot files that must come out
byte-identical, and the arguments of a few-second training run."""

from __future__ import annotations

import hashlib
from pathlib import Path


class Result:
    """What one in-process ``artent`` call gave: exit code, stdout, stderr."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"Result(code={self.code}, err={self.err!r})"


def one_line_error(result: Result, *needles: str, code: int = 2) -> str:
    """Assert exit ``code``, exactly one line on stderr naming each of ``needles``, no traceback."""
    assert result.code == code, result
    lines = [ln for ln in result.err.splitlines() if ln.strip()]
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    return lines[0]


def snapshot(*roots: Path) -> dict[str, str]:
    """SHA-256 and mode of every file under ``roots``: compare before and after."""
    out = {}
    for root in roots:
        root = Path(root)
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in paths:
            out[str(p)] = f"{hashlib.sha256(p.read_bytes()).hexdigest()} {p.stat().st_mode:o}"
    return out


def train_args(model, data, out, *extra, quiet: Path | None = None) -> list[str]:
    """A few-second LoRA run of the small tiny model: steps 0..2, checkpoints at 0 and 2.

    Args:
        quiet: a folder to write a config file into that turns the progress bar off (so that
            stderr holds nothing but what the test looks at).
    """
    if quiet is not None:
        config = Path(quiet) / "quiet.yaml"
        config.write_text("progress: false\n")
        extra = (*extra, "--config", str(config))
    return [
        "train",
        "--model",
        str(model),
        "--data",
        str(data),
        "--out",
        str(out),
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--seq-len",
        "64",
        "--rank",
        "2",
        "--save-steps",
        "0,2",
        "--eval-every",
        "0",
        *extra,
    ]
