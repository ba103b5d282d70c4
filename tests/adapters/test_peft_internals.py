"""The peft internals that artent.adapters.mps relies on (see model.register_mps_with_peft).

Each assertion says which internal moved, so a peft upgrade fails here first, with a message,
rather than somewhere deep in a save/load round trip.
"""

from __future__ import annotations

import enum
import inspect
import json
import tomllib
from pathlib import Path

import peft
from packaging.version import Version

import artent.adapters.mps  # noqa: F401  (registers the method)
from artent.adapters.mps import MPSConfig, MPSModel
from artent.adapters.mps.config import MPS_PARAMETER_PREFIX


def test_peft_version_is_the_checked_range() -> None:
    from artent.adapters.mps.peft_check import SUPPORTED_MINORS, TESTED_PEFT

    version = Version(peft.__version__)
    lo, hi = Version(SUPPORTED_MINORS[0]), Version(SUPPORTED_MINORS[-1])
    assert lo <= version < Version(f"{hi.major}.{hi.minor + 1}"), (
        f"peft {peft.__version__} is outside {SUPPORTED_MINORS[0]}-{SUPPORTED_MINORS[-1]}, the "
        f"range artent.adapters.mps was checked against: re-run tests/adapters and update "
        f"peft_check.TESTED_PEFT and the range in pyproject.toml"
    )
    assert [t.rsplit(".", 1)[0] for t in TESTED_PEFT] == list(SUPPORTED_MINORS)
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    requirement = next(r for r in project["project"]["dependencies"] if r.startswith("peft"))
    assert requirement == f"peft>={lo},<{hi.major}.{hi.minor + 1}", requirement


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
    # Through peft's public saver (the private helper it calls moved between releases): the
    # adapter name is stripped from the ParameterDict keys of a saved MPS adapter.
    from peft import get_peft_model, get_peft_model_state_dict
    from transformers import LlamaConfig, LlamaForCausalLM

    base = LlamaForCausalLM(
        LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                    num_attention_heads=2, num_key_value_heads=2, vocab_size=32)
    )  # fmt: skip
    model = get_peft_model(base, MPSConfig(r=2, chi=2, target_modules=["q_proj"]))
    keys = sorted(get_peft_model_state_dict(model))
    assert keys and all(k.startswith("base_model.model.") for k in keys), keys
    assert not any(k.endswith(".default") or ".default." in k for k in keys), (
        f"peft changed how adapter names are stripped from saved keys ({keys[0]}); saved MPS "
        f"checkpoints may no longer load"
    )
    assert any(k.endswith("q_proj.mps_B") for k in keys), keys


def test_missing_internals_fail_the_import_in_one_line(monkeypatch) -> None:
    from peft.tuners.tuners_utils import BaseTuner

    from artent.adapters.mps import peft_check

    peft_check.check_peft_internals()  # the installed peft passes
    monkeypatch.delattr(BaseTuner, "_create_and_replace")
    assert peft_check._missing() == "BaseTuner._create_and_replace"
    try:
        peft_check.check_peft_internals()
    except ImportError as e:
        message = str(e)
    else:
        raise AssertionError("a peft without BaseTuner._create_and_replace was accepted")
    assert "BaseTuner._create_and_replace" in message and peft.__version__ in message
    assert all(v in message for v in peft_check.TESTED_PEFT) and "\n" not in message


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
