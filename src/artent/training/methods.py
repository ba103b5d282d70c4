"""Attaching a fine-tuning method to a model: FFT, LoRA (peft) or MPS; checkpoint weights."""

from __future__ import annotations

from pathlib import Path

from artent.models.peft_warnings import peft_quietly
from artent.training.config import TrainConfig


def check_targets(model, targets: list[str]) -> dict[str, list[str]]:
    """Map each target name to the Linear modules it matches (suffix match, as peft does).

    Raises:
        ValueError: naming the first target that matches no ``nn.Linear`` module.
    """
    import torch.nn as nn

    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    found = {t: [n for n in linears if n == t or n.endswith("." + t)] for t in targets}
    for t, names in found.items():
        if not names:
            sample = sorted({n.rsplit(".", 1)[-1] for n in linears})
            raise ValueError(
                f"option targets: no linear module named {t!r} in the model "
                f"(it has: {', '.join(sample)})"
            )
    return found


def attach_method(model, cfg: TrainConfig):
    """Make ``model`` trainable by ``cfg.method``; return the model to train.

    FFT trains every parameter. LoRA and MPS wrap the target modules through peft, freeze the rest,
    and start from ``Delta W = 0`` (``B = 0``).
    """
    import torch

    check_targets(model, cfg.targets)
    torch.manual_seed(cfg.seed)  # adapter initialisation is part of the run's determinism
    if cfg.method == "fft":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    if cfg.method == "lora":
        peft_cfg = LoraConfig(
            r=cfg.rank,
            lora_alpha=cfg.alpha,
            lora_dropout=cfg.dropout,
            target_modules=list(cfg.targets),
            use_rslora=cfg.rslora,
            task_type="CAUSAL_LM",
        )
    else:
        # lazy: importing it imports torch and peft (seconds), which `artent --help` need not
        from artent.adapters.mps import MPSConfig

        peft_cfg = MPSConfig(
            r=cfg.rank,
            chi=cfg.chi,
            alpha=cfg.alpha,
            dropout=cfg.dropout,
            n_1=cfg.n1,
            target_modules=list(cfg.targets),
            use_rslora=cfg.rslora,
            task_type="CAUSAL_LM",
        )
    with peft_quietly():
        return get_peft_model(model, peft_cfg)


def save_checkpoint_weights(model, cfg: TrainConfig, folder: Path) -> None:
    """Full weights (safetensors) for FFT, the adapter for LoRA and MPS."""
    model.save_pretrained(folder, safe_serialization=True)


def load_checkpoint_weights(model, cfg: TrainConfig, folder: Path) -> None:
    """Load what :func:`save_checkpoint_weights` wrote into an already prepared ``model``."""
    from safetensors.torch import load_file

    if cfg.method == "fft":
        files = sorted(folder.glob("*.safetensors"))
        state: dict = {}
        for f in files:
            state.update(load_file(f))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if "rotary" not in k and "lm_head" not in k]:
            raise ValueError(f"checkpoint {folder} does not match the model")
        return
    from peft.utils import set_peft_model_state_dict

    set_peft_model_state_dict(model, load_file(folder / "adapter_model.safetensors"))
