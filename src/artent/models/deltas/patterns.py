"""peft's per-module option patterns (``alpha_pattern``, ``rank_pattern``), matched with a bound
(:mod:`artent.models.user_regex`)."""

from __future__ import annotations

from artent.models.user_regex import pattern_value

__all__ = ["pattern_value"]
