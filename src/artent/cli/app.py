"""The ``artent`` app, its consoles and its error handling; commands live beside this module.

A user mistake (a missing file, a bad option, a tensor that is not there) ends with one line on
stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="artent: artificial entanglement of fine-tuned language models.",
)
# Rich falls back to 80 columns off a terminal; tables of profiles need more.
console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


class UserError(Exception):
    """A mistake in what the user asked for: reported in one line, exit code 2."""


Opt = typer.Option


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``artent`` console script; returns the exit code."""
    import click

    try:
        app(args=argv, standalone_mode=False)
    except UserError as e:
        err_console.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        return 2
    except click.exceptions.Abort:
        err_console.print("aborted")
        return 130
    except click.exceptions.ClickException as e:
        err_console.print(
            f"[red]error:[/red] {e.format_message()}", highlight=False, soft_wrap=True
        )
        return 2
    except click.exceptions.Exit as e:
        return e.exit_code
    return 0
