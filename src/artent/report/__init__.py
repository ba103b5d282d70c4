"""The study report: the paper's claims checked against a study's tables, and one HTML page.

Reads tables only (never models): see :mod:`artent.report.tables` for what a study folder holds.
"""

from artent.report.claims import ClaimThresholds, evaluate_claims
from artent.report.html import build_report, render_report
from artent.report.tables import StudyTables, load_study

__all__ = [
    "ClaimThresholds",
    "StudyTables",
    "build_report",
    "evaluate_claims",
    "load_study",
    "render_report",
]
