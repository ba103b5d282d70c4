"""Refusing runs that cannot fit, before anything is allocated: a lower bound on their memory.

``--rank 1000000000`` or ``--seq-len 100000`` would otherwise end in an allocator error halfway
through building the adapter or the data (or in the kernel's OOM killer). The bound counts only
what the run must hold at once, so a run it refuses cannot fit; a run it passes may still be too
big for what else the machine is doing:

* the base weights as loaded;
* every trainable parameter four times over in float32 (weight, gradient, AdamW's two moments);
  for LoRA ``r (in + out)`` per adapted module, for MPS at least ``r out + r chi``;
* the tokenised data: three ``int64`` tensors (ids, mask, labels) of ``seq_len`` per conversation
  (padding; packing stores no more);
* the activations of one step: the float32 logits and their gradient (``batch x seq_len x vocab``)
  and, per layer, at least four ``batch x seq_len x hidden`` float32 tensors.
"""

from __future__ import annotations

from typing import Any

from artent.models.size_check import human_bytes, machine_memory
from artent.training.config import TrainConfig

__all__ = ["check_sizes", "machine_memory", "trainable_parameters"]


def trainable_parameters(model: Any, cfg: TrainConfig, targets: dict[str, list[str]]) -> int:
    """How many parameters ``cfg.method`` will train (a lower bound for MPS), before attaching it.

    Args:
        model: the base model (nothing attached yet).
        cfg: the run's options.
        targets: :func:`artent.training.methods.check_targets` of the model.
    """
    if cfg.method == "fft":
        return sum(p.numel() for p in model.parameters())
    modules = dict(model.named_modules())
    total = 0
    for names in targets.values():
        for name in set(names):
            m = modules[name]
            if cfg.method == "lora":
                total += cfg.rank * (m.in_features + m.out_features)
            else:
                total += cfg.rank * m.out_features + cfg.rank * cfg.chi
    return total


def check_sizes(
    model: Any, cfg: TrainConfig, targets: dict[str, list[str]], n_sequences: int, device: str
) -> None:
    """Refuse a run whose memory lower bound exceeds the memory of its device (or the model's
    longest sequence), in one line naming the options and the estimate.

    Args:
        model: the loaded base model.
        cfg: the run's options.
        targets: :func:`artent.training.methods.check_targets` of the model.
        n_sequences: conversations to tokenise (train and held-out).
        device: where the model trains (``cpu``, ``cuda:0``...).

    Raises:
        ValueError: ``seq_len`` beyond the model's ``max_position_embeddings``, or sizes that
            cannot fit.
    """
    config = getattr(model, "config", None)
    longest = getattr(config, "max_position_embeddings", None)
    if isinstance(longest, int) and cfg.seq_len > longest:
        raise ValueError(
            f"option seq_len={cfg.seq_len} is longer than the model's max_position_embeddings="
            f"{longest}"
        )
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    trainable = trainable_parameters(model, cfg, targets)
    hidden = int(getattr(config, "hidden_size", 0) or 0)
    layers = int(getattr(config, "num_hidden_layers", 0) or 0)
    vocab = int(getattr(config, "vocab_size", 0) or 0)
    tokens = cfg.batch_size * cfg.seq_len
    sizes = "model=" if cfg.method == "fft" else f"rank={cfg.rank}"
    if cfg.method == "mps":
        sizes += f" or chi={cfg.chi}"
    on_device = {
        "trainable parameters, gradients and AdamW state": (16 * trainable, sizes),
        "activations of one step": (
            tokens * (8 * vocab + 16 * hidden * layers),
            f"seq_len={cfg.seq_len} or batch_size={cfg.batch_size}",
        ),
        "base weights": (weights, "model="),
    }
    data = {"tokenised data": (24 * n_sequences * cfg.seq_len, f"seq_len={cfg.seq_len}")}
    checks = [(device, {**on_device, **data})] if device == "cpu" else [(device, on_device)]
    if device != "cpu":
        checks.append(("cpu", data))
    for where, parts in checks:
        need = sum(b for b, _ in parts.values())
        have = machine_memory(where)
        if have is None or need <= have:
            continue
        what, (biggest, options) = max(parts.items(), key=lambda kv: kv[1][0])
        raise ValueError(
            f"the run needs at least {human_bytes(need)} of memory on {where} ({what}: "
            f"{human_bytes(biggest)}), more than its {human_bytes(have)}; lower {options}"
        )
