"""artent's cache folder: where the models it makes by name, and generated data, are kept.

It imports nothing of artent's, so that the makers (:mod:`artent.models.tiny`,
:mod:`artent.models.smollm2`) and the resolver of names (:mod:`artent.models.cache`) all use it.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache root: ``cache_dir``, else ``$ARTENT_CACHE``, else ``~/.cache/artent``."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("ARTENT_CACHE") or Path.home() / ".cache" / "artent")
