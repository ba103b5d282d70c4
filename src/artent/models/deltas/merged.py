"""Updates of the adapter kinds artent has no factored reader for, through peft's own merge.

For IA3, OFT, BOFT, HRA, FourierFT and LoRA on ``target_parameters`` (the 3-D expert weights of
MoE models) the update is read as peft defines it: the base model is loaded (float64, CPU), the
adapter is put on it with peft, and each adapted layer is merged in turn; its update is the merged
weight minus the weight before (``W_merged - W``), exact in float64. Every kind peft can merge
this way would do; these are the ones the test matrix checks against peft's ``merge_and_unload``
(tests/models/test_merged_kinds.py). An adapter kind peft cannot merge (prompt tuning, prefix
tuning...) is refused in one line.

This path needs the base as a model folder (``config.json`` and weights) and holds the whole model
in float64 while it reads: the factored readers (:mod:`~artent.models.deltas.lora`,
:mod:`~artent.models.deltas.lycoris`, :mod:`~artent.models.deltas.mps`) stay the path for the
kinds they cover. The 3-D expert weights of ``target_parameters`` give one update per expert,
named ``<module path>.<parameter>[e<index>]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

from artent.models.adapter_check import MERGE_KINDS, read_adapter_config
from artent.models.deltas.common import Delta
from artent.models.deltas.fused import fused_layout, is_conv1d, split_update
from artent.models.deltas.select import select
from artent.models.pretrained import from_pretrained, is_causal_config, put_adapter

PREFIX = "base_model.model."


def _load(adapter: Path, base, allow_pickle: bool):
    """The base model in float64 with the adapter on it (peft), and its config as a dict."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    if base is None:
        raise ValueError(
            f"adapter {adapter}: its update is read through peft's merge, which needs the base "
            f"model (base=, a model folder)"
        )
    folder = Path(base).expanduser()
    folder = folder if folder.is_dir() else folder.parent
    if not (folder / "config.json").is_file():
        raise ValueError(
            f"adapter {adapter}: its update is read through peft's merge, which needs the base "
            f"as a model folder with config.json; {base} has none"
        )
    what = f"model {folder}"
    config = from_pretrained(what, AutoConfig.from_pretrained, str(folder), local_files_only=True)
    auto = AutoModelForCausalLM if is_causal_config(config) else AutoModel
    model = from_pretrained(
        what,
        auto.from_pretrained,
        str(folder),
        local_files_only=True,
        use_safetensors=None if allow_pickle else True,
        dtype=torch.float64,
    )
    return put_adapter(model, str(adapter), allow_pickle=allow_pickle), config.to_dict()


def _layers(model) -> dict[str, tuple]:
    """Every adapted weight: its name (no peft prefix) -> (tuner layer, parameter name)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    found: dict[str, tuple] = {}
    for path, mod in model.named_modules():
        if not isinstance(mod, BaseTunerLayer):
            continue
        path = path.removeprefix(PREFIX).replace(".base_layer", "")
        param = getattr(mod, "parameter_name", None)
        found[path if param is None else f"{path}.{param}"] = (mod, param or "weight")
    return found


def deltas_through_merge(
    adapter: str | Path,
    *,
    base: str | Path | None,
    modules: Iterable[str],
    layers: Iterable[int] | None,
    allow_pickle: bool = False,
    count_only: bool = False,
) -> Iterator[Delta] | int:
    """Each chosen module's update, as peft merges it (see the module docstring).

    Args:
        adapter: the adapter folder.
        base: the base model folder (required).
        modules, layers, allow_pickle: as in :func:`~artent.models.deltas.deltas_from_adapter`.
        count_only: return how many updates would be yielded (the model is still loaded).

    Raises:
        ValueError: no base, a base that is not a model folder, an adapter peft cannot load on
            it, a module or layer that matches nothing.
    """
    adapter = Path(adapter)
    config = read_adapter_config(adapter)
    model, model_config = _load(adapter, base, allow_pickle)
    targets = _layers(model)
    arch = model_config.get("model_type")

    def layout_of(name: str, module: str):
        rows, cols = _shape(*targets[name])[-2:]
        conv1d = is_conv1d(arch, module)
        if conv1d:
            rows, cols = cols, rows
        return fused_layout(
            arch, module, rows, cols, model_config, conv1d=conv1d, name=name,
            where=f"adapter {adapter}",
        )  # fmt: skip

    plan = select(list(targets), modules, layers, adapter, layout_of)
    experts = {n: _shape(*targets[n])[0] if len(_shape(*targets[n])) == 3 else 0 for n in targets}
    if count_only:
        return sum(max(experts[p.name], 1) for p in plan)
    kind = MERGE_KINDS.get(config["peft_type"].upper(), "lora")
    return _deltas(targets, plan, kind, arch)


def _shape(layer, param: str) -> tuple[int, ...]:
    return tuple(getattr(layer.get_base_layer(), param).shape)


def _deltas(targets, plan, kind: str, arch) -> Iterator[Delta]:
    merged: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for p in plan:
        if p.name not in merged:
            layer, param = targets[p.name]
            weight = getattr(layer.get_base_layer(), param)
            with torch.no_grad():
                before = weight.detach().clone()
                layer.merge()  # this layer only: the others' weights are not touched
                after = getattr(layer.get_base_layer(), param).detach()
                update = (after - before).clone()
            if not torch.isfinite(update).all():
                raise ValueError(f"adapter layer '{p.name}': the merged weight has NaN or Inf")
            if is_conv1d(arch, p.module):
                update, before = update.T.contiguous(), before.T.contiguous()
            if update.dim() == 3 and getattr(layer.get_base_layer(), "is_transposed", False):
                # experts stored (experts, in, out): each expert's update in (out, in) layout
                update, before = update.transpose(1, 2), before.transpose(1, 2)
            merged = {p.name: (update, before)}  # fused blocks of one module share it
        update, before = merged[p.name]
        rank = _rank(targets[p.name][0]) if kind == "lora" else None
        stack = [(p.label, update, before)]
        if update.dim() == 3:  # one update per expert
            stack = [(f"{p.label}[e{e}]", update[e], before[e]) for e in range(update.shape[0])]
        for label, u, w in stack:
            if p.rows is not None:
                u, w = split_update(u, p.rows), split_update(w, p.rows)
            rows, cols = u.shape
            yield Delta(label, p.layer, p.module, u, rows, cols, rank, kind, not bool(u.any()), w)


def _rank(layer) -> int | None:
    r = getattr(layer, "r", {})
    return int(next(iter(r.values()))) if r else None
