"""Fused query/key/value projections split into their blocks, and the names of q, k and v.

``modules=["q_proj", "v_proj"]`` means the query and value updates on every architecture. Where a
model keeps them in modules of their own under other names (BERT's ``query`` / ``value``), those
are the same modules (:data:`ALIASES`). Where one module computes all three, its update ``Delta W``
(``out x in``, as ``B @ A``) is split by rows, using the model config's head counts:

* GPT-2 ``c_attn`` (a ``Conv1D``, its weight stored ``in x out``: peft's ``fan_in_fan_out``):
  rows ``[q | k | v]``, ``n_embd`` each;
* Phi-3 ``qkv_proj``: rows ``[q | k | v]`` of ``heads * head_dim``, ``kv_heads * head_dim``,
  ``kv_heads * head_dim``;
* GPT-NeoX ``query_key_value``: interleaved per head, rows ``[h, (q | k | v), head_dim]``.

The rows of a block of a factored update are the rows of ``B``: the block stays factored, with the
same nominal rank. Other fused layouts (Falcon's ``query_key_value``, MPT's ``Wqkv``...) are
refused by name rather than guessed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from artent.entanglement.profile import LowRank

#: Canonical module names of the query, key and value projections.
ROLE_MODULES = {"q": "q_proj", "k": "k_proj", "v": "v_proj"}
#: Module names meaning the query, key or value projection, on any architecture.
ALIASES = {
    "q_proj": "q", "query": "q", "q": "q",
    "k_proj": "k", "key": "k", "k": "k",
    "v_proj": "v", "value": "v", "v": "v",
}  # fmt: skip
#: Module names that compute query, key and value in one projection (known layout or not).
FUSED_NAMES = ("c_attn", "qkv_proj", "query_key_value", "Wqkv", "W_pack", "qkv", "wqkv")
#: model_type -> modules stored as transformers ``Conv1D`` (weight ``in x out``).
CONV1D_MODULES = {"gpt2": ("c_attn", "c_proj", "c_fc")}
#: (model_type, module) pairs whose q/k/v layout artent splits.
KNOWN_LAYOUTS = (("gpt2", "c_attn"), ("phi3", "qkv_proj"), ("gpt_neox", "query_key_value"))


def canonical_module(name: str) -> str:
    """``q_proj`` for every alias of the query projection (likewise k, v); else ``name``."""
    return ROLE_MODULES[ALIASES[name]] if name in ALIASES else name


def is_fused(module: str) -> bool:
    return module in FUSED_NAMES or "qkv" in module.lower()


def is_conv1d(arch: str | None, module: str) -> bool:
    """Whether ``module`` of architecture ``arch`` stores its weight transposed (``Conv1D``)."""
    return module in CONV1D_MODULES.get(arch or "", ())


@dataclass(frozen=True)
class FusedLayout:
    """The row blocks of a fused projection's ``out x in`` update.

    Attributes:
        arch: the architecture the layout is that of (``"gpt2"``, ``"phi3"``, ``"gpt_neox"``).
        blocks: role (``"q"``, ``"k"``, ``"v"``) -> the block's row indices, in order.
    """

    arch: str
    blocks: dict[str, torch.Tensor]


def _rows(start: int, size: int) -> torch.Tensor:
    return torch.arange(start, start + size)


def _contiguous(arch: str, sizes: tuple[int, int, int]) -> FusedLayout:
    q, k, v = sizes
    return FusedLayout(arch, {"q": _rows(0, q), "k": _rows(q, k), "v": _rows(q + k, v)})


def _config_int(config: dict, *keys: str) -> int | None:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def fused_layout(
    arch: str | None,
    module: str,
    rows: int,
    cols: int,
    config: dict | None,
    *,
    conv1d: bool,
    name: str,
    where: Any,
) -> FusedLayout:
    """The q/k/v row blocks of the fused projection ``name`` (a ``rows x cols`` update).

    Args:
        arch: the model's ``model_type`` (``None`` when no config was found).
        module: the projection's own name (``c_attn``, ``qkv_proj``...).
        rows, cols: the update's ``out x in`` shape.
        config: the model's config.json as a dict (``None`` when not found).
        conv1d: the weight is stored ``in x out`` (an adapter's ``fan_in_fan_out``).
        name: the module's path (for messages).
        where: the checkpoint or adapter (for messages).

    Without a config, two layouts are still certain from the shapes alone: a ``Conv1D``
    ``c_attn`` with ``rows == 3 * cols`` (GPT-2) and a ``qkv_proj`` with ``rows == 3 * cols``
    (Phi-3 with as many key/value heads as query heads).

    Raises:
        ValueError: a layout artent does not know, a layout that needs the config and has none,
            or a shape that does not fit the config's head counts.
    """
    whole = f"pass modules={module} to analyse the fused update whole"
    if arch is None:
        if module == "c_attn" and conv1d and rows == 3 * cols:
            arch = "gpt2"
        elif module == "qkv_proj" and rows == 3 * cols:
            return _contiguous("phi3", (cols, cols, cols))
        else:
            raise ValueError(
                f"{where}: '{name}' fuses query, key and value; splitting it needs the base "
                "model's config.json (pass base=, or keep the adapter's base_model_name_or_path "
                f"pointing to a local model folder), or {whole}"
            )
    config = config or {}
    if (arch, module) not in KNOWN_LAYOUTS:
        raise ValueError(
            f"{where}: '{name}' fuses query, key and value in a layout artent does not know for "
            f"architecture '{arch}'; {whole}"
        )
    hidden = _config_int(config, "hidden_size", "n_embd")
    heads = _config_int(config, "num_attention_heads", "n_head")
    if arch == "gpt2":
        width = hidden or rows // 3
        sizes = (width, width, width)
    elif arch == "phi3":
        if (heads is None or hidden is None) and rows == 3 * cols:
            heads, hidden = 1, cols  # no head counts: equal thirds, as the shape says
        if heads is None or hidden is None:
            raise ValueError(f"{where}: '{name}': the config has no head counts to split it")
        head_dim = _config_int(config, "head_dim") or hidden // heads
        kv = (_config_int(config, "num_key_value_heads") or heads) * head_dim
        sizes = (heads * head_dim, kv, kv)
    else:  # gpt_neox
        if heads is None or hidden is None:
            raise ValueError(f"{where}: '{name}': the config has no head counts to split it")
        sizes = (hidden // heads * heads,) * 3
    if rows != sum(sizes):
        raise ValueError(
            f"{where}: '{name}' has {rows} output rows, but the {arch} config's head counts give "
            f"q, k, v blocks of {sizes} rows"
        )
    if arch == "gpt_neox":  # interleaved per head: rows [heads, (q | k | v), head_dim]
        index = torch.arange(rows).reshape(heads, 3, -1)
        return FusedLayout(arch, {r: index[:, i].reshape(-1) for i, r in enumerate("qkv")})
    return _contiguous(arch, sizes)


def split_update(update: Any, rows: torch.Tensor) -> Any:
    """The row block ``rows`` of an update: ``LowRank`` stays factored (rows of ``B``)."""
    if isinstance(update, LowRank):
        return LowRank(update.B[rows], update.A, update.scale)
    return update[rows]


def read_model_config(*places: Any, hub_names: tuple[Any, ...] = ()) -> dict | None:
    """A model's config.json as a dict, from the first place that has one; ``None`` if none does.

    Args:
        places: checkpoint paths (a folder, or a file whose folder holds config.json).
        hub_names: model names whose config.json may sit in the local Hugging Face cache (never
            fetched: nothing here reaches a network).
    """
    for place in places:
        if not place or not Path(place).expanduser().exists():
            continue
        path = Path(place).expanduser()
        folder = path if path.is_dir() else path.parent
        if (folder / "config.json").is_file():
            return _config_dict(folder / "config.json")
    for name in hub_names:
        if not isinstance(name, str) or not name or Path(name).expanduser().exists():
            continue
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(name, "config.json")
        except Exception:  # a name that is not a repo id, or no huggingface_hub: no config
            cached = None
        if isinstance(cached, str) and Path(cached).is_file():
            return _config_dict(Path(cached))
    return None


def _config_dict(path: Path) -> dict | None:
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    text = config.get("text_config")
    return {**config, **text} if isinstance(text, dict) else config
