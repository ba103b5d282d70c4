"""The peft internals artent's MPS adapter is built on, checked when it is imported.

Only MPS training (and loading a saved MPS adapter onto a model) needs them: the analyses read
LoRA-family adapters from their tensors and from peft's public layers. So a peft release that
moved one of them breaks ``import artent.adapters.mps`` with one line naming the internal and the
releases tested, and nothing else. tests/adapters/test_peft_internals.py asserts each in detail.
"""

from __future__ import annotations

import enum
import inspect
import warnings

#: the peft releases the MPS adapter was tested with (the oldest and newest run in CI, .ci/run)
TESTED_PEFT = ("0.19.1", "0.20.0", "0.21.2")
#: the minor releases the pyproject range admits
SUPPORTED_MINORS = ("0.19", "0.20", "0.21")

_TUNER_HOOKS = ("_prepare_model", "_create_and_replace", "_check_target_module_exists",
                "_replace_module", "inject_adapter")  # fmt: skip
_LAYER_ATTRIBUTES = ("adapter_layer_names", "other_param_names", "set_adapter", "get_base_layer",
                     "_move_adapter_to_device_of_base_layer", "_cast_input_dtype", "merged",
                     "active_adapters", "disable_adapters")  # fmt: skip


def _missing() -> str | None:
    """The first internal that is not as the MPS adapter needs it (``None``: all there)."""
    try:
        import peft.mapping as mapping
        from peft.tuners import tuners_utils
        from peft.utils import (
            TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING,  # noqa: F401
            register_peft_method,
        )
        from peft.utils.peft_types import PeftType
    except ImportError as e:
        return f"an import ({e})"
    if not (issubclass(PeftType, str) and issubclass(PeftType, enum.Enum)):
        return "PeftType as a str Enum"
    for table, kind in (("_member_map_", dict), ("_value2member_map_", dict),
                        ("_member_names_", list)):  # fmt: skip
        if not isinstance(getattr(PeftType, table, None), kind):
            return f"PeftType.{table}"
    params = inspect.signature(register_peft_method).parameters
    for name in ("name", "config_cls", "model_cls", "prefix"):
        if name not in params:
            return f"register_peft_method(..., {name}=)"
    for table in ("PEFT_TYPE_TO_CONFIG_MAPPING", "PEFT_TYPE_TO_TUNER_MAPPING",
                  "PEFT_TYPE_TO_PREFIX_MAPPING"):  # fmt: skip
        if not isinstance(getattr(mapping, table, None), dict):
            return f"peft.mapping.{table}"
    for name in _TUNER_HOOKS:
        if not callable(getattr(tuners_utils.BaseTuner, name, None)):
            return f"BaseTuner.{name}"
    for name in _LAYER_ATTRIBUTES:
        if not hasattr(tuners_utils.BaseTunerLayer, name):
            return f"BaseTunerLayer.{name}"
    for name in ("check_adapters_to_merge", "_maybe_include_all_linear_layers"):
        if not callable(getattr(tuners_utils, name, None)):
            return f"peft.tuners.tuners_utils.{name}"
    return None


def check_peft_internals() -> None:
    """Check the installed peft for the internals the MPS adapter uses.

    Raises:
        ImportError: naming the first internal that moved, the installed peft and the releases
            tested.

    Warns:
        UserWarning: a peft outside the tested minor releases whose internals are all there.
    """
    from importlib import metadata

    try:
        version = metadata.version("peft")
    except metadata.PackageNotFoundError:
        raise ImportError("artent's MPS adapter needs peft (pip install peft)") from None
    missing = _missing()
    if missing is not None:
        raise ImportError(
            f"artent's MPS adapter relies on peft's {missing}, which peft {version} does not "
            f"have as expected; it was tested with peft {', '.join(TESTED_PEFT)} (LoRA-family "
            f"analyses do not need it)"
        )
    if ".".join(version.split(".")[:2]) not in SUPPORTED_MINORS:
        warnings.warn(
            f"peft {version} is not one artent's MPS adapter was tested with "
            f"({', '.join(TESTED_PEFT)}); its internals look the same, so it is used",
            UserWarning,
            stacklevel=2,
        )
