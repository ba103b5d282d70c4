"""Progress of long loops: a tqdm bar on a terminal, a few plain lines anywhere else.

tqdm redraws its bar with a carriage return at every update. On a terminal that is a bar; in a
log file (``make demo > log``, a cluster job, CI) it is one line of megabytes. Off a terminal,
:func:`progress` therefore prints whole lines instead, at a period a reader can follow: one line
every tenth of the loop or every :data:`LINE_PERIOD_S` seconds, whichever comes first, and one
at the end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

__all__ = ["LINE_PERIOD_S", "LayerLines", "LineProgress", "progress"]

#: Longest gap, in seconds, between two progress lines off a terminal.
LINE_PERIOD_S = 60.0
#: Lines per loop from the step count alone (one every tenth), besides the time-based ones.
LINES_PER_LOOP = 10


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class LineProgress:
    """tqdm's iteration, ``set_postfix`` and ``close``, written as whole lines.

    Args:
        iterable: what to iterate over.
        total: number of steps (``len(iterable)`` when it has one).
        initial: steps already done (a resumed loop), counted in the first figure.
        desc: label at the start of each line.
        disable: print nothing.
        stream: where lines go (stderr by default, as tqdm's bar).
        period_s: longest gap between two lines, in seconds.
    """

    def __init__(
        self,
        iterable: Iterable,
        *,
        total: int | None = None,
        initial: int = 0,
        desc: str = "",
        disable: bool = False,
        stream: TextIO | None = None,
        period_s: float = LINE_PERIOD_S,
    ) -> None:
        self.iterable = iterable
        self.total = total if total is not None else _length(iterable)
        self.n = initial
        self.initial = initial
        self.desc = desc
        self.disable = disable
        self.stream = stream if stream is not None else sys.stderr
        self.period_s = period_s
        self.postfix: dict[str, Any] = {}
        todo = (self.total - initial) if self.total else 0
        self._every = max(1, todo // LINES_PER_LOOP) if todo else None
        self._started = time.perf_counter()
        self._last_line = self._started
        self._last_n = initial
        self._closed = False

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more steps; print a line when a tenth or the period has passed."""
        self.n += n
        now = time.perf_counter()
        by_steps = self._every is not None and (self.n - self.initial) % self._every == 0
        if by_steps or now - self._last_line >= self.period_s:
            self._line(now)

    def set_postfix(self, refresh: bool = True, **values: Any) -> None:
        """Values shown at the end of the next line (tqdm's signature)."""
        self.postfix = dict(values)

    def close(self) -> None:
        """Print the last line (unless the last update just printed it)."""
        if self._closed:
            return
        self._closed = True
        if self.n != self._last_n:
            self._line(time.perf_counter())

    def _line(self, now: float) -> None:
        self._last_line, self._last_n = now, self.n
        if self.disable:
            return
        elapsed = now - self._started
        done = self.n - self.initial
        if self.total:
            count = f"{self.n}/{self.total} ({100 * self.n / self.total:.0f}%)"
        else:
            count = str(self.n)
        parts = [f"{self.desc}: {count}" if self.desc else count, f"{elapsed:.0f}s"]
        if done and elapsed > 0:
            rate = done / elapsed
            parts.append(f"{rate:.2f} it/s" if rate >= 1 else f"{1 / rate:.1f} s/it")
            if self.total and self.n < self.total:
                parts.append(f"eta {(self.total - self.n) / rate:.0f}s")
        parts += [f"{k}={v}" for k, v in self.postfix.items()]
        print("  ".join(parts), file=self.stream, flush=True)


def _length(iterable: Iterable) -> int | None:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None


def progress(
    iterable: Iterable,
    *,
    total: int | None = None,
    initial: int = 0,
    desc: str = "",
    disable: bool = False,
    stream: TextIO | None = None,
):
    """A progress bar over ``iterable``: tqdm on a terminal, :class:`LineProgress` elsewhere.

    Both have tqdm's iteration, ``set_postfix(**values)`` and ``close()``.

    Args:
        iterable: what to iterate over.
        total: number of steps (taken from ``len(iterable)`` when omitted).
        initial: steps already done before this call (a resumed loop).
        desc: a label.
        disable: show nothing.
        stream: where to write (stderr by default).
    """
    stream = stream if stream is not None else sys.stderr
    if _is_terminal(stream):
        from tqdm.auto import tqdm

        return tqdm(
            iterable,
            total=total,
            initial=initial,
            desc=desc,
            disable=disable,
            file=stream,
            dynamic_ncols=True,
        )
    return LineProgress(
        iterable, total=total, initial=initial, desc=desc, disable=disable, stream=stream
    )


class LayerLines:
    """One plain line per layer of a loop over a model's matrices, as the layer's last one is
    done (reads well in a log file, where a transient bar shows nothing):
    ``label: layer 3: 7 matrices in 41.2 s``.

    Args:
        desc: the label at the start of each line.
        write: where each line goes (``None``: nowhere).
    """

    def __init__(self, desc: str, write: Callable[[str], None] | None) -> None:
        self.desc, self.write = desc, write
        self.layer, self.count, self.t0 = None, 0, time.perf_counter()

    def done(self, layer) -> None:
        if layer != self.layer:
            self.close()
            self.layer, self.count = layer, 0
        self.count += 1

    def close(self) -> None:
        if self.write is not None and self.count:
            now = time.perf_counter()
            what = "matrix" if self.count == 1 else "matrices"
            where = "" if self.layer is None else f" layer {self.layer}:"
            self.write(f"{self.desc}:{where} {self.count} {what} in {now - self.t0:.1f} s")
            self.t0, self.count = now, 0
