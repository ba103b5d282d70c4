"""Reading model and adapter checkpoints one tensor at a time, and naming their modules.

Two 8B checkpoints hold about 32 GB each in bf16; comparing them must never load either state dict
whole. :class:`Checkpoint` therefore reads safetensors files through ``safetensors.safe_open``,
which parses only the header when the file is opened and reads a tensor's bytes when that tensor is
asked for; each read opens its own short-lived mapping, so the pages read are released with the
tensor instead of staying mapped (and resident) until the checkpoint is closed. Accepted forms (a
path to a file, or a folder holding one of them):

* one ``*.safetensors`` file (``model.safetensors``, ``adapter_model.safetensors``, ...);
* a sharded checkpoint: ``model.safetensors.index.json`` (its ``weight_map``) plus the shards;
* a folder of several ``*.safetensors`` files without an index: their union (a key in two files is
  an error);
* pickle checkpoints (``pytorch_model.bin``, ``adapter_model.bin``, ``*.pt``, ``*.pth``, ``*.bin``,
  ``pytorch_model.bin.index.json``), only with ``allow_pickle=True`` because unpickling can run
  code; they are then read with ``torch.load(weights_only=True, mmap=True)``.

Tensors come back on the CPU in float32, or float64 when stored so: bf16, fp16 (and fp8) are
upcast, because weight differences of nearby checkpoints lose most of their digits in 16 bits.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from artent.errors import one_line

#: Folder entries looked for, in order of preference.
SAFETENSORS_INDEX_NAMES = ("model.safetensors.index.json",)
SAFETENSORS_NAMES = ("model.safetensors", "adapter_model.safetensors")
PICKLE_INDEX_NAMES = ("pytorch_model.bin.index.json",)
PICKLE_NAMES = ("pytorch_model.bin", "adapter_model.bin")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth")

# safetensors' dtype names (from the header) -> torch dtypes, for shape/dtype queries without reads.
_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": getattr(torch, "float8_e4m3fn", None),
    "F8_E5M2": getattr(torch, "float8_e5m2", None),
}

_LAYER_INDEX = re.compile(r"^\d+$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read as asked; the message names the file or tensor."""


def _pickle_refused(path: Path) -> CheckpointError:
    return CheckpointError(
        f"{path} is a pickle checkpoint, and unpickling can run arbitrary code: pass "
        f"allow_pickle=True if you trust it, or convert it to safetensors"
    )


def _is_pickle_file(path: Path) -> bool:
    return path.suffix in PICKLE_SUFFIXES


