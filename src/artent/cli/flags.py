"""The library's parameter names as the command line's flags, in the messages the CLI prints.

The library names its parameters as Python does, ``texts=/no/such.txt: no such file or folder``,
``pass base=``; the CLI shows the flag the user typed instead, ``--texts /no/such.txt: no such
file or folder``, ``pass --base``. :data:`FLAGS` is the one table of that mapping, and
:func:`as_flags` applies it to every error and note line on its way out (:mod:`artent.cli.app`).
"""

from __future__ import annotations

import re

#: library parameter name -> the command line's flag (every flag here is the name with dashes)
FLAGS: dict[str, str] = {
    name: "--" + name.replace("_", "-")
    for name in (
        "adapter",
        "allow_pickle",
        "base",
        "batch_size",
        "chi",
        "device",
        "encodings",
        "force",
        "intruder_eps",
        "intruder_k",
        "k",
        "label",
        "layers",
        "lr",
        "model",
        "modules",
        "n_texts",
        "order",
        "orders",
        "out",
        "profile_chunk_elements",
        "rank",
        "renyi",
        "run",
        "seq_len",
        "texts",
        "tuned",
        "what",
        "window_start",
        "workers",
    )
}

# ``name=`` not inside a word, a path (``sweep/rank=8``), another ``a=b`` or a config file's
# ``option name=...``; then ``True`` (a switch given), a value (``texts=/x``) or nothing (``pass
# base=``, ``modules=: ...``)
_REFERENCE = re.compile(
    r"(?<![\w./\\=-])(?<!option )(" + "|".join(sorted(FLAGS, key=len, reverse=True)) + r")="
    r"(?:(True)\b|(?=([^\s:,;)\]]?)))"
)


def _flag(match: re.Match) -> str:
    flag = FLAGS[match.group(1)]
    if match.group(2):  # allow_pickle=True: the switch alone
        return flag
    return f"{flag} " if match.group(3) else flag


def as_flags(message: object) -> str:
    """``message`` with each ``name=`` of a library parameter written as the CLI's flag.

    Args:
        message: an error or a note from the library (any object: formatted with ``str``).

    Returns:
        The message as the command line says it: ``texts=/x: ...`` -> ``--texts /x: ...``.
    """
    return _REFERENCE.sub(_flag, str(message))
