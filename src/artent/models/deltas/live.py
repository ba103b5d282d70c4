"""Weight updates of a model in memory, while it trains: from its peft layers or from a snapshot.

The in-memory counterpart of :mod:`artent.models.deltas`, which reads saved files. A model
wrapped by peft gives each adapted module's update from the live adapter weights, on the factored
path where the adapter is factored (LoRA, rsLoRA, AdaLoRA, VeRA and artent's MPS: a
:class:`~artent.entanglement.profile.LowRank` over the parameters themselves, never ``m x n``),
dense where it is not (DoRA, LoHa, LoKr). Any other module (full fine-tuning) gives
``W_now - W_snapshot`` against a CPU copy of its weight taken by :func:`snapshot_weights`.

The formulas are those of peft 0.21's layers, the same functions as the saved-adapter readers'
(:mod:`artent.models.deltas.formulas`), fed off the layer objects: ``scaling`` (rsLoRA,
``alpha_pattern``), ``ranknum`` (AdaLoRA) and the adapter rank come from the layer rather than
from a config. tests/models/test_live.py checks every kind
against peft's own ``merge_and_unload``.

Updates come in the ``(out_features, in_features)`` layout of ``y = W x`` (GPT-2's ``Conv1D``
and ``fan_in_fan_out`` adapters are transposed back), on the device the model is on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from artent.entanglement.profile import LowRank
from artent.models.checkpoints import parse_module_key
from artent.models.deltas.adapter import PEFT_KEY_PREFIX
from artent.models.deltas.common import Delta, is_zero_product, output_dtype
from artent.models.deltas.formulas import (
    adalora_scale,
    adalora_update,
    dora_update,
    lora_update,
    vera_update,
)

__all__ = [
    "LIVE_KINDS",
    "Target",
    "adapter_kind",
    "describe",
    "find_targets",
    "live_deltas",
    "snapshot_weights",
]

#: The peft kinds whose live layers are read (the same set the saved-adapter readers cover).
LIVE_KINDS = ("LoRA", "rsLoRA", "DoRA", "AdaLoRA", "VeRA", "LoHa", "LoKr", "MPS")


@dataclass
class Target:
    """One module whose update is followed.

    Attributes:
        name: its path in the model without peft's prefix (``model.layers.3.self_attn.q_proj``),
            as :mod:`artent.models.deltas` names it.
        layer: its layer index (``None`` outside the layer stack).
        module: its own name (``q_proj``).
        kind: ``"adapter"`` (a peft tuner layer) or ``"dense"`` (a plain weight, against a
            snapshot).
        handle: the module object (the tuner layer, or the ``nn.Linear`` / ``Conv1D``).
        adapter: the active adapter's name (adapters only).
    """

    name: str
    layer: int | None
    module: str
    kind: str
    handle: Any
    adapter: str | None = None

    @property
    def weight(self) -> torch.Tensor:
        """The module's own (base) weight parameter."""
        base = self.handle.get_base_layer() if self.kind == "adapter" else self.handle
        return base.weight


def tuner_layer_type():
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:  # peft absent: no adapter layers can exist
        return ()
    return BaseTunerLayer


