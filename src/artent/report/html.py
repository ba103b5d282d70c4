"""The study report: one self-contained HTML page from a study folder's tables.

Figures are embedded as ``data:`` URIs and the CSS is inline, so the page needs nothing beyond
itself (no network, no neighbouring files) and can be mailed or archived as it is.
"""

from __future__ import annotations

import html
import json
import math
import time
from pathlib import Path

import pandas as pd

from artent.folders.atomic import atomic_path
from artent.report.claims import ClaimThresholds, evaluate_claims
from artent.report.figures import FIGURES, draw_figures, figure_ref
from artent.report.tables import TABLES, StudyTables, load_study

__all__ = ["build_report", "check_report_replaceable", "render_report"]

#: The report's file in a study, sweep or internal-tables folder.
REPORT_FILE = "report.html"
#: The mark of a report artent wrote; a ``report.html`` without it is never replaced.
GENERATOR = "<meta name='generator' content='artent'>"
# reports written before the mark began with this head
_OLD_HEAD = "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>\n<title>artent report: "

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1500px; padding: 0 1.5em; color: #1d1d1f; line-height: 1.4; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; margin-top: 0; }
.summary { font-size: 1.25em; padding: 0.6em 1em; background: #f3f5f8; border-radius: 6px; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #d0d4da; padding: 0.35em 0.6em; vertical-align: top; text-align: left; }
th { background: #eef1f5; }
td.yes { background: #d4f4dd; color: #0a5d1f; font-weight: 600; }
td.no { background: #fbd9d9; color: #8a1010; font-weight: 600; }
td.na { background: #e9e9ec; color: #555; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 2em 0; } figure img { max-width: 100%; border: 1px solid #e2e4e8; }
figcaption { color: #333; max-width: 70em; } .missing { color: #8a1010; font-style: italic; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
details { margin: 0.5em 0; } summary { cursor: pointer; font-weight: 600; }
"""

VERDICT = {
    True: ("yes", "reproduced"),
    False: ("no", "not reproduced"),
    None: ("na", "not measured"),
}


def _e(x) -> str:
    return html.escape(str(x))


def _verdict(value) -> bool | None:
    return (
        None if value is None or (isinstance(value, float) and math.isnan(value)) else bool(value)
    )


def _claims_table(claims: pd.DataFrame) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in ("claim", "paper", "model", "measured", "criterion", "result", "evidence")
    )
    anchors = {figure_ref(key): f"#fig-{key}" for key in FIGURES}
    rows = []
    for r in claims.itertuples():
        css, word = VERDICT[_verdict(r.reproduced)]
        evidence = _e(r.evidence)
        if r.evidence in anchors:
            evidence = f"<a href='{anchors[r.evidence]}'>{evidence}</a>"
        rows.append(
            f"<tr><td><b>{_e(r.claim)}</b>"
            + (f"<br><i>reading: {_e(r.reading)}</i>" if r.reading else "")
            + f"</td><td>{_e(r.statement)}</td><td>{_e(r.model)}</td>"
            f"<td>{_e(r.measured)}"
            f"</td><td>{_e(r.criterion)}</td><td class='{css}'>{word}</td>"
            f"<td>{evidence}</td></tr>"
        )
    return f"<table id='claims'><tr>{head}</tr>{''.join(rows)}</table>"


def _readings_line(claims: pd.DataFrame) -> str:
    """Which verdicts belong to which reading of the attention law (docs/method.md)."""
    parts = []
    for reading, rows in claims[claims.reading != ""].groupby("reading", sort=False):
        verdicts = ", ".join(
            f"{r.claim} {VERDICT[_verdict(r.reproduced)][1]}" for r in rows.itertuples()
        )
        parts.append(f"{reading} reading: {verdicts}")
    if not parts:
        return ""
    return "The attention law is read two ways; " + "; ".join(parts) + "."


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def _html_table(frame: pd.DataFrame, table_id: str) -> str:
    """A DataFrame as an HTML table; numbers (not booleans) right-aligned."""
    head = "".join(f"<th>{_e(c)}</th>" for c in frame.columns)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='num'>{_e(_fmt(v))}</td>"
            if isinstance(v, int | float) and not isinstance(v, bool)
            else f"<td>{_e(_fmt(v))}</td>"
            for v in row
        )
        + "</tr>"
        for row in frame.astype(object).itertuples(index=False)
    )
    return f"<table id='{table_id}'><tr>{head}</tr>{body}</table>"


def _runs_table(t: StudyTables) -> str:
    cols = ["name", "method", "data", "rank", "chi", "lr", "steps"]
    runs = t.runs[cols].copy()
    final = {}
    if t.losses is not None:
        for split in ("train", "heldout"):
            sub = t.losses[t.losses.split == split].sort_values("step")
            final[split] = sub.groupby("label").loss.last()
    for split, name in (("heldout", "final held-out loss"), ("train", "final train loss")):
        runs[name] = runs.name.map(final.get(split, {}))
    return _html_table(runs, "runs")


def _sweep_table(sweep: pd.DataFrame) -> str:
    return _html_table(sweep[[c for c in sweep.columns if c not in ("run", "reused")]], "sweep")


def _pre(title: str, obj, open_: bool = False) -> str:
    text = json.dumps(obj, indent=2, sort_keys=True, default=str)
    attr = " open" if open_ else ""
    return f"<details{attr}><summary>{_e(title)}</summary><pre>{_e(text)}</pre></details>"


def render_report(t: StudyTables, thresholds: ClaimThresholds | None = None) -> str:
    """The report page of loaded study tables, as an HTML string."""
    claims = evaluate_claims(t, thresholds)
    verdicts = [_verdict(v) for v in claims.reproduced]
    n_yes, n_no = verdicts.count(True), verdicts.count(False)
    n_na = verdicts.count(None)
    figures = draw_figures(t)
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>{GENERATOR}",
        f"<title>artent report: {_e(t.root.name)}</title><style>{CSS}</style></head><body>",
        "<h1>Artificial entanglement in fine-tuning: "
        + ("sweep report" if t.sweep is not None else "study report")
        + "</h1>",
        f"<p class='meta' id='model'>model: <b>{_e(t.model_name)}</b>"
        + (f" ({_e(t.study['base_model'])})" if "base_model" in t.study else "")
        + f"; study folder {_e(t.root.resolve())}; report written "
        f"{_e(time.strftime('%Y-%m-%d %H:%M:%S'))}"
        + ("; <b>quick study</b> (smallest settings)" if t.study.get("quick") else "")
        + "</p>",
        f"<p class='summary' id='summary'><b>{n_yes} of {len(claims)} claims reproduced</b>"
        f" ({n_no} not reproduced, {n_na} not measured). {_e(_readings_line(claims))}</p>",
        "<h2>Claims</h2><p>Each claim of the paper, the figure measured from this study's tables, "
        "the numerical criterion it was held to, and the figure that shows it. Entropies are in "
        "nats; S_cut is the entropy at the row|column cut, r the adapter rank.</p>",
        _claims_table(claims),
    ]
    missing = [rel for name, (rel, _) in TABLES.items() if t.tables.get(name) is None]
    if missing:
        parts.append(
            "<p class='missing'>Tables missing from this study: "
            + ", ".join(_e(m) for m in missing)
            + "</p>"
        )
    parts.append("<h2>Figures</h2>")
    for f in figures:
        head = f"Figure {f['number']}. {_e(f['title'])}."
        if f["png"]:
            parts.append(
                f"<figure id='fig-{f['key']}'><img alt='{_e(f['title'])}' "
                f"src='data:image/png;base64,{f['png']}'>"
                f"<figcaption><b>{head}</b> {_e(f['caption'])}</figcaption></figure>"
            )
        else:
            parts.append(
                f"<p class='missing' id='fig-{f['key']}'><b>{head}</b> {_e(f['note'])}</p>"
            )
    if t.sweep is not None:
        parts += ["<h2>Sweep points</h2>", _sweep_table(t.sweep)]
    parts += ["<h2>Runs</h2>", _runs_table(t), "<h2>Configs and versions</h2>"]
    for key, title in (
        ("config", "study config"),
        ("sweep", "sweep spec"),
        ("versions", "versions"),
        ("timings", "timings (s)"),
    ):
        if key in t.study:
            parts.append(_pre(title, t.study[key], open_=key in ("config", "sweep")))
    for key in sorted(
        set(t.study)
        - {
            "config",
            "sweep",
            "versions",
            "timings",
            "runs",
            "quick",
            "base_model",
            "model_name",
            "files",
        }
    ):
        parts.append(_pre(f"study.json: {key}", t.study[key]))
    if "runs" in t.study:
        parts.append(_pre("planned runs (study.json)", t.study["runs"]))
    for name, record in t.run_records.items():
        parts.append(_pre(f"runs/{name}/run.json", record))
    parts.append("</body></html>")
    return "\n".join(parts)


def check_report_replaceable(path: str | Path) -> None:
    """Refuse (one-line ``ValueError``) to replace a file that is not a report artent wrote.

    Args:
        path: where a report is about to be written; missing is fine.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_file():
        raise ValueError(f"{path}: is not a report artent wrote (a link or a folder); move it away")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.read(400)
    except OSError as e:
        raise ValueError(f"{path}: cannot be read ({e.strerror or e})") from None
    if GENERATOR not in head and not head.startswith(_OLD_HEAD):
        raise ValueError(
            f"{path}: exists and was not written by artent; it is never replaced (move it away "
            "or write to another folder)"
        )


def build_report(
    study_dir: str | Path,
    *,
    out: str | Path | None = None,
    thresholds: ClaimThresholds | None = None,
) -> Path:
    """Write the self-contained report page of a study folder (atomically); return its path.

    Args:
        study_dir: the study folder ``artent demo`` wrote (tables only are read).
        out: the HTML file to write (default ``study_dir/report.html``).
        thresholds: what counts as reproduced (see :class:`ClaimThresholds`).
    """
    t = load_study(study_dir)
    path = Path(out) if out is not None else t.root / REPORT_FILE
    check_report_replaceable(path)
    page = render_report(t, thresholds)
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
