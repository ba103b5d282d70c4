"""Checking options once, where they enter: types from the dataclass annotations, finite numbers,
devices.

Every options dataclass calls :func:`check_fields` first thing in its ``__post_init__``, so a value
of the wrong type (from a YAML file: ``lr: fast``, ``save_steps: [a, b]``, ``targets: 5``) or a
number that is not finite (``--lr inf``, ``--alpha nan``) ends as one :class:`OptionError` naming
the option, whichever command, flag or file it came from. The range checks of each option (``lr >
0``, ``rank >= 1``) stay beside the option, in its dataclass.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import re
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from artent.folders.records import read_mapping

DEVICE_PATTERN = re.compile(r"auto|cpu|mps|(cuda|xpu)(:\d+)?")
DEVICE_CHOICES = "cpu, cuda, cuda:N, xpu or mps"


class OptionError(ValueError):
    """A bad option value; ``option`` is the field's name (for callers that add the file)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


class _Mismatch(Exception):
    """Raised inside :func:`_conform`; carries what was expected, in words."""


def keyword(name: str) -> str:
    """How the library names a parameter in a message: ``seq_len`` -> ``seq_len=``.

    The command line shows its own flag there instead (``--seq-len``: :mod:`artent.cli.flags`).
    """
    return f"{name}="


def option(name: str) -> str:
    """How a config file or flag-agnostic message names a field: ``option seq_len``."""
    return f"option {name}"


def check_fields(obj: Any, label: Callable[[str], str] = option) -> None:
    """Check (and normalise) every field of dataclass ``obj`` against its type annotation.

    Integers pass where a float is annotated (and become floats), lists where a tuple is; a float
    must be finite; ``bool`` is never taken for a number. Fields annotated ``Any`` or with types
    this does not know are left alone. A float field whose ``metadata`` has ``"infinite": True``
    may also be ``inf`` (never NaN).

    Args:
        obj: a dataclass instance (call this from its ``__post_init__``).
        label: how messages name a field (:func:`option` or :func:`keyword`).

    Raises:
        OptionError: naming the first field whose value does not fit.
    """
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        tp = hints.get(f.name, Any)
        if f.metadata.get("infinite") and isinstance(value, float) and math.isinf(value):
            continue
        try:
            setattr(obj, f.name, _conform(value, tp))
        except _Mismatch as e:
            raise OptionError(f.name, f"{label(f.name)} must be {e}, got {value!r}") from None


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not type(None))
    if origin in (list, tuple):
        inner = args[0] if args else Any
        return f"a list of {_PLURALS.get(inner, 'values')}"
    if origin is dict:
        return "a mapping"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    return _SINGULARS.get(tp, getattr(tp, "__name__", str(tp)))


_SINGULARS = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}
_PLURALS = {bool: "true/false values", int: "integers", float: "finite numbers", str: "strings"}


def _conform(value: Any, tp: Any) -> Any:
    if tp is Any:
        return value
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _conform(value, arg)
            except _Mismatch:
                pass
        raise _Mismatch(_describe(tp))
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
    elif tp is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            if math.isfinite(float(value)):
                return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin in (list, tuple):
        if isinstance(value, list | tuple):
            inner = args[0] if args else Any
            try:
                items = [_conform(v, inner) for v in value]
            except _Mismatch:
                raise _Mismatch(_describe(tp)) from None
            return items if origin is list else tuple(items)
    elif origin is dict:
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return value
    elif origin is typing.Literal:
        if value in args:
            return value
    else:
        return value  # a type this checker does not know: the dataclass checks it itself
    raise _Mismatch(_describe(tp))


def resolve_device(name: str | None, what: str = "option device") -> str:
    """A device to put tensors on: ``"auto"`` or ``None`` is ``"cuda"`` when torch sees a GPU,
    else ``"cpu"``; any other name must be a device this machine has (:func:`check_device`).

    Args:
        name: ``auto``, ``None``, or what :func:`check_device` accepts.
        what: how the message names the option (``"device="``, ``"option device"``).

    Raises:
        ValueError: a name that is not a device name, or a device torch does not see.
    """
    if name in (None, "auto"):
        import torch  # lazy: importing torch takes seconds, and this module is imported by all

        return "cuda" if torch.cuda.is_available() else "cpu"
    return check_device(name, what)


def check_device(name: Any, what: str = "option device", *, allow_auto: bool = False) -> str:
    """A torch device name that exists on this machine, or a one-line ValueError.

    Args:
        name: ``cpu``, ``cuda``, ``cuda:N``, ``xpu``, ``mps`` (and ``auto`` with ``allow_auto``).
        what: how the message names the option.
        allow_auto: accept ``"auto"`` (resolved by the caller).
    """
    choices = ("auto, " if allow_auto else "") + DEVICE_CHOICES
    if (
        not isinstance(name, str)
        or not DEVICE_PATTERN.fullmatch(name)
        or (name == "auto" and not allow_auto)
    ):
        raise ValueError(f"{what} must be {choices}, not {name!r}")
    kind, _, index = name.partition(":")
    if kind in ("auto", "cpu"):
        return name
    import torch

    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    elif kind == "xpu":
        xpu = getattr(torch, "xpu", None)
        count = xpu.device_count() if xpu is not None and xpu.is_available() else 0
    else:
        count = int(torch.backends.mps.is_available())
    if count == 0:
        raise ValueError(f"{what} {name}: torch sees no {kind} device on this machine")
    if index and int(index) >= count:
        raise ValueError(f"{what} {name}: this machine has {count} {kind} device(s)")
    return name


def load_options(
    cls: type,
    file: str | os.PathLike | None,
    overrides: dict[str, Any],
    *,
    noun: str = "option",
    expected: str = "a mapping of options",
    dashes: bool = False,
    allow_empty: bool = False,
) -> Any:
    """An options dataclass from a JSON/YAML ``file`` (if any), with ``overrides`` on top.

    The one loader of options from a file plus flags: the training config, the study config.

    Args:
        cls: the options dataclass (its ``__post_init__`` raises :class:`OptionError`).
        file: the file, or ``None``; its keys are ``cls``'s fields.
        overrides: options given otherwise (flags); those that are ``None`` are not given.
        noun: how an unknown key is called (``"option"``, ``"study option"``).
        expected: what the file's top level must be, for the error.
        dashes: accept ``seq-len`` for ``seq_len`` in the file.
        allow_empty: an empty file is no options rather than an error.

    Raises:
        ValueError: an unreadable file, an unknown key, a bad option; where its value came
            from ``file``, the message names the file.
    """
    from_file: dict[str, Any] = {}
    if file:
        from_file = read_mapping(Path(file), "config file", expected, allow_empty=allow_empty)
        if dashes:
            from_file = {k.replace("-", "_"): v for k, v in from_file.items()}
        unknown = sorted(set(from_file) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"config file {Path(file)}: unknown {noun} {unknown[0]!r}")
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return cls(**{**from_file, **given})
    except OptionError as e:
        if e.option in from_file and e.option not in given:
            raise OptionError(e.option, f"config file {file}: {e}") from None
        raise