class Checkpoint:
    """Tensors of one checkpoint (one file, or the shards of one model), read on demand.

    Create it with :func:`open_checkpoint`. Every safetensors shard's header is read (and so
    checked) when the checkpoint is opened; tensor data only by :meth:`get`.

    Attributes:
        path: the file or folder the checkpoint was opened from.
    """

    def __init__(self, path: Path, files: list[Path], *, index: dict[str, Path] | None = None):
        self.path = path
        self._files = files
        self._handles: dict[Path, Any] = {}
        self._pickled: dict[Path, dict[str, torch.Tensor]] = {}
        self._where: dict[str, Path] = {}
        for file in files:
            for key in self._file_keys(file):
                if key in self._where and self._where[key] != file:
                    raise CheckpointError(
                        f"tensor '{key}' is stored twice in {path}: in {self._where[key].name} "
                        f"and {file.name}"
                    )
                self._where[key] = file
        if index is not None:
            for key, file in index.items():
                if self._where.get(key) != file:
                    raise CheckpointError(
                        f"{path}: the index maps tensor '{key}' to {file.name}, which does not "
                        f"hold it"
                    )

    # ----- file access ---------------------------------------------------------------------------

    def _handle(self, file: Path) -> Any:
        if file not in self._handles:
            from safetensors import safe_open

            try:
                self._handles[file] = safe_open(str(file), framework="pt", device="cpu")
            except Exception as exc:  # SafetensorError, OSError: both mean an unreadable file
                raise CheckpointError(
                    f"{file}: not a readable safetensors file ({one_line(exc, whole=True)})"
                ) from exc
        return self._handles[file]

    def _read(self, file: Path, key: str) -> torch.Tensor:
        self._handle(file)  # the header, checked once (a clear error for an unreadable file)
        from safetensors import safe_open

        # A mapping of its own for each read, dropped after it: the pages a long-lived handle
        # has read stay mapped, and over a whole model they count in the resident memory (both
        # 8B checkpoints' worth by the end). The tensor keeps what it needs of its mapping alive.
        with safe_open(str(file), framework="pt", device="cpu") as handle:
            return handle.get_tensor(key)

    def _state_dict(self, file: Path) -> dict[str, torch.Tensor]:
        if file not in self._pickled:
            try:
                try:
                    loaded = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
                except RuntimeError:
                    # mmap needs the zip format (torch >= 1.6 default); older files load whole.
                    loaded = torch.load(file, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise CheckpointError(
                    f"{file}: not a readable torch checkpoint ({one_line(exc, whole=True)})"
                ) from exc
            if not isinstance(loaded, dict) or not all(
                isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
            ):
                raise CheckpointError(f"{file}: not a state dict of named tensors")
            self._pickled[file] = loaded
        return self._pickled[file]

    def _file_keys(self, file: Path) -> list[str]:
        if _is_pickle_file(file):
            return list(self._state_dict(file))
        return list(self._handle(file).keys())

    def _file_of(self, key: str) -> Path:
        try:
            return self._where[key]
        except KeyError:
            raise CheckpointError(f"{self.path} has no tensor '{key}'") from None

    # ----- public ---------------------------------------------------------------------------------

    def keys(self) -> list[str]:
        """Every tensor name, sorted."""
        return sorted(self._where)

    def __contains__(self, key: object) -> bool:
        return key in self._where

    def file_of(self, key: str) -> Path:
        """The file (shard) that stores ``key``."""
        return self._file_of(key)

    def shape(self, key: str) -> tuple[int, ...]:
        """The stored shape of ``key``, from the header alone (no tensor data is read)."""
        file = self._file_of(key)
        if _is_pickle_file(file):
            return tuple(self._state_dict(file)[key].shape)
        return tuple(int(d) for d in self._handle(file).get_slice(key).get_shape())

    def dtype(self, key: str) -> torch.dtype | None:
        """The stored dtype of ``key`` (``None`` for a safetensors dtype torch does not know)."""
        file = self._file_of(key)
        if _is_pickle_file(file):
            return self._state_dict(file)[key].dtype
        return _SAFETENSORS_DTYPES.get(self._handle(file).get_slice(key).get_dtype())

    def get(self, key: str) -> torch.Tensor:
        """Read one tensor: CPU, float32 (float64 if stored so; 16- and 8-bit floats upcast).

        Raises:
            CheckpointError: no such tensor, an unreadable file, or a non-float tensor (integer
                or quantised weights have no meaningful difference without their scales).
        """
        file = self._file_of(key)
        if _is_pickle_file(file):
            # A copy, so that a caller's in-place change cannot reach the cached state dict.
            tensor = self._state_dict(file)[key].clone()
        else:
            try:
                tensor = self._read(file, key)
            except Exception as exc:
                raise CheckpointError(
                    f"{file}: cannot read tensor '{key}' ({one_line(exc, whole=True)})"
                ) from exc
        if not torch.is_floating_point(tensor):
            raise CheckpointError(
                f"tensor '{key}' in {file} has dtype {tensor.dtype}; only float tensors are read "
                f"(quantised checkpoints are not supported)"
            )
        if tensor.dtype != torch.float64:
            tensor = tensor.to(torch.float32)
        return tensor.contiguous()

    def close(self) -> None:
        """Drop open file handles and loaded pickle state dicts."""
        self._handles.clear()
        self._pickled.clear()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        n_tensors, n_files = len(self._where), len(self._files)
        return f"Checkpoint({str(self.path)!r}, {n_tensors} tensors, {n_files} files)"


def _shard_path(index_file: Path, name: object) -> Path:
    """A shard an index names, inside the index's folder; anything else is refused unread.

    An absolute path or a ``..`` step would make a checkpoint read a file it does not hold. A
    link the folder itself holds is its owner's (the hub's cache links every shard to its blob).
    """
    folder = index_file.parent
    rel = Path(str(name)) if isinstance(name, str) and name else None
    if rel is None or rel.is_absolute() or ".." in rel.parts or rel.drive:
        raise CheckpointError(
            f"{index_file}: shard {name!r} lies outside the folder {folder}; refused"
        )
    return folder / rel


def check_shard_index(folder: str | Path) -> None:
    """Refuse a model folder whose shard index names a file outside it (before transformers,
    which would open it, reads the folder)."""
    for name in SAFETENSORS_INDEX_NAMES + PICKLE_INDEX_NAMES:
        index_file = Path(folder) / name
        if index_file.is_file():
            _read_index(index_file, allow_pickle=True)


def _read_index(index_file: Path, allow_pickle: bool) -> tuple[list[Path], dict[str, Path]]:
    try:
        weight_map = json.loads(index_file.read_text())["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError("weight_map is not an object")
    except Exception as exc:
        raise CheckpointError(
            f"{index_file}: not a checkpoint index with a 'weight_map' "
            f"({one_line(exc, whole=True)})"
        ) from exc
    index = {str(k): _shard_path(index_file, v) for k, v in weight_map.items()}
    files = sorted(set(index.values()))
    for file in files:
        if not file.is_file():
            raise CheckpointError(f"{index_file}: shard {file.name} is missing")
        if _is_pickle_file(file) and not allow_pickle:
            raise _pickle_refused(file)
    return files, index


def _files_in_folder(folder: Path, allow_pickle: bool) -> tuple[list[Path], dict | None]:
    for name in SAFETENSORS_INDEX_NAMES:
        if (folder / name).is_file():
            return _read_index(folder / name, allow_pickle)
    for name in SAFETENSORS_NAMES:
        if (folder / name).is_file():
            return [folder / name], None
    safetensors_files = sorted(folder.glob("*.safetensors"))
    if safetensors_files:
        return safetensors_files, None
    pickles = [folder / n for n in PICKLE_INDEX_NAMES + PICKLE_NAMES if (folder / n).is_file()]
    pickles += sorted(p for s in PICKLE_SUFFIXES for p in folder.glob(f"*{s}"))
    if pickles:
        if not allow_pickle:
            raise _pickle_refused(pickles[0])
        if pickles[0].name.endswith(".index.json"):
            return _read_index(pickles[0], allow_pickle)
        if pickles[0].name in PICKLE_NAMES:
            return [pickles[0]], None
        return sorted(set(pickles)), None
    raise CheckpointError(
        f"{folder} holds no checkpoint: expected model.safetensors, "
        f"model.safetensors.index.json, adapter_model.safetensors or *.safetensors"
    )


def open_checkpoint(path: str | Path, *, allow_pickle: bool = False) -> Checkpoint:
    """Open a checkpoint for tensor-by-tensor reading.

    Args:
        path: a ``.safetensors`` file, a ``*.index.json`` shard index, a pickle file, or a folder
            holding one of them (preference: safetensors index, ``model.safetensors``,
            ``adapter_model.safetensors``, any ``*.safetensors``, then pickle files).
        allow_pickle: read pickle checkpoints (``torch.load(weights_only=True)``); refused
            otherwise.

    Raises:
        CheckpointError: a missing path, a pickle file without ``allow_pickle``, a corrupt or
            truncated file (named), or an index pointing at missing shards.
    """
    path = Path(path)
    if path.is_dir():
        files, index = _files_in_folder(path, allow_pickle)
    elif path.is_file():
        if path.name.endswith(".index.json"):
            files, index = _read_index(path, allow_pickle)
        elif _is_pickle_file(path):
            if not allow_pickle:
                raise _pickle_refused(path)
            files, index = [path], None
        else:
            files, index = [path], None
    else:
        raise CheckpointError(f"checkpoint {path} does not exist")
    return Checkpoint(path, files, index=index)


def parse_module_key(key: str) -> tuple[int | None, str] | None:
    """The (layer index, module name) of a weight tensor's key.

    The layer is the first all-digit component of the dotted key (``layers.3``, ``h.3``,
    ``blocks.3``); the module is the component just before ``.weight``.

    Examples:
        ``"model.layers.3.self_attn.q_proj.weight"`` -> ``(3, "q_proj")``;
        ``"lm_head.weight"`` -> ``(None, "lm_head")``; ``"model.layers.3.mlp.up_proj.bias"`` ->
        ``None`` (not a weight).
    """
    if not key.endswith(".weight"):
        return None
    parts = key[: -len(".weight")].split(".")
    if not parts or not parts[-1]:
        return None
    layer = next((int(p) for p in parts[:-1] if _LAYER_INDEX.match(p)), None)
    return layer, parts[-1]
