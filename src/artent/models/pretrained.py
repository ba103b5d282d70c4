"""transformers' and peft's loaders called on a user's folder, the artent way.

Whatever they raise is one line naming the folder (:func:`from_pretrained`); an adapter is put
on its model with artent's guarded reader of its weights (:func:`put_adapter`), never with
peft's own loader, which unpickles ``adapter_model.bin`` unasked. Used by the model loader
(:mod:`artent.models.loading`) and the merge reader of adapter updates
(:mod:`artent.models.deltas.merged`). transformers and peft are imported inside the functions,
where they are needed (importing them takes seconds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from artent.errors import one_line
from artent.models.adapter_check import adapter_weights, read_adapter_config
from artent.models.peft_warnings import peft_quietly
from artent.models.user_regex import pin_peft_patterns

#: Suffixes of the architecture names of causal language models in transformers.
CAUSAL_ARCHITECTURES = ("ForCausalLM", "LMHeadModel")


def is_causal_config(config: Any) -> bool:
    """Whether a config describes a causal LM (by its architectures, else by its model type)."""
    archs = getattr(config, "architectures", None) or []
    if archs:
        return any(a.endswith(CAUSAL_ARCHITECTURES) for a in archs)
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES


def from_pretrained(what: str, fn, *args, **kwargs):
    """Call a transformers or peft loader on a user's folder: whatever it raises (a config of the
    wrong types, missing files, tensors of the wrong shape) is one line naming the folder."""
    try:
        return fn(*args, **kwargs)
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - huggingface raises many types, some not ValueError
        raise ValueError(f"{what}: cannot load ({one_line(e, typed=True)})") from e


def put_adapter(model, adapter: str, *, allow_pickle: bool = False):
    """``model`` with the PEFT adapter folder ``adapter`` on it, for inference.

    The config is built by peft from ``adapter_config.json`` (validated first); the weights are
    read by artent's guarded reader and set with peft's ``set_peft_model_state_dict``.

    Raises:
        ValueError: a config peft cannot build, or weights that do not fit the model.
    """
    from peft import PeftConfig, PeftModel, set_peft_model_state_dict
    from peft.auto import MODEL_TYPE_TO_PEFT_MODEL_MAPPING

    if read_adapter_config(adapter)["peft_type"].upper() == "MPS":
        # lazy: artent.adapters.mps imports torch and peft (and registers the method with peft)
        import artent.adapters.mps  # noqa: F401
    what = f"adapter {adapter}"
    config = from_pretrained(what, PeftConfig.from_pretrained, adapter)
    config.inference_mode = True
    # peft would match the file's patterns with re, which can backtrack for ever: artent
    # matches them with a bound and gives peft the names they match
    names = [name for name, _ in model.named_modules() if name]
    pin_peft_patterns(config, names, f"{Path(adapter) / 'adapter_config.json'}")
    weights = adapter_weights(adapter, allow_pickle=allow_pickle)
    # the class peft's own from_pretrained picks for the config's task type
    wrapper = MODEL_TYPE_TO_PEFT_MODEL_MAPPING.get(config.task_type, PeftModel)
    with peft_quietly():
        model = from_pretrained(what, wrapper, model, config, "default")
    result = from_pretrained(what, set_peft_model_state_dict, model, weights, "default")
    unexpected = list(result.unexpected_keys)
    missing = [k for k in result.missing_keys if "default" in k.split(".")]
    if unexpected or missing:
        key, where = (
            (unexpected[0], "fits no module of")
            if unexpected
            else (missing[0], "is missing from the adapter's weights for")
        )
        raise ValueError(f"adapter {adapter}: tensor '{key}' {where} the model")
    return model.eval()
