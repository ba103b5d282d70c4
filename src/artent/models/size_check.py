"""Model configs checked against the machine's memory before a model is built from them.

A ``config.json`` with absurd sizes (``hidden_size: 10000000``) would otherwise have
transformers allocate, fail, and print its multi-line load report. The model is built on torch's
``meta`` device first (no memory), its parameters counted, and a model whose float32 weights
exceed the memory of the machine is refused in one line with the estimate.
"""

from __future__ import annotations

import os
from typing import Any

from artent.errors import one_line


def human_bytes(n: float) -> str:
    """``1234567`` -> ``"1.2 MB"`` (powers of 1000)."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} PB"  # unreachable


def machine_memory(device: str) -> int | None:
    """Bytes of memory of ``device``: a GPU's own, else the machine's RAM (``None``: unknown)."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


#: Deeper configs are checked by :func:`parameters_lower_bound` alone.
MAX_LAYERS_BUILT = 512


def _size(config: Any, name: str) -> int:
    value = getattr(config, name, None)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def parameters_lower_bound(config: Any) -> int:
    """A lower bound on a transformer's parameters, from its config alone (no building): the
    token embedding (``vocab x hidden``) and, per layer, at least one ``hidden x intermediate``
    projection (``hidden x hidden`` where no intermediate size is given)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = _size(text, "hidden_size")
    inner = _size(text, "intermediate_size") or hidden
    return _size(text, "vocab_size") * hidden + _size(text, "num_hidden_layers") * hidden * inner


def config_parameters(config: Any, auto: Any) -> int:
    """Parameters of the model ``auto.from_config(config)`` builds, counted on the meta device."""
    import torch

    with torch.device("meta"):
        model = auto.from_config(config)
    return sum(p.numel() for p in model.parameters())


def check_config_fits(config: Any, auto: Any, what: str, *, bytes_per_parameter: int = 4) -> None:
    """Refuse (one-line ``ValueError`` naming ``what``) a config whose weights cannot be held.

    Args:
        config: a transformers config.
        auto: the class that will load it (``AutoModelForCausalLM``...).
        what: how the message names the model (``"model runs/x"``).
        bytes_per_parameter: 4: artent loads weights in float32.
    """
    have = machine_memory("cpu")
    n = parameters_lower_bound(config)
    if have is not None and n * bytes_per_parameter > have:
        raise ValueError(
            f"{what}: its config.json describes at least {n:,} parameters, at least "
            f"{human_bytes(n * bytes_per_parameter)} in float32, more than this machine's "
            f"{human_bytes(have)} of memory"
        )
    layers = _size(config, "num_hidden_layers")
    if layers > MAX_LAYERS_BUILT:  # building that many layers, even on meta, takes minutes
        return
    try:
        n = config_parameters(config, auto)
    except Exception as e:  # noqa: BLE001 - sizes transformers cannot build even on meta
        raise ValueError(
            f"{what}: cannot build the model its config.json describes ({one_line(e, typed=True)})"
        ) from None
    need = n * bytes_per_parameter
    if have is not None and need > have:
        raise ValueError(
            f"{what}: its config.json describes {n:,} parameters, at least {human_bytes(need)} "
            f"in float32, more than this machine's {human_bytes(have)} of memory"
        )
