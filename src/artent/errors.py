"""An exception (or any message) as one line of an error message: the one rule for that.

This module imports nothing of artent's, so that every part of the house may use it.
"""

from __future__ import annotations


def one_line(exc: object, *, typed: bool = False, whole: bool = False) -> str:
    """``exc``'s message on one line, for an error message that quotes another library's.

    Args:
        exc: an exception (or any object: a message is formatted with ``str``).
        typed: lead with the exception's type name (``"KeyError: 'x'"``), for messages from
            libraries that raise many types whose name says what went wrong.
        whole: every line of the message, its whitespace runs as single spaces; by default only
            its first non-empty line (a library's message often trails a hint or a traceback).

    Returns:
        The line; an exception whose message is empty gives its type name.
    """
    text = str(exc)
    if whole:
        line = " ".join(text.split())
    else:
        line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if not isinstance(exc, BaseException):
        return line
    name = type(exc).__name__
    if not line:
        return name
    return f"{name}: {line}" if typed else line
