"""Progress off a terminal: whole lines at a readable period, never a carriage-return bar."""

from __future__ import annotations

import io

from artent.progress import LineProgress, progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_lines_off_a_terminal_every_tenth_and_at_the_end():
    out = io.StringIO()
    bar = progress(range(95), desc="lora run", stream=out)
    assert isinstance(bar, LineProgress)
    for i in bar:
        bar.set_postfix(loss=f"{1 / (i + 1):.3f}")
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 11  # 9, 18, ... 90 (one every tenth of 95), then 95 at the end
    assert lines[0].startswith("lora run: 9/95 (9%)")
    assert lines[-1].startswith("lora run: 95/95 (100%)") and "loss=0.011" in lines[-1]


def test_resumed_loop_counts_from_its_start_and_time_period(monkeypatch):
    out = io.StringIO()
    bar = LineProgress(range(40, 50), total=50, initial=40, desc="fft", stream=out, period_s=0.0)
    list(bar)
    lines = out.getvalue().splitlines()
    assert len(lines) == 10  # the period of 0 s prints every step; no duplicate last line
    assert lines[0].startswith("fft: 41/50") and lines[-1].startswith("fft: 50/50 (100%)")


def test_disabled_prints_nothing_and_a_terminal_gets_tqdm():
    out = io.StringIO()
    list(progress(range(30), stream=out, disable=True))
    assert out.getvalue() == ""
    term = Terminal()
    bar = progress(range(3), desc="x", stream=term)
    assert type(bar).__name__ == "tqdm" or "tqdm" in type(bar).__module__
    list(bar)
