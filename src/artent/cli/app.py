"""The ``artent`` app, its consoles and its error handling; commands live beside this module.

A user mistake (a missing file, a bad option, a tensor that is not there) ends with one line on
stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.text import Text

from artent import __version__
from artent.cli.flags import as_flags
from artent.errors import one_line

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


class ManyErrors(Exception):
    """Several failures of one command (a sweep's failed points): one line each, exit code 2."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def report_errors(lines: list[str]) -> None:
    """End the command with one error line per item of ``lines`` (exit code 2)."""
    raise ManyErrors(lines)


Opt = typer.Option


def _print_version(value: bool) -> None:
    if value:
        console.print(f"artent {__version__}", highlight=False)
        raise typer.Exit(0)


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="print the version"
    ),
) -> None:
    """artent: artificial entanglement of fine-tuned language models."""


def _click_exception() -> type[Exception]:
    """The ClickException class typer raises: typer >= 0.22 bundles its own copy of click
    (``typer._click``), whose exceptions ``click.ClickException`` does not catch."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _error(message: object) -> int:
    line = as_flags(one_line(message, whole=True))  # the library's `texts=` as `--texts`
    err_console.print(Text.assemble(("error:", "red"), " ", line), soft_wrap=True, highlight=False)
    return 2


def _is_out_of_memory(e: BaseException) -> bool:
    # torch raises OutOfMemoryError on a GPU and a plain RuntimeError from its CPU allocator
    return isinstance(e, MemoryError) or (
        isinstance(e, RuntimeError)
        and (type(e).__name__ == "OutOfMemoryError" or "can't allocate memory" in str(e))
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``artent`` console script; returns the exit code.

    Usage errors, bad input and files that cannot be read or written end in one line on stderr
    and exit code 2; Ctrl-C in one line and exit code 130, SIGTERM likewise with 143.
    ``ARTENT_DEBUG=1`` shows the traceback behind a one-line error.
    """
    with _sigterm_as_ctrl_c():
        return _main(argv)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is, so that it ends as Ctrl-C does (cleaned up)."""


_terminated = False


@contextmanager
def _sigterm_as_ctrl_c():
    """SIGTERM (``kill``, a job scheduler, ``docker stop``) is handled as Ctrl-C: the folder's lock
    and record are cleaned, the run resumes, and the command exits 143 with one line."""
    global _terminated
    _terminated = False

    def handler(signum, frame):
        global _terminated
        if _terminated:  # a second SIGTERM while the first is cleaned up: let that finish
            return
        _terminated = True
        raise _Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave the signal alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> int:
    click_exception = _click_exception()
    try:
        code = app(args=argv, standalone_mode=False, prog_name="artent")
    except UserError as e:
        return _error(e)
    except ManyErrors as e:
        for line in e.lines:
            _error(line)
        return 2
    except click_exception as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # a bare `artent` or a bare group
            console.print(e.format_message(), highlight=False, markup=False)
            return _error("no command given (the commands are listed above)")
        return _error(e.format_message())
    except typer.Abort:
        return _interrupted()
    except typer.Exit as e:
        return _interrupted() if e.exit_code == 130 else e.exit_code
    except (KeyboardInterrupt, EOFError):
        return _interrupted()
    except Exception as e:
        if os.environ.get("ARTENT_DEBUG"):
            raise
        if isinstance(e, ValueError):  # bad input found below the CLI (options, files, data)
            return _error(e)
        if isinstance(e, OSError):  # a folder that is not writable, a full disk, a lost file
            where = e.filename or ""
            return _error(f"{where}: {e.strerror or e}" if where else e)
        if _is_out_of_memory(e):
            return _error(f"out of memory ({one_line(e, whole=True)[:200]}); ask for smaller sizes")
        raise
    if code == 130:  # typer turns Ctrl-C inside a command into a returned 130
        return _interrupted()
    return code if isinstance(code, int) else 0


def _interrupted() -> int:
    what, code = ("terminated (SIGTERM)", 143) if _terminated else ("interrupted (Ctrl-C)", 130)
    err_console.print(
        f"{what}; a train, demo or sweep run again resumes where it stopped",
        soft_wrap=True,
        highlight=False,
    )
    return code
