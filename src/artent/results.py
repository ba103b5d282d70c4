"""What the analyses return: named tuples of DataFrames, one per table, that save and load
themselves.

Each result class is the one home of its tables' file names (``FILES``: field -> file name
without ``.parquet``), of the table whose file marks a folder complete (``DONE``, written last)
and of its figure (``FIGURE``). Every writer of these tables (the API and the commands, the
study, the sweep, the training callback) calls :meth:`save`; every reader (the report)
goes through :meth:`load`, :meth:`file` or :meth:`saved`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from artent.folders import atomic
from artent.folders.records import read_table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Baselines", "External", "Internal", "NoHair"]

PathLike = str | Path


def _file(cls: Any, field: str) -> str:
    """The file name of a field's table: ``Internal.file("summary")`` is
    ``internal_summary.parquet``."""
    return f"{cls.FILES[field]}.parquet"


def _saved(cls: Any, folder: PathLike) -> bool:
    """Whether ``folder`` holds a complete saved result (its ``DONE`` table, written last)."""
    return (Path(folder) / _file(cls, cls.DONE)).is_file()


def _writes(cls: Any) -> tuple[str, ...]:
    """The files :meth:`save` may write into a folder (the tables and the figure)."""
    return (*(_file(cls, f) for f in cls._fields), *cls.FIGURES)


def _tables(self: Any) -> dict[str, pd.DataFrame]:
    """The tables by file name (without ``.parquet``)."""
    return {self.FILES[f]: getattr(self, f) for f in self._fields}


def _save(self: Any, folder: PathLike, *, plot: bool = False) -> Path:
    """Write every table into ``folder`` (created), atomically, and return it.

    The ``DONE`` table goes last, after the figure, so that a folder holding it holds the
    whole result (a study's stage is skipped on a rerun when it is there).

    Args:
        folder: the folder.
        plot: also draw :meth:`plot` into the result's figure file.
    """
    folder = Path(folder)
    for field in self._fields:
        if field != self.DONE:
            # through the module, so that a test's failing write reaches every writer
            atomic.write_parquet(folder / _file(self, field), getattr(self, field))
    if plot:
        self.plot(folder / self.FIGURES[0])
    atomic.write_parquet(folder / _file(self, self.DONE), getattr(self, self.DONE))
    return folder


def _load(cls: Any, folder: PathLike, columns: dict[str, Iterable[str]] | None = None) -> Any:
    """The result saved in ``folder``: a one-line ValueError names a missing or unreadable
    table, or one without the ``columns`` (by field) the caller reads."""
    folder = Path(folder)
    columns = columns or {}
    return cls(
        *(read_table(folder / _file(cls, f), tuple(columns.get(f, ()))) for f in cls._fields)
    )


def _saved_in_folders(cls: type) -> type:
    """Give a result class its folder methods: ``tables``, ``save``, ``load``, ``file``,
    ``saved`` and ``writes`` (a NamedTuple cannot inherit them from a base class)."""
    cls.tables = _tables
    cls.save = _save
    cls.load = classmethod(_load)
    cls.file = classmethod(_file)
    cls.saved = classmethod(_saved)
    cls.writes = classmethod(_writes)
    return cls


@_saved_in_folders
class Internal(NamedTuple):
    """What :func:`internal` returns (``artent internal`` writes these two tables).

    Attributes:
        profiles: ``internal.parquet``: ``label, step, layer, module, bond, entropy, rmt``.
        summary: ``internal_summary.parquet``: one row per update, with its valley metrics.
    """

    profiles: pd.DataFrame
    summary: pd.DataFrame

    FILES = {"profiles": "internal", "summary": "internal_summary"}
    DONE = "summary"
    FIGURES = ("internal.png",)

    def valleys(self, by: str | Iterable[str] = ("label", "step", "module")) -> pd.DataFrame:
        """Valley metrics averaged per group: ``by`` is a column (``"layer"``) or several, any
        of :data:`artent.analysis.internal.VALLEY_GROUPS` (see
        :func:`artent.analysis.internal.valley_table`)."""
        from artent.analysis.internal import valley_table  # lazy: keeps `import artent` light

        return valley_table(self.summary, by)

    def plot(self, path: PathLike | None = None):
        """Mean profile per module over its baseline: a matplotlib figure, or a PNG at ``path``."""
        from artent.analysis.internal import plot_internal

        return plot_internal(self.profiles, self.summary, path)


@_saved_in_folders
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

    FILES = {
        "external": "external",
        "external_summary": "external_summary",
        "scaling": "scaling",
        "baseline": "baseline",
        "scaling_baseline": "scaling_baseline",
    }
    DONE = "external_summary"
    FIGURES = ("external.png", "models.png")  # models.png: :meth:`compare`

    def plot(self, path: PathLike | None = None):
        """Attention profiles over the random baseline and the length scaling (figure or PNG)."""
        from artent.analysis.external import plot_external

        return plot_external(self.tables(), path)

    def compare(self, path: PathLike | None = None):
        """Models side by side, layer by layer (figure or PNG): profile over the Page curve,
        area+log share, ``c`` under both readings of the attention law, and the sink share."""
        from artent.analysis.external.compare import plot_models

        return plot_models(self.tables(), path)


@_saved_in_folders
class NoHair(NamedTuple):
    """What :func:`nohair` returns (``artent nohair`` writes these three tables)."""

    pairs: pd.DataFrame
    internal: pd.DataFrame
    external: pd.DataFrame

    FILES = {"pairs": "nohair", "internal": "nohair_internal", "external": "nohair_external"}
    DONE = "pairs"
    FIGURES = ("nohair.png",)

    def plot(self, path: PathLike | None = None):
        """Internal against external contrast per pair, and the no-hair ratio (figure or PNG)."""
        from artent.analysis.nohair import plot_nohair

        return plot_nohair(self.pairs, path)


@_saved_in_folders
class Baselines(NamedTuple):
    """The random-matrix study (``artent demo``'s baselines stage): random updates' profiles
    against their predictions, their valley metrics, random attention's profiles."""

    summary: pd.DataFrame
    attention: pd.DataFrame
    profiles: pd.DataFrame

    FILES = {"summary": "summary", "attention": "attention", "profiles": "profiles"}
    DONE = "profiles"
    FIGURES = ()  # drawn by the report, not here
