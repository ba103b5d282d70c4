"""Atomic writes: every result file (tables, records, figures) appears complete or not at all.

Every writer here writes to a temporary name beside the target and renames it into place, so an
interrupted or failed run never leaves a half-written result file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from artent.errors import one_line


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; renamed onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp creates 0600; results get the permissions any new file gets here (0644 typically)
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        try:
            yield Path(tmp)
            os.replace(tmp, path)
        except OSError as e:
            if e.filename is None:  # a full disk inside a library's write names no file
                raise named_os_error(e, path) from e
            raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def named_os_error(e: BaseException, path: str | os.PathLike) -> OSError:
    """``e`` (an ``OSError`` naming no file, or a library's write failure) as an ``OSError``
    naming ``path``, so that the one-line error says which file could not be written."""
    errno = getattr(e, "errno", None)
    reason = getattr(e, "strerror", None) or one_line(e, whole=True)
    return OSError(errno, f"cannot write ({reason})", str(path))


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def umask_permissions(folder: str | os.PathLike) -> None:
    """Give every file under ``folder`` the permissions a new file gets here (0644 typically).

    safetensors and transformers' ``save_pretrained`` write through a temporary file, which is
    created 0600; checkpoints and models are results others read, like the tables.
    """
    mode = 0o666 & ~_umask()
    for f in Path(folder).rglob("*"):
        if f.is_file() and not f.is_symlink():
            f.chmod(mode)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    return Path(path)


def write_parquet(path: str | os.PathLike, frame) -> Path:
    """Write a pandas DataFrame to Parquet, atomically."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return Path(path)


def pyplot():
    """matplotlib's pyplot on the headless Agg backend (no display is ever needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike | None):
    """Write a matplotlib figure as a PNG, atomically, and close it; return the path.

    With ``path=None`` the figure is returned open and unsaved (a notebook shows it), so that
    every ``plot_*`` function serves both the commands and the Python API.
    """
    import matplotlib.pyplot as plt

    if path is None:
        return fig
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)
