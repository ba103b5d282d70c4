"""artent: artificial entanglement of fine-tuned language models.

The public maths lives in :mod:`artent.entanglement` and is re-exported here, with the analyses
as functions returning DataFrames (:func:`internal`, :func:`external`, :func:`nohair`, from
:mod:`artent.api`). The training callback is :class:`artent.integrations.transformers.
EntanglementCallback`.
"""

from artent.api import external, internal, nohair
from artent.entanglement import *  # noqa: F401,F403
from artent.entanglement import __all__ as _ent_all

__version__ = "0.1.0"
__all__ = [*_ent_all, "__version__", "external", "internal", "nohair"]
