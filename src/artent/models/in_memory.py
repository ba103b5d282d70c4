"""Models already in memory as inputs of the internal analysis: two loaded models, or a peft one.

``W_tuned - W_base`` of two loaded models goes through the same plan and reader as two saved
checkpoints (:mod:`artent.models.deltas.pairs`): :class:`StateCheckpoint` shows a model's state
dict as a :class:`~artent.models.checkpoints.Checkpoint` (the same keys, shapes and upcast to
float32), so fused projections, Conv1D layouts, module and layer choices and the architecture
check are those of saved checkpoints. A peft model's own update is read from its live adapter
layers (:mod:`artent.models.deltas.live`), the factors themselves, with no file written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch

from artent.models.deltas.common import ALL_MODULES, Delta
from artent.models.deltas.live import find_targets, live_deltas, tuner_layer_type
from artent.models.deltas.pairs import pair_deltas, plan_checkpoints

__all__ = ["StateCheckpoint", "deltas_from_models", "deltas_from_peft_model", "is_module"]


def is_module(value: Any) -> bool:
    """A ``torch.nn.Module`` (a model in memory) rather than a path or a name."""
    return isinstance(value, torch.nn.Module)


class StateCheckpoint:
    """A model's parameters seen as a checkpoint: ``keys``, ``shape``, ``dtype``, ``get``.

    Tensors come back detached on the CPU, in float32 (float64 when the model holds float64), as
    :class:`~artent.models.checkpoints.Checkpoint` returns saved ones.
    """

    def __init__(self, model: torch.nn.Module, path: str):
        self.path = path
        self._state = dict(model.state_dict(keep_vars=False))

    def keys(self) -> list[str]:
        return list(self._state)

    def __contains__(self, key: object) -> bool:
        return key in self._state

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._state[key].shape)

    def dtype(self, key: str) -> torch.dtype:
        return self._state[key].dtype

    def get(self, key: str) -> torch.Tensor:
        t = self._state[key].detach().to("cpu")
        return t.to(torch.float64 if t.dtype == torch.float64 else torch.float32)

    def close(self) -> None:
        pass


def _config(model: Any) -> dict | None:
    config = getattr(model, "config", None)
    return config.to_dict() if hasattr(config, "to_dict") else None


def deltas_from_models(
    base: torch.nn.Module,
    tuned: torch.nn.Module,
    *,
    modules: Iterable[str],
    layers: Iterable[int] | None = None,
) -> Iterator[Delta]:
    """``Delta W = W_tuned - W_base`` of two models in memory, per chosen module.

    Args:
        base, tuned: two models of one architecture (``torch.nn.Module``; transformers models
            carry the config that fused projections are split with).
        modules, layers: as :func:`artent.models.deltas.deltas_from_pair` takes them.

    Raises:
        ValueError: the two differ in a tensor's name or shape; a module or layer that matches
            nothing.
    """

    base_ckpt = StateCheckpoint(base, "(a model in memory)")
    tuned_ckpt = StateCheckpoint(tuned, "(a model in memory)")
    config = _config(base) or _config(tuned)
    plan, arch = plan_checkpoints(
        base_ckpt, tuned_ckpt, config, modules, layers, where=base_ckpt.path
    )
    return pair_deltas(base_ckpt, tuned_ckpt, plan, arch)


def deltas_from_peft_model(
    model: torch.nn.Module, *, modules: Iterable[str], layers: Iterable[int] | None = None
) -> Iterator[Delta]:
    """The update of every adapted module of a peft model in memory, from its live factors.

    Args:
        model: a ``peft.PeftModel`` (or any model carrying peft tuner layers).
        modules: module names; ``["all"]``: those of ``q, k, v, o, gate, up, down`` present.
        layers: layer indices; ``None`` for all.

    Raises:
        ValueError: a model with no adapter layers (its update is only defined against a base:
            pass ``base=`` and ``tuned=``), a module without an adapter, more than one active
            adapter, an adapter kind artent does not read.
    """

    tuner = tuner_layer_type()
    if not tuner or not any(isinstance(m, tuner) for m in model.modules()):
        raise ValueError(
            "model=: this model carries no peft adapter layers, so it has no update of its own; "
            "compare it with its base (base=, tuned=)"
        )
    modules = list(modules)
    if modules == ["all"]:
        present = {path.rsplit(".", 1)[-1] for path, _ in model.named_modules()}
        modules = [m for m in ALL_MODULES if m in present]
    targets = find_targets(model, modules, layers)
    dense = [t.name for t in targets if t.kind != "adapter"]
    if dense:
        raise ValueError(
            f"model=: module '{dense[0]}' carries no adapter; name only adapted modules "
            f"(modules=), or compare whole models with base= and tuned="
        )
    return live_deltas(targets)
