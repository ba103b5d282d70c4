"""One reader of ``adapter_config.json`` and one check that an adapter fits a model.

``artent internal`` reads an adapter's update from its tensors, ``external`` and ``nohair`` put it
on the base model to run it; all three read the config through :func:`read_adapter_config` (a JSON
object whose fields artent uses have the right types, a ``peft_type`` artent knows) and check the
pair with :func:`check_fits` (every adapted module exists in the base, with the shape the adapter
was made for), so the same pair is accepted or refused with the same message by every command.
The adapter's tensors are read with :func:`artent.models.checkpoints.open_checkpoint`: safetensors,
or a pickle only with ``allow_pickle``.
"""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path
from typing import Any

from artent.errors import one_line
from artent.models.checkpoints import CheckpointError
from artent.models.user_regex import compile_user_regex

CONFIG_NAME = "adapter_config.json"
# fields artent reads, by the type they must have when present (None is always allowed)
_NUMBERS = ("r", "lora_alpha", "alpha", "init_r", "lora_dropout", "dropout", "chi", "n_1")
_RANKS = ("r", "init_r", "chi")
_FLAGS = ("use_rslora", "use_dora", "fan_in_fan_out")
_PATTERNS = ("alpha_pattern", "rank_pattern")


def _number(value: Any) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def read_adapter_config(adapter: str | Path) -> dict[str, Any]:
    """The validated ``adapter_config.json`` of an adapter folder (or of a weights file's folder).

    Raises:
        CheckpointError: no such file, not a JSON object, a field of the wrong type, an unknown
            ``peft_type``; the message names the file and the field.
    """
    from artent.models.deltas.adapter import ADAPTER_KINDS
    from artent.models.deltas.merged import MERGE_KINDS

    path = Path(adapter)
    folder = path if path.is_dir() else path.parent
    if not path.exists():
        raise CheckpointError(f"adapter {path} does not exist")
    file = folder / CONFIG_NAME
    if not file.is_file():
        raise CheckpointError(f"adapter folder {folder} has no {CONFIG_NAME}")
    try:
        config = json.loads(file.read_text())
    except (ValueError, OSError) as e:
        raise CheckpointError(f"{file}: not valid JSON ({one_line(e, whole=True)})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{file}: expected a JSON object, got {type(config).__name__}")
    kind = config.get("peft_type")
    known = sorted({*ADAPTER_KINDS, *MERGE_KINDS})
    if not isinstance(kind, str) or kind.upper() not in known:
        raise CheckpointError(
            f"{file}: peft_type {kind!r} is not supported: artent reads weight updates, and this "
            f"is no adapter kind peft merges into the weights (supported: {', '.join(known)})"
        )
    for key in _NUMBERS:
        if config.get(key) is not None and not _number(config[key]):
            raise CheckpointError(f"{file}: {key!r} must be a finite number, got {config[key]!r}")
    for key in _RANKS:  # a rank of 0 has no update (peft refuses it; so does every reader)
        value = config.get(key)
        if key == "r" and kind.upper() == "OFT" and value == 0 and config.get("oft_block_size"):
            continue  # OFT's r is its block count: 0 means "from oft_block_size" (peft's rule)
        if value is not None and not (float(value) >= 1 and float(value).is_integer()):
            raise CheckpointError(f"{file}: {key!r} must be a positive integer, got {value!r}")
    for key in _FLAGS:
        if config.get(key) is not None and not isinstance(config[key], bool):
            raise CheckpointError(f"{file}: {key!r} must be true or false, got {config[key]!r}")
    for key in _PATTERNS:
        pattern = config.get(key)
        if pattern is None:
            continue
        if not isinstance(pattern, dict):
            raise CheckpointError(f"{file}: {key!r} must be an object, got {pattern!r}")
        for name, value in pattern.items():
            try:
                compile_user_regex(name, f"{file}: {key!r} key")
            except ValueError as e:
                raise CheckpointError(str(e)) from None
            # AdaLoRA's rank_pattern holds the boolean mask of the ranks it kept
            mask = isinstance(value, list) and all(isinstance(v, bool) for v in value)
            if not (_number(value) or (key == "rank_pattern" and mask)):
                raise CheckpointError(f"{file}: {key}[{name!r}] must be a number, got {value!r}")
    targets = config.get("target_modules")
    if targets is not None and not (
        isinstance(targets, str)
        or (isinstance(targets, list) and all(isinstance(t, str) for t in targets))
    ):
        raise CheckpointError(f"{file}: 'target_modules' must be names, got {targets!r}")
    for key in ("target_modules", "exclude_modules"):
        if isinstance(config.get(key), str):  # one pattern, matched by artent with a bound
            try:
                compile_user_regex(config[key], f"{file}: {key!r}")
            except ValueError as e:
                raise CheckpointError(str(e)) from None
    return config


def check_fits(adapter) -> None:
    """Every module of an opened adapter exists in its base with the shape the adapter expects.

    Args:
        adapter: an ``artent.models.deltas.adapter.SavedAdapter`` opened with a base (without
            one there is nothing to check against).

    Raises:
        CheckpointError, ValueError: the first module that is not in the base, or whose shape
            differs, naming the adapter, the module and the base.
    """
    from artent.models.deltas.adapter import _READERS

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
    from artent.models.deltas.adapter import SavedAdapter
    from artent.models.deltas.merged import through_merge

    if through_merge(read_adapter_config(adapter)):
        return  # peft checks these when it loads them (artent.models.loading.put_adapter)
    ad = SavedAdapter(adapter, base, allow_pickle)
    try:
        check_fits(ad)
    finally:
        ad.ckpt.close()
        if ad.base is not None:
            ad.base.close()


def adapter_weights(adapter: str | Path, *, allow_pickle: bool = False) -> dict[str, Any]:
    """Every tensor of an adapter folder's weights, through the guarded checkpoint reader."""
    from artent.models.checkpoints import open_checkpoint
    from artent.models.deltas.adapter import adapter_weights_file

    with open_checkpoint(adapter_weights_file(Path(adapter)), allow_pickle=allow_pickle) as ckpt:
        return {key: ckpt.get(key) for key in ckpt.keys()}
