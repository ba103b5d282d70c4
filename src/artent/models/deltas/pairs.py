"""``Delta W = W_tuned - W_base`` from two checkpoints of one architecture, a tensor at a time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from artent.models.checkpoints import Checkpoint, CheckpointError, open_checkpoint, parse_module_key
from artent.models.deltas.common import DEFAULT_MODULES, Delta, finite, matrix_shape, output_dtype
from artent.models.deltas.fused import fused_layout, is_conv1d, read_model_config, split_update
from artent.models.deltas.select import Planned, select


def _check_same_architecture(base: Checkpoint, tuned: Checkpoint) -> None:
    base_keys, tuned_keys = set(base.keys()), set(tuned.keys())
    for key in sorted(base_keys | tuned_keys):
        if key not in tuned_keys or key not in base_keys:
            side = "tuned" if key not in tuned_keys else "base"
            raise CheckpointError(
                f"base {base.path} and tuned {tuned.path} differ: tensor '{key}' is missing "
                f"from the {side} checkpoint"
            )
        if base.shape(key) != tuned.shape(key):
            raise CheckpointError(
                f"base {base.path} and tuned {tuned.path} differ: tensor '{key}' has shape "
                f"{base.shape(key)} in the base but {tuned.shape(key)} in the tuned checkpoint"
            )


def plan_checkpoints(
    base_ckpt: Checkpoint,
    tuned_ckpt: Checkpoint,
    config: dict | None,
    modules,
    layers,
    *,
    where: str,
) -> tuple[list[Planned], str | None]:
    """Check two opened checkpoints against each other and choose the updates to read.

    Args:
        base_ckpt, tuned_ckpt: the two sides (files, or models in memory).
        config: the base model's config (fused projections are split with it), or ``None``.
        modules, layers: as :func:`deltas_from_pair` takes them.
        where: how messages name the base (``"base PATH"``).

    Returns:
        ``(plan, arch)``: ``arch`` is the config's ``model_type`` (``None`` without one).
    """
    _check_same_architecture(base_ckpt, tuned_ckpt)
    arch = config.get("model_type") if config else None
    names = [k[: -len(".weight")] for k in base_ckpt.keys() if parse_module_key(k)]

    def layout_of(name: str, module: str):
        rows, cols = matrix_shape(base_ckpt, name + ".weight")
        conv1d = is_conv1d(arch, module)
        if conv1d:
            rows, cols = cols, rows
        return fused_layout(arch, module, rows, cols, config, conv1d=conv1d, name=name, where=where)

    return select(names, modules, layers, base_ckpt.path, layout_of), arch


def plan_pair(base, tuned, modules, layers, allow_pickle):
    """Open both checkpoints, check them and choose the updates; nothing is read yet.

    Returns:
        ``(base_ckpt, tuned_ckpt, plan, arch)``: ``arch`` is the base config's ``model_type``
        (``None`` without a config.json beside the base).
    """
    base_ckpt = open_checkpoint(base, allow_pickle=allow_pickle)
    tuned_ckpt = open_checkpoint(tuned, allow_pickle=allow_pickle)
    config = read_model_config(base, tuned)
    plan, arch = plan_checkpoints(
        base_ckpt, tuned_ckpt, config, modules, layers, where=f"base {base_ckpt.path}"
    )
    for p in plan:
        matrix_shape(base_ckpt, p.name + ".weight")
    return base_ckpt, tuned_ckpt, plan, arch


def deltas_from_pair(
    base: str | Path,
    tuned: str | Path,
    *,
    modules: Iterable[str] = DEFAULT_MODULES,
    layers: Iterable[int] | None = None,
    allow_pickle: bool = False,
) -> Iterator[Delta]:
    """``Delta W = W_tuned - W_base`` per chosen module, read one tensor at a time.

    Args:
        base, tuned: checkpoints (a folder, a ``.safetensors`` file or a shard index).
        modules: module names (the key component before ``.weight``) to compare (``["all"]``:
            every one of :data:`~artent.models.deltas.common.ALL_MODULES` present); ``q_proj``,
            ``k_proj``, ``v_proj`` and their aliases also take the blocks of a fused projection
            (GPT-2 ``c_attn``, Phi-3 ``qkv_proj``, NeoX ``query_key_value``), split with the
            config.json beside the base.
        layers: layer indices to keep; ``None`` for all.
        allow_pickle: accept pickle checkpoints.

    Returns:
        An iterator of dense :class:`Delta` (float32; float64 if either input is float64) in
        ``out x in`` layout (GPT-2's ``Conv1D`` weights transposed).

    Raises:
        CheckpointError: unreadable checkpoints; architectures that differ (naming the first
            differing tensor in sorted key order); NaN or Inf in a read tensor.
        ValueError: a module or layer that matches nothing, a fused layout artent does not know.
    """
    base_ckpt, tuned_ckpt, plan, arch = plan_pair(base, tuned, modules, layers, allow_pickle)
    return pair_deltas(base_ckpt, tuned_ckpt, plan, arch)


def pair_deltas(base: Checkpoint, tuned: Checkpoint, plan: list[Planned], arch) -> Iterator[Delta]:
    cached: tuple | None = None  # the last whole update: fused blocks share it
    try:
        for p in plan:
            if cached is None or cached[0] != p.name:
                w_base, w_tuned = (
                    finite(base, p.name + ".weight"),
                    finite(tuned, p.name + ".weight"),
                )
                dtype = output_dtype(w_base, w_tuned)
                w_base = w_base.to(dtype)
                delta = w_tuned.to(dtype) - w_base
                del w_tuned
                if is_conv1d(arch, p.name.rsplit(".", 1)[-1]):
                    delta, w_base = delta.T.contiguous(), w_base.T.contiguous()
                cached = (p.name, delta, w_base)
            delta, w = (
                cached[1:] if p.rows is None else (split_update(c, p.rows) for c in cached[1:])
            )
            rows, cols = delta.shape
            yield Delta(
                p.label, p.layer, p.module, delta, rows, cols, None, "dense", not delta.any(), w
            )
    finally:
        base.close()
        tuned.close()
