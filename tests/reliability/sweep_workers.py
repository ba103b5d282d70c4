"""Stand-in point runners for the sweep's process scheduler (imported by spawned workers)."""

from __future__ import annotations

import os
import signal


def killed_or_ok(point, out, **kwargs):
    """Dies by SIGKILL on the point named ``die``; any other point is an ``ok`` row at once."""
    if point["name"].endswith("=die"):
        os.kill(os.getpid(), signal.SIGKILL)
    return {"name": point["name"], "status": "ok", "error": None, "pid": os.getpid()}
