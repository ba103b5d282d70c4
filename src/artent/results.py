"""What the analyses of :mod:`artent.api` return: named tuples of DataFrames, one per table."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["External", "Internal", "NoHair"]

PathLike = str | Path


class Internal(NamedTuple):
    """What :func:`internal` returns (``artent internal`` writes these two tables).

    Attributes:
        profiles: ``internal.parquet``: ``label, step, layer, module, bond, entropy, rmt``.
        summary: ``internal_summary.parquet``: one row per update, with its valley metrics.
    """

    profiles: pd.DataFrame
    summary: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables by file name (without ``.parquet``)."""
        return {"internal": self.profiles, "internal_summary": self.summary}

    def valleys(self, by: str | Iterable[str] = ("label", "step", "module")) -> pd.DataFrame:
        """Valley metrics averaged per group: ``by`` is a column (``"layer"``) or several, any
        of :data:`artent.analysis.internal.VALLEY_GROUPS` (see
        :func:`artent.analysis.internal.valley_table`)."""
        from artent.analysis.internal import valley_table

        return valley_table(self.summary, by)

    def plot(self, path: PathLike | None = None):
        """Mean profile per module over its baseline: a matplotlib figure, or a PNG at ``path``."""
        from artent.analysis.internal import plot_internal

        return plot_internal(self.profiles, self.summary, path)


class External(NamedTuple):
    """What :func:`external` returns (``artent external`` writes these five tables).

    Every table has a ``model`` column (the model each row was measured on) and a
    ``window_start`` column (how its windows began).
    """

    external: pd.DataFrame
    external_summary: pd.DataFrame
    scaling: pd.DataFrame
    baseline: pd.DataFrame
    scaling_baseline: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables by file name (without ``.parquet``)."""
        return dict(self._asdict())

    def plot(self, path: PathLike | None = None):
        """Attention profiles over the random baseline and the length scaling (figure or PNG)."""
        from artent.analysis.external import plot_external

        return plot_external(self.tables(), path)

    def compare(self, path: PathLike | None = None):
        """Models side by side, layer by layer (figure or PNG): profile over the Page curve,
        area+log share, ``c`` under both readings of the attention law, and the sink share."""
        from artent.analysis.external.compare import plot_models

        return plot_models(self.tables(), path)


class NoHair(NamedTuple):
    """What :func:`nohair` returns (``artent nohair`` writes these three tables)."""

    pairs: pd.DataFrame
    internal: pd.DataFrame
    external: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables by file name (without ``.parquet``)."""
        return {
            "nohair": self.pairs,
            "nohair_internal": self.internal,
            "nohair_external": self.external,
        }

    def plot(self, path: PathLike | None = None):
        """Internal against external contrast per pair, and the no-hair ratio (figure or PNG)."""
        from artent.analysis.nohair import plot_nohair

        return plot_nohair(self.pairs, path)
