"""The peft internals that artent.adapters.mps relies on (see model.register_mps_with_peft).

Each assertion says which internal moved, so a peft upgrade fails here first, with a message,
rather than somewhere deep in a save/load round trip.
"""

from __future__ import annotations

import enum
import inspect
import json

import peft
from packaging.version import Version

import artent.adapters.mps  # noqa: F401  (registers the method)
from artent.adapters.mps import MPSConfig, MPSModel
from artent.adapters.mps.config import MPS_PARAMETER_PREFIX


def test_peft_version_is_the_checked_range() -> None:
    version = Version(peft.__version__)
    assert Version("0.21") <= version < Version("0.22"), (
        f"peft {peft.__version__} is outside 0.21.x, the range artent.adapters.mps was checked "
        f"against: re-run tests/adapters and update the pin in pyproject.toml"
    )


def test_peft_type_is_an_extensible_str_enum() -> None:
    from peft.utils.peft_types import PeftType

    assert issubclass(PeftType, str) and issubclass(PeftType, enum.Enum), (
        "peft.utils.peft_types.PeftType is no longer a str Enum; _add_peft_type_member must change"
    )
    for table, kind in [
        ("_member_map_", dict),
        ("_value2member_map_", dict),
        ("_member_names_", list),
    ]:
        assert isinstance(getattr(PeftType, table, None), kind), (
            f"PeftType.{table} moved or changed type; _add_peft_type_member writes to it"
        )


def test_mps_is_a_full_peft_type_member() -> None:
    from peft.utils.peft_types import PeftType

    member = PeftType.MPS
    assert PeftType("MPS") is member and PeftType["MPS"] is member
    assert member in list(PeftType), "iterating PeftType does not show the added member"
    # Saved configs carry the plain string; it must find the same dict entries as the member.
    assert member == "MPS" and hash(member) == hash("MPS") and json.dumps(member) == '"MPS"'
    assert MPSConfig().peft_type is member


def test_register_peft_method_signature() -> None:
    from peft.utils import register_peft_method

    params = inspect.signature(register_peft_method).parameters
    missing = {"name", "config_cls", "model_cls", "prefix"} - set(params)
    assert not missing, f"peft.utils.register_peft_method lost the keyword(s) {sorted(missing)}"


def test_peft_mappings_point_at_the_mps_classes() -> None:
    import peft.mapping as mapping

    for table, expected in [
        ("PEFT_TYPE_TO_CONFIG_MAPPING", MPSConfig),
        ("PEFT_TYPE_TO_TUNER_MAPPING", MPSModel),
        ("PEFT_TYPE_TO_PREFIX_MAPPING", MPS_PARAMETER_PREFIX),
    ]:
        mapping_dict = getattr(mapping, table, None)
        assert isinstance(mapping_dict, dict), f"peft.mapping.{table} moved"
        # Looked up with the plain string, as PeftConfig.from_pretrained does with the saved JSON.
        assert mapping_dict.get("MPS") is expected or mapping_dict.get("MPS") == expected, (
            f"peft.mapping.{table}['MPS'] is {mapping_dict.get('MPS')!r}, not {expected!r}"
        )


def test_config_loading_path() -> None:
    from peft.config import PeftConfig

    assert hasattr(PeftConfig, "_get_peft_type"), (
        "PeftConfig._get_peft_type (used by from_pretrained) moved"
    )
    config = PeftConfig.from_peft_type(peft_type="MPS", r=3, chi=2, target_modules=["q_proj"])
    assert isinstance(config, MPSConfig) and (config.r, config.chi) == (3, 2)


def test_base_tuner_hooks_and_their_order() -> None:
    from peft.tuners.tuners_utils import BaseTuner

    for name in (
        "_prepare_model",
        "_create_and_replace",
        "_check_target_module_exists",
        "_replace_module",
    ):
        assert callable(getattr(BaseTuner, name, None)), f"peft BaseTuner.{name} moved"
    source = inspect.getsource(BaseTuner.inject_adapter)
    positions = [
        source.find(call)
        for call in ("_prepare_adapter_config(", "_prepare_model(", "_create_and_replace(")
    ]
    assert -1 not in positions and positions == sorted(positions), (
        "BaseTuner.inject_adapter no longer calls _prepare_adapter_config, then _prepare_model, "
        "then _create_and_replace: MPSModel._prepare_model validates targets in that slot"
    )


def test_tuner_layer_contract() -> None:
    from peft.tuners import tuners_utils

    layer = tuners_utils.BaseTunerLayer
    for name in ("adapter_layer_names", "other_param_names", "set_adapter", "get_base_layer",
                 "_move_adapter_to_device_of_base_layer", "_cast_input_dtype", "merged",
                 "active_adapters", "disable_adapters"):  # fmt: skip
        assert hasattr(layer, name), f"peft BaseTunerLayer.{name} moved"
    for name in ("check_adapters_to_merge", "_maybe_include_all_linear_layers"):
        assert callable(getattr(tuners_utils, name, None)), f"peft.tuners.tuners_utils.{name} moved"
    assert tuners_utils.INCLUDE_LINEAR_LAYERS_SHORTHAND == "all-linear"


def test_state_dict_key_convention() -> None:
    from peft.tuners.tuners_utils import _remove_adapter_name_from_state_dict_key

    key = "base_model.model.model.layers.0.self_attn.q_proj.mps_B.default"
    assert _remove_adapter_name_from_state_dict_key(key, "default") == key.removesuffix(
        ".default"
    ), (
        "peft changed how adapter names are stripped from ParameterDict keys; saved MPS "
        "checkpoints may no longer load"
    )


def test_lora_default_targets_for_llama() -> None:
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as targets

    assert set(targets.get("llama", [])) == {"q_proj", "v_proj"}, (
        "peft's LoRA default targets for llama changed; MPSModel.target_module_mapping reuses them"
    )


def test_registration_is_idempotent() -> None:
    import peft.mapping as mapping
    from peft.utils.peft_types import PeftType

    from artent.adapters.mps import register_mps_with_peft

    before = len(mapping.PEFT_TYPE_TO_CONFIG_MAPPING)
    register_mps_with_peft()
    assert len(mapping.PEFT_TYPE_TO_CONFIG_MAPPING) == before
    assert mapping.PEFT_TYPE_TO_TUNER_MAPPING["MPS"] is MPSModel
    assert list(PeftType).count(PeftType.MPS) == 1
