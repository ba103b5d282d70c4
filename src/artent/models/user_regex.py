"""Regular expressions from users' files (an adapter's ``target_modules``, its patterns), matched
so that none can hang a command.

Python's ``re`` backtracks without bound: ``(a|a)*$`` against a 40-character module name takes
longer than the universe is old, and cannot be interrupted. User patterns are matched here with
the ``regex`` package (a dependency of transformers), whose matcher takes a timeout, under one
budget per pattern for all the names it is tried on; a pattern that runs out of it is refused in
one line. :func:`pin_peft_patterns` then hands peft the names each pattern matched instead of the
pattern, so peft's own ``re`` calls only ever see escaped literal names.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Any

#: Seconds one user pattern may spend matching all the names it is tried on.
MATCH_BUDGET_S = 2.0
#: Longest user pattern accepted (characters).
MAX_PATTERN_LEN = 2000
# names peft uses as plain module names (modules_to_save, layers_pattern), never as patterns
_PLAIN = re.compile(r"[A-Za-z0-9_.\-]+")


def _regex():
    import regex

    return regex


def compile_user_regex(pattern: str, what: str):
    """``pattern`` compiled by ``regex``, or a one-line ``ValueError`` naming ``what``."""
    if not isinstance(pattern, str):
        raise ValueError(f"{what}: {pattern!r} is not a pattern (a string)")
    if len(pattern) > MAX_PATTERN_LEN:
        raise ValueError(
            f"{what}: pattern of {len(pattern)} characters (at most {MAX_PATTERN_LEN})"
        )
    rx = _regex()
    try:
        return rx.compile(pattern, flags=rx.VERSION0)
    except (rx.error, RecursionError, OverflowError) as e:
        raise ValueError(f"{what}: {pattern!r} is no pattern ({e})") from None


def matching(
    pattern: str,
    names: Iterable[str],
    what: str,
    *,
    suffix: bool = False,
    budget: float | None = None,
) -> list[str]:
    """The ``names`` ``pattern`` matches, within ``budget`` seconds for all of them.

    Args:
        pattern: the user's pattern.
        names: module names to try.
        what: how an error names the pattern (``"adapter_config.json: target_modules"``).
        suffix: peft's pattern-key rule, ``(.*\\.)?(pattern)$`` from the start (``re.match``),
            instead of a full match.
        budget: seconds for all the names together (default :data:`MATCH_BUDGET_S`).

    Raises:
        ValueError: a pattern that is no pattern, or that runs out of its time (one line).
    """
    compiled = compile_user_regex(rf"(.*\.)?({pattern})$" if suffix else pattern, what)
    budget = MATCH_BUDGET_S if budget is None else budget
    deadline = time.monotonic() + budget
    found = []
    for name in names:
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError
            hit = (compiled.match if suffix else compiled.fullmatch)(name, timeout=left)
        except TimeoutError:
            raise ValueError(
                f"{what}: pattern {pattern!r} takes more than {budget:g} s to match the module "
                "names (a pattern that backtracks without bound); refused"
            ) from None
        if hit:
            found.append(name)
    return found


def pattern_value(pattern: dict | None, name: str, default, *, what: str = "pattern") -> Any:
    """peft's ``get_pattern_key``: the value of the first key matching ``(.*\\.)?(key)$``."""
    for key, value in (pattern or {}).items():
        if matching(key, [name], f"{what} key {key!r}", suffix=True):
            return value
    return default


def pin_peft_patterns(config, names: list[str], what: str) -> None:
    """Replace a peft config's user patterns by the literal names they match, in place.

    ``target_modules`` / ``exclude_modules`` given as one pattern become the list of module
    names it fully matches; ``alpha_pattern`` / ``rank_pattern`` become one escaped literal key
    per module name, with the value peft's first-match rule gives it; ``modules_to_save`` and
    ``layers_pattern`` must be plain names. So peft's own ``re`` sees no user pattern.

    Args:
        config: a peft config (``LoraConfig``...), as peft built it from the file.
        names: every module name of the model the adapter goes on.
        what: the file, for errors.

    Raises:
        ValueError: a pattern that is no pattern or runs out of its time, a name that is not
            plain (one line naming the file and the field).
    """
    for field in ("target_modules", "exclude_modules"):
        value = getattr(config, field, None)
        if isinstance(value, str):
            setattr(config, field, matching(value, names, f"{what}: {field}") or None)
            if field == "target_modules" and not getattr(config, field):
                raise ValueError(f"{what}: target_modules {value!r} matches no module of the model")
    for field in ("alpha_pattern", "rank_pattern"):
        pattern = getattr(config, field, None)
        if not pattern:
            continue
        pinned: dict[str, Any] = {}
        for key in pattern:
            for name in matching(key, names, f"{what}: {field} key {key!r}", suffix=True):
                pinned.setdefault(re.escape(name), pattern[key])  # the first key wins
        setattr(config, field, pinned)
    for field in ("modules_to_save", "layers_pattern"):
        value = getattr(config, field, None)
        items = [value] if isinstance(value, str) else list(value or [])
        bad = [v for v in items if not (isinstance(v, str) and _PLAIN.fullmatch(v))]
        if bad:
            raise ValueError(f"{what}: {field} must be plain module names, got {bad[0]!r}")
