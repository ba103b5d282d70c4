"""The MPS tuner (peft ``BaseTuner``) and its registration with peft.

``register_mps_with_peft`` is the one place that touches peft internals; the package ``__init__``
calls it, so ``import artent.adapters.mps`` is enough for ``get_peft_model`` and
``PeftModel.from_pretrained`` to know the method. tests/adapters/test_peft_internals.py checks every
internal it relies on and fails with a message naming what moved.
"""

from __future__ import annotations

import copy
from typing import Any

from peft.tuners.tuners_utils import BaseTuner, BaseTunerLayer
from torch import nn

from artent.adapters.mps.config import MPS_PARAMETER_PREFIX, MPS_PEFT_METHOD_NAME, MPSConfig
from artent.adapters.mps.layer import MPSLayer, MPSLinear


def _default_target_modules() -> dict[str, list[str]]:
    # LoRA's defaults per architecture (q_proj, v_proj for llama), used when target_modules=None.
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    return dict(TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING)


class MPSModel(BaseTuner):
    """Injects :class:`MPSLinear` layers into a model according to an :class:`MPSConfig`.

    Use through ``peft.get_peft_model(model, MPSConfig(...))``; merging, unloading, saving and
    loading are peft's.
    """

    prefix: str = MPS_PARAMETER_PREFIX
    tuner_layer_cls = MPSLayer
    target_module_mapping = _default_target_modules()

    def _prepare_model(self, peft_config: MPSConfig, model: nn.Module) -> None:
        """Validate every target before any module is replaced: a bad config leaves the model as is.

        Raises:
            ValueError: A listed target name matches no module; a matched module is not
                ``nn.Linear``; ``n_1`` does not divide a matched module's ``in_features``.
        """
        from peft.tuners.tuners_utils import _maybe_include_all_linear_layers

        named = [(key, module) for key, module in model.named_modules() if key]
        targets = peft_config.target_modules
        if isinstance(targets, (set, list, tuple)):
            unknown = sorted(
                t for t in targets if not any(k == t or k.endswith(f".{t}") for k, _ in named)
            )
            if unknown:
                raise ValueError(
                    f"MPSConfig.target_modules: {unknown} match no module of "
                    f"{type(model).__name__}; check the names"
                )
        # peft expands 'all-linear' only after this hook: expand a copy to check the same set.
        resolved = _maybe_include_all_linear_layers(copy.copy(peft_config), model)
        tuner_layer_keys = [k for k, m in named if isinstance(m, BaseTunerLayer)]
        for key, module in named:
            if any(key.startswith(f"{t}.") for t in tuner_layer_keys):
                continue  # internals of an existing adapter layer
            if not self._check_target_module_exists(resolved, key):
                continue
            base = module.get_base_layer() if isinstance(module, BaseTunerLayer) else module
            if not isinstance(base, nn.Linear):
                raise ValueError(
                    f"MPSConfig.target_modules: module '{key}' is a {type(base).__name__}; only "
                    f"torch.nn.Linear modules can be targeted"
                )
            resolved.input_split(base.in_features, key)

    def _create_and_replace(
        self,
        peft_config: MPSConfig,
        adapter_name: str,
        target: nn.Module,
        target_name: str,
        parent: nn.Module,
        current_key: str,
        **optional_kwargs: Any,
    ) -> None:
        if isinstance(target, MPSLinear):
            target.update_layer(adapter_name, peft_config)
            return
        new_module = MPSLinear(target, adapter_name, peft_config, module_name=current_key)
        if adapter_name not in self.active_adapters:
            # An added, inactive adapter stays frozen until set_adapter picks it (peft convention).
            new_module.requires_grad_(False)
        self._replace_module(parent, target_name, new_module, target)


# =================================================================================================
# peft internals (checked at import by peft_check.py, which names the peft releases tested).
# Everything below depends on private details of peft:
#   1. peft.utils.peft_types.PeftType is a closed `str` Enum and register_peft_method() refuses a
#      name that is not a member, so we add the member MPS to it (the enum's _member_map_,
#      _value2member_map_ and _member_names_ tables, plus the class attribute).
#   2. register_peft_method() then fills peft.mapping.PEFT_TYPE_TO_{CONFIG,TUNER,PREFIX}_MAPPING,
#      which get_peft_model, PeftConfig.from_pretrained and the state-dict (de)serialisers read.
# tests/adapters/test_peft_internals.py asserts each of these facts.
# =================================================================================================


def _add_peft_type_member(name: str) -> None:
    """Add ``name`` (upper case) as a member of peft's ``PeftType`` enum, if not there yet."""
    from peft.utils.peft_types import PeftType

    if name in PeftType._member_map_:
        return
    member = str.__new__(PeftType, name)
    member._name_ = name
    member._value_ = name
    member.__objclass__ = PeftType
    member._sort_order_ = len(PeftType._member_names_)
    # EnumType.__setattr__ refuses names already in _member_map_, so set the attribute first.
    setattr(PeftType, name, member)
    PeftType._member_map_[name] = member
    PeftType._value2member_map_[name] = member
    PeftType._member_names_.append(name)


def register_mps_with_peft() -> None:
    """Make ``mps`` a peft method (idempotent; re-registers the current classes after a reload)."""
    from peft.mapping import (
        PEFT_TYPE_TO_CONFIG_MAPPING,
        PEFT_TYPE_TO_PREFIX_MAPPING,
        PEFT_TYPE_TO_TUNER_MAPPING,
    )
    from peft.utils import register_peft_method
    from peft.utils.peft_types import PeftType

    _add_peft_type_member(MPS_PEFT_METHOD_NAME.upper())
    peft_type = PeftType(MPS_PEFT_METHOD_NAME.upper())
    if peft_type in PEFT_TYPE_TO_CONFIG_MAPPING:
        # Already registered (module reloaded): point the tables at the classes now in use.
        PEFT_TYPE_TO_CONFIG_MAPPING[peft_type] = MPSConfig
        PEFT_TYPE_TO_TUNER_MAPPING[peft_type] = MPSModel
        PEFT_TYPE_TO_PREFIX_MAPPING[peft_type] = MPS_PARAMETER_PREFIX
        return
    register_peft_method(
        name=MPS_PEFT_METHOD_NAME,
        config_cls=MPSConfig,
        model_cls=MPSModel,
        prefix=MPS_PARAMETER_PREFIX,
    )
