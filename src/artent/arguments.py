"""Checks of the Python API's arguments (``artent.internal``, ``external``, ``nohair``): a wrong
type is a ``TypeError`` and a wrong value a ``ValueError``, each naming the argument, raised
before any work starts (a string is never iterated as if it were a list of its characters).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


def one_path(value: Any, name: str) -> str | None:
    """``None`` or one file or folder (a ``str`` or ``os.PathLike``), as a string."""
    if value is None:
        return None
    if not _is_path(value):
        raise TypeError(f"{name} must be a path (str or pathlib.Path), got {type(value).__name__}")
    if not str(value):
        raise ValueError(f"{name} is an empty path")
    return os.fspath(value)


def paths(value: Any, name: str) -> list[str]:
    """``None``, one path, or a list of paths, as a list of strings."""
    if value is None:
        return []
    if _is_path(value):
        return [one_path(value, name)]
    if isinstance(value, (bytes, dict)) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a path or a list of paths, got {type(value).__name__}")
    return [one_path(v, f"{name}[{i}]") for i, v in enumerate(value)]


def path_list(value: Any, name: str) -> list[str]:
    """A list of paths where several are needed (``nohair``'s models): one string is refused, so
    that ``"runs/x"`` is never read as the folders ``r``, ``u``, ``n``..."""
    if _is_path(value):
        raise TypeError(
            f"{name} must be a list of folders, got the single path {os.fspath(value)!r} "
            f"(pass [{os.fspath(value)!r}, ...])"
        )
    if value is None:
        raise TypeError(f"{name} must be a list of folders, got None")
    return paths(value, name)


def check_texts(value: Any) -> Any:
    """A corpus argument: one path, or a list of documents that are all ``str``."""
    if _is_path(value):
        return value
    if value is None or isinstance(value, (bytes, dict)) or not isinstance(value, Iterable):
        raise TypeError(
            f"texts must be a path or a list of documents (str), got {type(value).__name__}"
        )
    docs = list(value)
    for i, doc in enumerate(docs):
        if not isinstance(doc, str):
            hint = " (decode bytes first)" if isinstance(doc, (bytes, bytearray)) else ""
            raise TypeError(f"texts[{i}] must be a str, got {type(doc).__name__}{hint}")
    return docs


def names(value: Any, name: str) -> str | list[str]:
    """Module names, encodings, orders: a comma-separated string or a list of strings."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bytes, dict)) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a name or a list of names, got {type(value).__name__}")
    items = list(value)
    bad = [v for v in items if not isinstance(v, str)]
    if bad:
        raise TypeError(f"{name}: every item must be a name (str), got {bad[0]!r}")
    return items


def flag(value: Any, name: str) -> bool:
    """A ``True``/``False`` argument."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def checked(
    *,
    path: dict[str, Any] | None = None,
    paths: dict[str, Any] | None = None,
    names: dict[str, Any] | None = None,
    flags: dict[str, Any] | None = None,
) -> list[Any]:
    """Check several arguments at once, by kind; returns the checked values in the order given
    (single paths, then lists of paths, then names; flags return nothing).

    Args:
        path: argument name -> ``None`` or one path.
        paths: argument name -> ``None``, a path or a list of paths.
        names: argument name -> a name or a list of names.
        flags: argument name -> ``True``/``False``.
    """
    out: list[Any] = []
    for check, given in ((one_path, path), (_PATHS, paths), (_NAMES, names)):
        out += [check(v, k) for k, v in (given or {}).items()]
    for k, v in (flags or {}).items():
        flag(v, k)
    return out


_PATHS, _NAMES = paths, names  # the keyword arguments of checked() shadow them


def name_list(value: str | Iterable[str], option: str) -> list[str]:
    """``"q_proj,v_proj"`` or ``["q_proj", "v_proj"]`` as a list of names."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [str(m).strip() for m in items if str(m).strip()]
    if not names:
        raise ValueError(f"{option} is empty: name at least one")
    return names


def parse_layers(layers: str | int | Iterable[int] | None) -> list[int] | None:
    """``"0,1,5-7"``, an index or a list of indices, as a list (``None``: every layer)."""
    if layers is None or layers == "":
        return None
    if isinstance(layers, int) and not isinstance(layers, bool):
        return [layers]
    if not isinstance(layers, str):
        return list(layers)
    try:
        out: list[int] = []
        for part in layers.split(","):
            lo, _, hi = part.partition("-")
            out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
        return out
    except ValueError:
        raise ValueError(f"layers= must look like 0,1,5-7, got {layers!r}") from None


def _listed(value: str | os.PathLike | Iterable[str | os.PathLike] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, Path)):
        return [str(value)]
    return [str(v) for v in value]


def labelled_paths(value: Any, name: str) -> None:
    """``None``, one path, a list of paths, or ``{label: path}``: checked, nothing returned."""
    from collections.abc import Mapping

    if isinstance(value, Mapping):
        for label, item in value.items():
            one_path(item, f"{name}[{label!r}]")
        return
    paths(value, name)


def path_or_model(value: Any, name: str) -> None:
    """``None``, one path, or a model in memory (a ``torch.nn.Module``): checked."""
    if value is None or _is_path(value) or hasattr(value, "named_parameters"):
        if _is_path(value):
            one_path(value, name)
        return
    raise TypeError(
        f"{name} must be a path (str or pathlib.Path) or a model in memory, got "
        f"{type(value).__name__}"
    )