def _is_conv1d(module: Any) -> bool:
    """GPT-2's ``Conv1D``: a linear map whose weight is stored ``(in, out)``."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def _check_unsharded(name: str, weight: Any) -> None:
    # FSDP/ZeRO-3 hold a shard (or nothing) of each parameter on a rank: reading it there would
    # profile a fragment. Say so before training starts rather than profile garbage.
    if type(weight).__name__ == "DTensor" or hasattr(weight, "ds_id") or weight.numel() == 0:
        raise ValueError(
            f"module '{name}': its parameters are sharded (FSDP or DeepSpeed ZeRO-3); the "
            f"entanglement callback reads whole weights (use DDP, or analyse saved checkpoints)"
        )


def _active_adapter(layer: Any, name: str) -> str:
    active = list(getattr(layer, "active_adapters", []) or [])
    if len(active) != 1:
        raise ValueError(
            f"module '{name}' has active adapters {active}; exactly one must be active to read "
            f"its update"
        )
    return active[0]


def find_targets(
    model: Any, modules: Iterable[str], layers: Iterable[int] | None = None
) -> list[Target]:
    """The modules of ``model`` named in ``modules`` (and in ``layers``), checked readable.

    Args:
        model: a ``torch.nn.Module``: a transformers model, or a peft model around one.
        modules: module names (``q_proj``...), matched against the last component of each path.
        layers: layer indices to keep; ``None`` for all.

    Returns:
        The targets by layer, then in the order of ``modules``.

    Raises:
        ValueError: a module name or layer that matches nothing; a module that is frozen and
            carries no adapter (its update would stay zero); an adapter kind artent does not
            read; a layer that is not linear; several active adapters; sharded parameters.
    """
    modules = (modules,) if isinstance(modules, str) else tuple(modules)
    if not modules or not all(isinstance(m, str) and m for m in modules):
        raise ValueError(f"modules: give one or more module names, got {modules!r}")
    wanted = None if layers is None else {int(i) for i in layers}
    tuner = tuner_layer_type()
    inside: list[str] = []  # prefixes of tuner layers: their children are theirs, not targets
    found: list[Target] = []
    for path, mod in model.named_modules():
        if any(path.startswith(p + ".") for p in inside):
            continue
        name = path[len(PEFT_KEY_PREFIX) :] if path.startswith(PEFT_KEY_PREFIX) else path
        is_tuner = bool(tuner) and isinstance(mod, tuner)
        if is_tuner:
            inside.append(path)
        parsed = parse_module_key(name + ".weight")
        if parsed is None or parsed[1] not in modules:
            continue
        layer, module = parsed
        if is_tuner:
            found.append(Target(name, layer, module, "adapter", mod, _active_adapter(mod, name)))
        elif isinstance(getattr(mod, "weight", None), torch.Tensor) and mod.weight.dim() == 2:
            found.append(Target(name, layer, module, "dense", mod))
    for module in modules:
        if not any(t.module == module for t in found):
            raise ValueError(f"modules: no module named '{module}' in the model")
    if wanted is not None:
        missing = sorted(wanted - {t.layer for t in found})
        if missing:
            have = sorted({t.layer for t in found if t.layer is not None})
            raise ValueError(f"layers: no layer {missing[0]} in the model (layers: {have})")
        found = [t for t in found if t.layer in wanted]
    for module in modules:
        mine = [t for t in found if t.module == module]
        if not mine:
            raise ValueError(f"layers: module '{module}' is in none of layers {sorted(wanted)}")
        if not any(t.kind == "adapter" or t.weight.requires_grad for t in mine):
            raise ValueError(
                f"modules: '{module}' is frozen and carries no adapter in this model: its update "
                f"stays zero (adapted modules are the peft config's target_modules)"
            )
    for t in found:
        _check_unsharded(t.name, t.weight)
        if t.kind == "adapter":
            adapter_kind(t)  # refuses unsupported kinds now, not mid-training
    return sorted(found, key=lambda t: (t.layer is None, t.layer or 0, modules.index(t.module)))


def snapshot_weights(targets: Iterable[Target]) -> dict[str, torch.Tensor]:
    """CPU copies (in their own dtype) of the weights of the dense targets, by target name."""
    with torch.no_grad():
        return {
            t.name: t.weight.detach().to("cpu", copy=True) for t in targets if t.kind == "dense"
        }


def live_deltas(
    targets: Iterable[Target], snapshot: dict[str, torch.Tensor] | None = None
) -> Iterator[Delta]:
    """The current update of every target, one at a time.

    Args:
        targets: from :func:`find_targets`.
        snapshot: from :func:`snapshot_weights`, needed when a target is dense.

    Returns:
        :class:`~artent.models.deltas.Delta` objects: factored where the adapter is (LowRank over
        detached parameters, on their device), dense otherwise (float32, float64 where the weights
        are; on the weight's device); ``base`` is the starting weight (the adapter's base layer,
        or the snapshot).
    """
    for t in targets:
        with torch.no_grad():
            if t.kind == "adapter":
                update, rank, kind, is_zero = _READERS[adapter_kind(t)](t)
                weight = t.weight.detach()
                if _is_conv1d(t.handle.get_base_layer()) or getattr(t.handle, "fan_in_fan_out", 0):
                    weight = weight.T
            else:
                update, rank, kind = _dense_update(t, snapshot), None, "dense"
                is_zero = not bool(update.any())
                weight = snapshot[t.name]  # stays on the CPU, where the companions are taken
                weight = weight.T if _is_conv1d(t.handle) else weight
            weight = weight.to(output_dtype(weight))
            rows, cols = update.shape
            yield Delta(
                t.name, t.layer, t.module, update, rows, cols, rank, kind, bool(is_zero), weight
            )


# ----- dense (full fine-tuning) -----------------------------------------------------------------


def _dense_update(t: Target, snapshot: dict[str, torch.Tensor] | None) -> torch.Tensor:
    if snapshot is None or t.name not in snapshot:
        raise ValueError(f"module '{t.name}': no snapshot of its starting weight")
    now, then = t.weight.detach(), snapshot[t.name]
    dtype = output_dtype(now, then)
    delta = now.to(dtype) - then.to(device=now.device, dtype=dtype)
    return delta.T if _is_conv1d(t.handle) else delta


# ----- adapters -----------------------------------------------------------------------------------


def _linear_base(t: Target) -> None:
    base = t.handle.get_base_layer()
    if not (isinstance(base, torch.nn.Linear) or _is_conv1d(base)):
        raise ValueError(
            f"module '{t.name}' is a {type(base).__name__}: only linear layers' updates are read"
        )


def _lora(t: Target):
    layer, ad = t.handle, t.adapter
    A, B = layer.lora_A[ad].weight.detach(), layer.lora_B[ad].weight.detach()
    scale = float(layer.scaling[ad])
    r = int(layer.r[ad])
    if ad not in getattr(layer, "lora_variant", {}):
        update, is_zero = lora_update(B, A, scale)
        return update, r, "rslora" if layer.use_rslora.get(ad, False) else "lora", is_zero
    W = layer.get_base_layer().weight.detach()
    W = W.T if layer.fan_in_fan_out else W
    magnitude = layer.lora_magnitude_vector[ad].weight.detach()
    eps = min(torch.finfo(magnitude.dtype).eps, torch.finfo(W.dtype).eps)
    delta, is_zero = dora_update(W, B, A, scale, magnitude, eps=eps)
    return delta, r, "dora", is_zero


def _adalora(t: Target):
    layer, ad = t.handle, t.adapter
    A, B, E = (getattr(layer, p)[ad].detach() for p in ("lora_A", "lora_B", "lora_E"))
    scale = adalora_scale(float(layer.scaling[ad]), float(layer.ranknum[ad]))
    update, is_zero = adalora_update(B, A, E, scale)
    return update, int(A.shape[0]), "adalora", is_zero


def _vera(t: Target):
    layer, ad = t.handle, t.adapter
    lam_b, lam_d = layer.vera_lambda_b[ad].detach(), layer.vera_lambda_d[ad].detach()
    vera_B, vera_A = layer.vera_B[ad].detach(), layer.vera_A[ad].detach()
    rows, cols = layer.out_features, layer.in_features
    update, is_zero = vera_update(lam_b, lam_d, vera_B, vera_A, rows, cols)
    return update, int(update.A.shape[0]), "vera", is_zero


def _dense_adapter(kind: str):
    def read(t: Target):
        # peft's own get_delta_weight (rank dropout off): LoHa's Hadamard and LoKr's Kronecker
        # products have no factored route to the profile.
        layer, ad = t.handle, t.adapter
        delta = layer.get_delta_weight(ad).detach()
        delta = delta.to(output_dtype(delta))
        if getattr(layer, "fan_in_fan_out", False):
            delta = delta.T
        return delta, int(layer.r[ad]), kind, not bool(delta.any())

    return read


def _mps(t: Target):
    B, A, scale = t.handle.factors(t.adapter)
    B, A = B.detach(), A.detach()
    return LowRank(B, A, float(scale)), int(B.shape[1]), "mps", is_zero_product(B, A)


def adapter_kind(t: Target) -> str:
    """The kind of a target's tuner layer (``lora``, ``rslora``, ``dora``, ``adalora``, ``vera``,
    ``loha``, ``lokr``, ``mps``); ValueError for kinds and variants artent does not read."""
    from peft.tuners.adalora import AdaLoraLayer
    from peft.tuners.loha import LoHaLayer
    from peft.tuners.lokr import LoKrLayer
    from peft.tuners.lora import LoraLayer
    from peft.tuners.vera import VeraLayer

    try:
        from artent.adapters.mps import MPSLayer
    except ImportError:  # a peft whose internals the MPS adapter cannot use: no MPS layers exist
        MPSLayer = ()  # noqa: N806

    layer = t.handle
    _linear_base(t)
    if isinstance(layer, AdaLoraLayer):  # a LoraLayer subclass: test it first
        return "adalora"
    if isinstance(layer, LoraLayer):
        variant = getattr(layer, "lora_variant", {}).get(t.adapter)
        if variant is not None and type(variant).__name__ != "DoraLinearVariant":
            raise ValueError(
                f"module '{t.name}': LoRA variant {type(variant).__name__} is not supported"
            )
        if t.adapter not in layer.lora_A or not isinstance(
            layer.lora_A[t.adapter], torch.nn.Linear
        ):
            raise ValueError(f"module '{t.name}': only linear LoRA layers are read")
        if variant is not None:
            return "dora"
        return "rslora" if layer.use_rslora.get(t.adapter, False) else "lora"
    for cls, kind in ((VeraLayer, "vera"), (LoHaLayer, "loha"), (LoKrLayer, "lokr")):
        if isinstance(layer, cls):
            return kind
    if isinstance(layer, MPSLayer):
        return "mps"
    raise ValueError(
        f"module '{t.name}': peft layer {type(layer).__name__} is not supported "
        f"(supported: {', '.join(LIVE_KINDS)})"
    )


_READERS = {
    "lora": _lora,
    "rslora": _lora,
    "dora": _lora,
    "adalora": _adalora,
    "vera": _vera,
    "loha": _dense_adapter("loha"),
    "lokr": _dense_adapter("lokr"),
    "mps": _mps,
}


def describe(targets: list[Target]) -> str:
    """The update kind of the targets, for records: ``fft``, one adapter kind, or ``mixed``."""
    kinds = {"fft" if t.kind == "dense" else adapter_kind(t) for t in targets}
    return kinds.pop() if len(kinds) == 1 else "mixed"
