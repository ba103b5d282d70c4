"""peft's per-module option patterns (``alpha_pattern``, ``rank_pattern``)."""

from __future__ import annotations

import re


def pattern_value(pattern: dict | None, name: str, default):
    """peft's ``get_pattern_key``: the first pattern key matching ``(.*\\.)?(key)$`` wins."""
    for key, value in (pattern or {}).items():
        if re.match(rf"(.*\.)?({key})$", name):
            return value
    return default
