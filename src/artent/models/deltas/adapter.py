"""Weight updates from a saved PEFT adapter, without loading the base where that is possible.

The tensors peft saves are grouped by module (:data:`ADAPTER_KINDS`), each kind read by its own
module (``lora``: LoRA, rsLoRA, DoRA, AdaLoRA, VeRA; ``lycoris``: LoHa, LoKr; ``mps``: artent's
MPS). Everything that the headers can tell is checked before the first update is read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import torch

from artent.models.adapter_check import (
    ADAPTER_KINDS,
    adapter_weights_file,
    read_adapter_config,
    through_merge,
)
from artent.models.checkpoints import Checkpoint, CheckpointError, open_checkpoint
from artent.models.deltas import lora, lycoris, mps
from artent.models.deltas.common import (
    DEFAULT_MODULES,
    Delta,
    finite,
    is_zero_product,
    matrix_shape,
    stored_dtype,
)
from artent.models.deltas.fused import fused_layout, read_model_config, split_update
from artent.models.deltas.merged import deltas_through_merge
from artent.models.deltas.pairs import plan_pair
from artent.models.deltas.select import Planned, select

#: Prefix peft puts before every module name when it saves an adapter of a PreTrainedModel.
PEFT_KEY_PREFIX = "base_model.model."
# LoRA variants whose update is not (a function of) B @ A: refused rather than misread.
_UNSUPPORTED_LORA_OPTIONS = (
    "use_bdlora", "arrow_config", "alora_invocation_tokens", "velora_config",
    "monteclora_config", "kasa_config", "layer_replication", "target_parameters",
)  # fmt: skip
#: peft_type -> (shape(adapter, name, parts), build(adapter, name, parts)).
_READERS: dict[str, tuple[Callable, Callable]] = {
    "LORA": (lora.lora_shape, lora.lora_build),
    "ADALORA": (lora.adalora_shape, lora.adalora_build),
    "LOHA": (lycoris.loha_shape, lycoris.loha_build),
    "LOKR": (lycoris.lokr_shape, lycoris.lokr_build),
    "VERA": (lora.vera_shape, lora.vera_build),
    "MPS": (mps.mps_shape, mps.mps_build),
}


class SavedAdapter:
    """One saved adapter: its config, its tensors grouped by module, and the optional base."""

    def __init__(self, adapter, base, allow_pickle: bool):
        path = Path(adapter)
        self.config = read_adapter_config(path)  # the one reader every command shares
        self.path = path
        self.peft_type = self.config["peft_type"].upper()
        if path.is_dir():
            path = adapter_weights_file(path)
        self.ckpt = open_checkpoint(path, allow_pickle=allow_pickle)
        self.base = None if base is None else open_checkpoint(base, allow_pickle=allow_pickle)
        self.fan_in_fan_out = bool(self.config.get("fan_in_fan_out", False))
        self.modules: dict[str, dict[str, str]] = {}
        self.shared: dict[str, str] = {}
        parts = sorted(ADAPTER_KINDS[self.peft_type], key=len, reverse=True)
        for key in self.ckpt.keys():
            rest = key[len(PEFT_KEY_PREFIX) :] if key.startswith(PEFT_KEY_PREFIX) else key
            part = next((p for p in parts if rest.endswith("." + p)), None)
            if part is not None:
                self.modules.setdefault(rest[: -len(part) - 1], {})[part] = key
            elif rest.rsplit(".", 1)[-1] in ("vera_A", "vera_B"):
                self.shared[rest.rsplit(".", 1)[-1]] = key

    def get(self, key: str) -> torch.Tensor:
        return finite(self.ckpt, key)

    def shape(self, parts: dict[str, str], part: str) -> tuple[int, ...]:
        return self.ckpt.shape(parts[part])

    def need(self, name: str, parts: dict[str, str], *needed: str) -> None:
        for part in needed:
            if part not in parts:
                raise CheckpointError(f"adapter {self.path}: module '{name}' has no '{part}'")

    def require_base(self, why: str) -> Checkpoint:
        if self.base is None:
            raise ValueError(f"adapter {self.path}: {why}; pass the base checkpoint (base=)")
        return self.base

    def base_weight(self, name: str) -> torch.Tensor:
        """The base weight in ``(out, in)`` layout (transposed back where ``fan_in_fan_out``)."""
        weight = finite(self.require_base("this update needs the base weights"), name + ".weight")
        return weight.T.contiguous() if self.fan_in_fan_out else weight

    def base_shape(self, name: str) -> tuple[int, int]:
        base = self.require_base("this update needs the base weights")
        if name + ".weight" not in base:
            raise CheckpointError(
                f"adapter {self.path}: module '{name}' is not in base {base.path}"
            )
        rows, cols = matrix_shape(base, name + ".weight")
        return (cols, rows) if self.fan_in_fan_out else (rows, cols)


def check_fits(adapter) -> None:
    """Every module of an opened adapter exists in its base with the shape the adapter expects.

    Args:
        adapter: a :class:`SavedAdapter` opened with a base (without
            one there is nothing to check against).

    Raises:
        CheckpointError, ValueError: the first module that is not in the base, or whose shape
            differs, naming the adapter, the module and the base.
    """
    if adapter.base is None:
        return
    shape_of = _READERS[adapter.peft_type][0]
    for name, parts in adapter.modules.items():
        rows, cols = shape_of(adapter, name, parts)
        expected = adapter.base_shape(name)
        if (rows, cols) != expected:
            raise ValueError(
                f"adapter {adapter.path}: module '{name}' has shape {(rows, cols)} but the base "
                f"{adapter.base.path} has {expected}"
            )


def check_adapter_fits(
    adapter: str | Path, base: str | Path, *, allow_pickle: bool = False
) -> None:
    """:func:`check_fits` for an adapter folder and a base checkpoint (headers only)."""
    if through_merge(read_adapter_config(adapter)):
        return  # peft checks these when it loads them (artent.models.pretrained.put_adapter)
    ad = SavedAdapter(adapter, base, allow_pickle)
    try:
        check_fits(ad)
    finally:
        ad.ckpt.close()
        if ad.base is not None:
            ad.base.close()


def _plan_adapter(adapter, base, modules, layers, allow_pickle):
    ad = SavedAdapter(adapter, base, allow_pickle)
    if ad.peft_type == "LORA":
        for option in _UNSUPPORTED_LORA_OPTIONS:
            if ad.config.get(option):
                raise ValueError(f"adapter {ad.path}: LoRA option '{option}' is not supported")
        if ad.config.get("init_lora_weights") == "mica":
            raise ValueError(f"adapter {ad.path}: the MiCA LoRA variant is not supported")
        if ad.config.get("use_dora"):
            ad.require_base("a DoRA update depends on the base weights")
    if ad.peft_type == "VERA":
        ad.require_base("VeRA stores no module input widths")
    shape_of = _READERS[ad.peft_type][0]
    # The base's config (or the one peft recorded the adapter's base under) splits fused modules.
    recorded = ad.config.get("base_model_name_or_path")
    recorded = recorded if isinstance(recorded, str) else None
    config = read_model_config(base, recorded, hub_names=(recorded,))
    arch = config.get("model_type") if config else None

    def layout_of(name: str, module: str):
        rows, cols = shape_of(ad, name, ad.modules[name])
        conv1d = ad.fan_in_fan_out
        return fused_layout(
            arch, module, rows, cols, config, conv1d=conv1d, name=name, where=f"adapter {ad.path}"
        )

    check_fits(ad)  # the same check external and nohair make before loading the pair
    plan = select(ad.modules, modules, layers, ad.path, layout_of)
    return ad, plan


def deltas_from_adapter(
    adapter: str | Path,
    *,
    base: str | Path | None = None,
    modules: Iterable[str] = DEFAULT_MODULES,
    layers: Iterable[int] | None = None,
    allow_pickle: bool = False,
) -> Iterator[Delta]:
    """Each chosen module's update from a saved peft adapter (peft 0.21 conventions).

    Args:
        adapter: the adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``), or
            its weights file with the config beside it.
        base: the base checkpoint; needed for DoRA and VeRA, and when given, every adapted
            module's shape is checked against it.
        modules, layers, allow_pickle: as in :func:`~artent.models.deltas.deltas_from_pair`;
            a fused projection (GPT-2 ``c_attn``, Phi-3 ``qkv_proj``, NeoX ``query_key_value``)
            is split with the config.json of ``base``, else of the adapter's recorded
            ``base_model_name_or_path`` (a local folder or the local Hugging Face cache), else
            by its shape where that is certain (:func:`~artent.models.deltas.fused.fused_layout`).

    Kinds read through peft's own merge (``W_merged - W``, dense; the base model folder is
    required: :mod:`~artent.models.deltas.merged`): IA3, OFT, BOFT, HRA, FourierFT and LoRA on
    ``target_parameters`` (one update per MoE expert). Kinds with their own readers: LoRA
    ``LowRank(B, A, alpha / r)`` (alpha_pattern / rank_pattern honoured; rsLoRA
    ``alpha / sqrt(r)``); DoRA dense ``m / ||W + sBA||_row (W + sBA) - W``; LoHa, LoKr dense;
    AdaLoRA ``LowRank(B, A * E, scaling / (init_r + 1e-5))``; VeRA ``LowRank(lambda_b vera_B,
    lambda_d vera_A)``; artent's MPS ``LowRank(B, A_MPS, alpha / r)``.

    Raises:
        CheckpointError: no ``adapter_config.json`` or weights, unreadable files, NaN or Inf.
        ValueError: an unknown peft_type or unsupported variant, DoRA/VeRA without a base, shapes
            that do not fit the base, a module or layer that matches nothing, a fused
            projection whose q/k/v layout artent does not know.
    """
    if through_merge(read_adapter_config(adapter)):
        return deltas_through_merge(
            adapter, base=base, modules=modules, layers=layers, allow_pickle=allow_pickle
        )
    ad, plan = _plan_adapter(adapter, base, modules, layers, allow_pickle)
    return _adapter_deltas(ad, plan)


def _adapter_deltas(ad: SavedAdapter, plan: list[Planned]) -> Iterator[Delta]:
    build = _READERS[ad.peft_type][1]
    cached: tuple | None = None  # the last whole update: the blocks of a fused module share it
    try:
        for p in plan:
            if cached is None or cached[0] != p.name:
                weight = None
                if ad.base is not None:
                    dtype = stored_dtype(ad.base, [p.name + ".weight"])
                    weight = ad.base_weight(p.name).to(dtype)
                cached = (p.name, *build(ad, p.name, ad.modules[p.name]), weight)
            _, update, rank, kind, is_zero, weight = cached
            if p.rows is not None:
                update = split_update(update, p.rows)
                weight = None if weight is None else split_update(weight, p.rows)
                is_zero = _block_is_zero(update)
            rows, cols = update.shape
            yield Delta(
                p.label, p.layer, p.module, update, rows, cols, rank, kind, bool(is_zero), weight
            )
    finally:
        ad.ckpt.close()
        if ad.base is not None:
            ad.base.close()


def _block_is_zero(update) -> bool:
    if isinstance(update, torch.Tensor):
        return not bool(update.any())
    return update.scale == 0 or is_zero_product(update.B, update.A)


def count_deltas(
    *,
    base: str | Path | None = None,
    tuned: str | Path | None = None,
    adapter: str | Path | None = None,
    modules: Iterable[str] = DEFAULT_MODULES,
    layers: Iterable[int] | None = None,
    allow_pickle: bool = False,
) -> int:
    """How many :class:`Delta` the matching call would yield (headers only, for progress bars).

    With ``adapter``: as :func:`deltas_from_adapter` (``base`` optional); else as
    :func:`deltas_from_pair` (``base`` and ``tuned`` required). Raises what that call raises
    before its first item.
    """
    if adapter is not None:
        if tuned is not None:
            raise ValueError("count_deltas: give either adapter or tuned, not both")
        if through_merge(read_adapter_config(adapter)):
            return deltas_through_merge(
                adapter, base=base, modules=modules, layers=layers, allow_pickle=allow_pickle,
                count_only=True,
            )  # fmt: skip
        ad, plan = _plan_adapter(adapter, base, modules, layers, allow_pickle)
        for ckpt in (ad.ckpt, ad.base):
            if ckpt is not None:
                ckpt.close()
        return len(plan)
    if base is None or tuned is None:
        raise ValueError("count_deltas: give adapter, or both base and tuned")
    base_ckpt, tuned_ckpt, plan, _ = plan_pair(base, tuned, modules, layers, allow_pickle)
    base_ckpt.close()
    tuned_ckpt.close()
    return len(plan)
