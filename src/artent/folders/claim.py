"""Output folders: refused when they hold someone else's results or an input, locked while written.

Every command that writes a folder (``train``, ``internal``, ``external``, ``nohair``, ``demo``,
``sweep``) goes through :func:`claim_out`:

* it is refused, before anything is created, when ``--out`` is a file, holds another command's
  results (a ``run.json`` of another command, a ``study.json``, a ``sweep.json``), is or holds one
  of the command's inputs, already holds files the command would write without being this
  command's folder, is or holds artent's model cache, or is not writable;
* while the command runs, ``OUT/.artent.lock`` is locked (``flock``), so a second process writing
  the same folder is refused in one line; the lock goes with the process, even a killed one;
* a command that fails or is interrupted before it :meth:`Claim.commit` s removes the folder it
  created, so a refused or failed command leaves nothing behind to block a retry.

``artent profile --out FILE`` writes one file: :func:`check_out_file` refuses a FILE that is an
input or a file that ``profile`` did not write.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from artent.folders.atomic import write_json
from artent.folders.layout import cache_root
from artent.folders.records import folder_owner

LOCK_NAME = ".artent.lock"


def _label(out: Path) -> str:
    return f"--out {out}"


def _contains(folder: Path, item: Path) -> bool:
    return item == folder or folder in item.parents


def _check_not_cache(out: Path, resolved: Path) -> None:
    """The model cache (named models, converted GGUFs) is never an output folder, nor inside one
    (a ``--force`` rerun clears its folder)."""
    cache = cache_root().expanduser().resolve()
    if _contains(cache, resolved):
        raise ValueError(
            f"{_label(out)}: is inside artent's model cache {cache}; write results elsewhere"
        )
    if cache.exists() and _contains(resolved, cache):
        raise ValueError(f"{_label(out)}: holds artent's model cache {cache}; use another folder")


def check_out(
    out: str | os.PathLike,
    command: str,
    *,
    inputs: Iterable[str | os.PathLike | None] = (),
    writes: Iterable[str] = (),
) -> Path:
    """Refuse an output folder this command must not write (one-line ``ValueError``); no writes.

    Args:
        out: the output folder (it may not exist yet).
        command: the artent command writing it (``"internal"``, ``"train"``...).
        inputs: files and folders the command reads (names that are not local paths are
            ignored); ``out`` must neither be one nor hold one.
        writes: names of the files the command writes into ``out``; an existing one is refused
            unless ``out`` is this command's folder.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{_label(out)}: is a file, not a folder")
    resolved = out.resolve()
    _check_not_cache(out, resolved)
    for item in inputs:
        if item is None or not Path(item).exists():
            continue
        if _contains(resolved, Path(item).resolve()):
            raise ValueError(
                f"{_label(out)}: holds the input {item}; write the results to another folder"
            )
    if out.is_dir():
        owner = folder_owner(out)
        if owner is not None and owner != command:
            raise ValueError(
                f"{_label(out)}: holds the results of `artent {owner}`; use another folder"
            )
        clash = [name for name in writes if (out / name).exists()] if owner is None else []
        if clash:
            raise ValueError(
                f"{_label(out)}: already holds {clash[0]}, not written by `artent {command}`; "
                "use another folder"
            )
    probe = next(p for p in (resolved, *resolved.parents) if p.exists())
    if not probe.is_dir():
        raise ValueError(f"{_label(out)}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"{_label(out)}: {probe} is not writable")
    return out


def check_out_file(out: str | os.PathLike, *, inputs: Iterable[str | os.PathLike], columns) -> Path:
    """Refuse an output file that is an input or an existing file of another kind.

    Args:
        out: the file to write.
        inputs: files the command reads.
        columns: the Parquet columns the command writes; an existing Parquet file with exactly
            these columns is this command's earlier result and may be replaced.
    """
    out = Path(out)
    _check_not_cache(out, out.resolve())
    for item in inputs:
        if Path(item).exists() and Path(item).resolve() == out.resolve():
            raise ValueError(f"{_label(out)}: is the input {item}; write to another file")
    if out.is_dir():
        raise ValueError(f"{_label(out)}: is a folder, not a file")
    if out.exists():
        try:
            import pyarrow.parquet as pq

            same = pq.read_schema(out).names == list(columns)
        except Exception:  # noqa: BLE001 - any file pyarrow cannot read is not ours
            same = False
        if not same:
            raise ValueError(
                f"{_label(out)}: exists and is not an earlier result of this command; "
                "remove it or write to another file"
            )
    parent = next(p for p in out.resolve().parents if p.exists())
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{_label(out)}: {parent} is not a writable folder")
    return out


class Claim:
    """A locked output folder; see :func:`claim_out`.

    Attributes:
        out: the folder.
        created: the topmost folder this claim created (``None`` if ``out`` existed).
        committed: whether the folder holds results worth keeping if the command fails.
        keep: asked on a failure before :meth:`commit`: whether the folder holds something worth
            keeping anyway (a demo's or sweep's trained checkpoints).
    """

    def __init__(self, out: Path, created: Path | None) -> None:
        self.out = out
        self.created = created
        self.committed = False
        self.keep: Callable[[], bool] | None = None

    def _remove_on_failure(self) -> bool:
        if self.created is None or self.committed:
            return False
        return not (self.keep is not None and self.keep())

    def commit(self) -> None:
        """From now on a failure keeps the folder (it holds something to resume from)."""
        self.committed = True


def _make_dirs(out: Path) -> Path | None:
    missing = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        if missing:
            shutil.rmtree(missing[-1], ignore_errors=True)
        raise ValueError(f"{_label(out)}: cannot create the folder ({e.strerror or e})") from None
    return missing[-1] if missing else None


def _lock(out: Path) -> int:
    import fcntl

    path = out / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise ValueError(
                f"{_label(out)}: another artent process{who} is writing this folder; wait for "
                "it to finish or use another folder"
            ) from None
        # The holder removes the file when it lets go; the lock must be on the file still there.
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _unlock(out: Path, fd: int) -> None:
    path = out / LOCK_NAME
    try:
        if os.path.samestat(os.fstat(fd), os.stat(path)):
            path.unlink()
    except FileNotFoundError:
        pass
    os.close(fd)


@contextmanager
def claim_out(
    out: str | os.PathLike,
    command: str,
    *,
    inputs: Iterable[str | os.PathLike | None] = (),
    writes: Iterable[str] = (),
    record: bool = True,
) -> Iterator[Claim]:
    """Check, create and lock an output folder for the duration of a command.

    Args:
        out, command, inputs, writes: as :func:`check_out`.
        record: write ``OUT/run.json`` naming ``command`` at once when the folder has no record
            yet, so that a failure halfway leaves a folder a rerun may overwrite; commands that
            write their own record (``train``, ``demo``, ``sweep``) pass ``False``.

    Raises:
        ValueError: a folder :func:`check_out` refuses, or one another process holds.
    """
    inputs, writes = list(inputs), list(writes)
    out = check_out(out, command, inputs=inputs, writes=writes)
    created = _make_dirs(out)
    try:
        fd = _lock(out)
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    claim = Claim(out, created)
    try:
        check_out(out, command, inputs=inputs, writes=writes)  # again, now that it is ours
        if record and folder_owner(out) is None:
            write_json(
                out / "run.json",
                {"command": command, "status": "running", "started": time.strftime("%FT%T")},
            )
        yield claim
    except BaseException:
        if claim._remove_on_failure():
            shutil.rmtree(created, ignore_errors=True)
        raise
    finally:
        _unlock(out, fd)


def clear_folder(folder: Path) -> None:
    """Remove everything in ``folder`` but its lock file (``--force`` on a locked folder)."""
    for item in folder.iterdir():
        if item.name == LOCK_NAME:
            continue
        if item.is_dir() and not item.is_symlink():
            shutil.rmtree(item)
        else:
            item.unlink()


def remove_stale_temporaries(folder: Path, *, skip: Iterable[str] = ()) -> None:
    """Remove what killed writers left: ``.NAME.*.tmp`` files of atomic writes and ``*.tmp/``
    folders (unfinished checkpoints), in ``folder`` and its subfolders one level down.

    Only called on a folder this process has locked, so nobody is writing them.

    Args:
        folder: the locked output folder.
        skip: subfolders not to look into (run folders of a demo or sweep clean themselves).
    """
    skip = set(skip)
    # a link is never followed: a subfolder that is a link (to anywhere) is not looked into, and
    # a ``.tmp`` that is a link is removed as a link, never what it points at
    subfolders = [
        p for p in folder.iterdir() if p.is_dir() and not p.is_symlink() and p.name not in skip
    ]
    for parent in (folder, *subfolders):
        for item in parent.glob("*.tmp"):
            if item.is_symlink():
                if item.name.startswith("."):
                    item.unlink(missing_ok=True)
            elif item.is_dir():
                shutil.rmtree(item, ignore_errors=True)
            elif item.name.startswith("."):
                item.unlink(missing_ok=True)
