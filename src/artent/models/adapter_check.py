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
from artent.models.checkpoints import CheckpointError, open_checkpoint
from artent.models.user_regex import compile_user_regex

CONFIG_NAME = "adapter_config.json"
#: peft_type (as in adapter_config.json) -> the tensor names peft saves after each module's name.
ADAPTER_KINDS: dict[str, tuple[str, ...]] = {
    "LORA": ("lora_A.weight", "lora_B.weight", "lora_B.bias", "lora_magnitude_vector",
             "lora_magnitude_vector.weight"),
    "ADALORA": ("lora_A", "lora_B", "lora_E"),
    "LOHA": ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2"),
    "LOKR": ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2"),
    "VERA": ("vera_lambda_b", "vera_lambda_d"),
    "MPS": ("mps_B", "mps_G1", "mps_G2"),
}  # fmt: skip
#: peft_type (as in adapter_config.json) -> the update kind, for the kinds read through the merge.
MERGE_KINDS = {"IA3": "ia3", "OFT": "oft", "BOFT": "boft", "HRA": "hra", "FOURIERFT": "fourierft"}
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


def adapter_weights(adapter: str | Path, *, allow_pickle: bool = False) -> dict[str, Any]:
    """Every tensor of an adapter folder's weights, through the guarded checkpoint reader."""
    with open_checkpoint(adapter_weights_file(Path(adapter)), allow_pickle=allow_pickle) as ckpt:
        return {key: ckpt.get(key) for key in ckpt.keys()}


def adapter_weights_file(path: Path) -> Path:
    """The weights of an adapter folder (a weights file passed itself is returned as is)."""
    if not path.is_dir():
        return path
    for name in ("adapter_model.safetensors", "adapter_model.bin"):
        if (path / name).is_file():
            return path / name
    raise CheckpointError(f"adapter folder {path} has no adapter_model.safetensors")


def through_merge(config: dict) -> bool:
    """Whether an adapter (its validated config) is read through peft's merge."""
    kind = config["peft_type"].upper()
    return kind in MERGE_KINDS or (kind == "LORA" and bool(config.get("target_parameters")))
