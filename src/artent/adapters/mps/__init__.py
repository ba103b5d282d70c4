"""MPS adaptation: LoRA with its down-projection replaced by a two-core MPS (docs/training.md).

Importing this package registers the method ``mps`` with peft, so that::

    import artent.adapters.mps
    from peft import get_peft_model, PeftModel

    model = get_peft_model(base, MPSConfig(r=8, chi=4))
    model.save_pretrained(path)
    PeftModel.from_pretrained(fresh_base, path)

all work as for LoRA. Each adapted layer (:class:`MPSLinear`) exposes ``delta_weight()``,
``factors()`` (``B``, ``A_MPS``, scale) and ``cores()`` (``B``, ``G_1``, ``G_2``, scale).

The method registers itself through peft internals: :mod:`artent.adapters.mps.peft_check` checks
them first, so an untested peft fails here, in one line that names what moved and the releases
tested, rather than deep in a training run.
"""

from artent.adapters.mps.peft_check import check_peft_internals

check_peft_internals()

from artent.adapters.mps.config import (  # noqa: E402
    MPSConfig,
    balanced_factorization,
    mps_num_parameters,
    resolve_input_split,
)
from artent.adapters.mps.layer import MPSLayer, MPSLinear  # noqa: E402
from artent.adapters.mps.model import MPSModel, register_mps_with_peft  # noqa: E402

register_mps_with_peft()

__all__ = [
    "MPSConfig",
    "MPSLayer",
    "MPSLinear",
    "MPSModel",
    "balanced_factorization",
    "mps_num_parameters",
    "register_mps_with_peft",
    "resolve_input_split",
]
