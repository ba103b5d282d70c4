"""Weight updates ``Delta W``, from a (base, tuned) pair or from a saved PEFT adapter.

docs/analyses.md, "Internal: weight updates" (the maths: docs/method.md): ``Delta W = W_tuned -
W_base`` per layer and module (``q_proj``, ``v_proj`` by default), or an adapter's own update
without loading the base where that is possible. Each update comes as a :class:`Delta`; factored
where the adapter is factored (LoRA, rsLoRA, AdaLoRA, VeRA, MPS: a
:class:`~artent.entanglement.profile.LowRank`, never formed densely), else a dense tensor.

Updates are in the ``(out_features, in_features)`` layout of ``y = W x`` (peft's ``B @ A``). The
adapter formulas replicate peft 0.21's ``get_delta_weight`` / merge for linear layers; the
conventions relied on are listed per kind in :data:`ADAPTER_KINDS` and the readers, and
tests/models/test_deltas.py checks every kind against peft's ``merge_and_unload``. The query, key
and value updates are found under their aliases and inside fused projections on every
architecture (:mod:`artent.models.deltas.fused`).

Both entry points check everything they can from the checkpoint headers before yielding anything
(architectures, module names, shapes, the base being present where needed), then read and yield
one module at a time, so memory stays at a few tensors whatever the model size.

Modules: ``common`` (:class:`Delta`, tensor checks), ``select`` (``modules=`` / ``layers=``),
``fused`` (aliases and fused q/k/v layouts), ``pairs`` (tuned - base), ``adapter`` (saved
adapters) and the readers of each adapter family (``lora``, ``lycoris``, ``mps``).
"""

from __future__ import annotations

from artent.models.deltas.adapter import (
    ADAPTER_KINDS,
    PEFT_KEY_PREFIX,
    count_deltas,
    deltas_from_adapter,
)
from artent.models.deltas.common import ALL_MODULES, DEFAULT_MODULES, Delta
from artent.models.deltas.fused import ALIASES, FusedLayout, canonical_module, fused_layout
from artent.models.deltas.pairs import deltas_from_pair

__all__ = [
    "ADAPTER_KINDS",
    "ALIASES",
    "ALL_MODULES",
    "DEFAULT_MODULES",
    "PEFT_KEY_PREFIX",
    "Delta",
    "FusedLayout",
    "canonical_module",
    "count_deltas",
    "deltas_from_adapter",
    "deltas_from_pair",
    "fused_layout",
]
