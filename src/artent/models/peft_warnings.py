"""Silencing the one deprecation warning peft raises on every model it wraps.

peft 0.21's ``PeftModel.__init__`` reads ``model.is_gradient_checkpointing``, which transformers 5
deprecated in favour of ``is_activation_checkpointing`` (a ``FutureWarning`` on every
``get_peft_model`` and ``PeftModel.from_pretrained``). The cause is in peft, not in artent, and
there is nothing for a user to act on, so artent's own calls into peft run under
:func:`peft_quietly`. The test suite filters the same message in ``pyproject.toml`` for the tests
that call peft directly.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

#: The message (a regular expression) of the deprecation peft triggers in transformers.
PEFT_CHECKPOINTING_DEPRECATION = r"`is_gradient_checkpointing` is deprecated"


@contextmanager
def peft_quietly() -> Iterator[None]:
    """Run a block with peft's ``is_gradient_checkpointing`` FutureWarning filtered out."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=PEFT_CHECKPOINTING_DEPRECATION, category=FutureWarning
        )
        yield
