"""The ``artent`` command line: parses options, calls the layers beneath, prints. No maths here.

A user mistake (a missing file, a bad option, a tensor that is not there) ends with one line on
stderr and exit code 2, never a traceback.
"""

# importing registers the commands
from artent.cli import analyse, pipelines, profile, train  # noqa: F401
from artent.cli.app import UserError, app, main

__all__ = ["UserError", "app", "main"]
