"""Weight updates ``Delta W``, from a (base, tuned) pair or from a saved PEFT adapter.

METHOD.md section 3: ``Delta W = W_tuned - W_base`` per layer and module (``q_proj``, ``v_proj`` by
default), or an adapter's own update without loading the base where that is possible. Each update
comes as a :class:`Delta`; factored where the adapter is factored (LoRA, rsLoRA, AdaLoRA, VeRA, MPS:
a :class:`~artent.entanglement.profile.LowRank`, never formed densely), else a dense tensor.

Updates are in the ``(out_features, in_features)`` layout of ``y = W x`` (peft's ``B @ A``). The
adapter formulas replicate peft 0.21's ``get_delta_weight`` / merge for linear layers; the
conventions relied on are listed per kind in :data:`ADAPTER_KINDS` and the readers below, and
tests/models/test_deltas.py checks every kind against peft's ``merge_and_unload``.

Both entry points check everything they can from the checkpoint headers before yielding anything
(architectures, module names, shapes, the base being present where needed), then read and yield
one module at a time, so memory stays at a few tensors whatever the model size.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from artent.entanglement.profile import LowRank
from artent.models.adapter_check import check_fits, read_adapter_config
from artent.models.checkpoints import Checkpoint, CheckpointError, open_checkpoint, parse_module_key

DEFAULT_MODULES = ("q_proj", "v_proj")
#: What ``modules=["all"]`` selects: every linear module of a decoder layer (those present), not
#: the embeddings or the LM head.
ALL_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: Prefix peft puts before every module name when it saves an adapter of a PreTrainedModel.
PEFT_KEY_PREFIX = "base_model.model."
#: peft_type (as in adapter_config.json) -> the tensor names peft saves after each module's name.
ADAPTER_KINDS: dict[str, tuple[str, ...]] = {
    "LORA": ("lora_A.weight", "lora_B.weight", "lora_B.bias", "lora_magnitude_vector",
             "lora_magnitude_vector.weight"),
    "ADALORA": ("lora_A", "lora_B", "lora_E"),
    "LOHA": ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2"),
    "LOKR": ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2"),
    "VERA": ("vera_lambda_b", "vera_lambda_d"),
    "MPS": ("mps_B", "mps_G1", "mps_G2"),
}  # fmt: skip
# LoRA variants whose update is not (a function of) B @ A: refused rather than misread.
_UNSUPPORTED_LORA_OPTIONS = (
    "use_bdlora", "arrow_config", "alora_invocation_tokens", "velora_config",
    "monteclora_config", "kasa_config", "layer_replication", "target_parameters",
)  # fmt: skip


@dataclass
class Delta:
    """One module's weight update.

    Attributes:
        name: the module's path in the model, e.g. ``"model.layers.3.self_attn.q_proj"``.
        layer: its layer index (``None`` outside the layer stack, e.g. ``lm_head``).
        module: the module's own name, e.g. ``"q_proj"``.
        update: ``LowRank`` (``scale * B @ A``, torch factors) for factored adapters, else a dense
            float32 (float64 where the inputs were) tensor of shape ``(rows, cols)``.
        rows, cols: the update's shape (``out_features``, ``in_features``).
        rank: the nominal rank ``r`` (LoRA-like kinds), ``None`` for dense pairs.
        kind: ``"dense"`` (pair) or the adapter kind (``"lora"``, ``"rslora"``, ``"dora"``,
            ``"loha"``, ``"lokr"``, ``"vera"``, ``"adalora"``, ``"mps"``).
        is_zero: the update is exactly zero (e.g. LoRA at step 0, where ``B = 0``).
    """

    name: str
    layer: int | None
    module: str
    update: LowRank | torch.Tensor
    rows: int
    cols: int
    rank: int | None
    kind: str
    is_zero: bool


# ----- selection ------------------------------------------------------------------------------


def _check_selection(modules, layers) -> tuple[tuple[str, ...], set[int] | None]:
    modules = (modules,) if isinstance(modules, str) else tuple(modules)
    if not modules or not all(isinstance(m, str) and m for m in modules):
        raise ValueError(f"--modules: give one or more module names, got {modules!r}")
    if layers is None:
        return modules, None
    layers = [layers] if isinstance(layers, int) else list(layers)
    if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in layers):
        raise ValueError(f"--layers: give layer indices >= 0, got {layers!r}")
    return modules, set(layers)


def _select(
    names: Iterable[str], modules, layers, where: Path
) -> list[tuple[str, int | None, str]]:
    """(name, layer, module) of the chosen modules, by layer, then in the order of ``modules``."""
    modules, layers = _check_selection(modules, layers)
    parsed = [(name, *parse_module_key(name + ".weight")) for name in names]  # type: ignore[misc]
    if modules == ("all",):
        present = {module for _, _, module in parsed}
        modules = tuple(m for m in ALL_MODULES if m in present)
        if not modules:
            raise ValueError(f"--modules all: none of {', '.join(ALL_MODULES)} in {where}")
    found = [(name, layer, module) for name, layer, module in parsed if module in modules]
    for module in modules:
        if not any(m == module for _, _, m in found):
            raise ValueError(f"--modules: no module named '{module}' in {where}")
    if layers is not None:
        present = {layer for _, layer, _ in found}
        missing = sorted(layers - present)
        if missing:
            have = sorted(i for i in present if i is not None)
            raise ValueError(
                f"--layers: no layer {missing[0]} with modules {list(modules)} in {where} "
                f"(layers present: {have})"
            )
        found = [f for f in found if f[1] in layers]
    return sorted(found, key=lambda f: (f[1] is None, f[1] or 0, modules.index(f[2]), f[0]))


def _finite(ckpt: Checkpoint, key: str) -> torch.Tensor:
    tensor = ckpt.get(key)
    if not torch.isfinite(tensor).all():
        raise CheckpointError(f"tensor '{key}' in {ckpt.file_of(key)} contains NaN or Inf")
    return tensor


def _matrix_shape(ckpt: Checkpoint, key: str) -> tuple[int, int]:
    shape = ckpt.shape(key)
    if len(shape) != 2:
        raise ValueError(f"tensor '{key}' in {ckpt.path} is not a matrix (shape {shape})")
    return shape  # type: ignore[return-value]


def _is_zero_product(B: torch.Tensor, A: torch.Tensor) -> bool:
    """Whether ``B @ A`` is exactly zero, without forming it when it is clearly not."""
    live = (B != 0).any(dim=0) & (A != 0).any(dim=1)  # rank-one terms with both factors nonzero
    if not live.any():
        return True
    B, A = B[:, live].double(), A[live].double()
    # ||B A||_F^2 = tr((B^T B)(A A^T)): r x r work; only a near-zero value needs the product.
    fro2 = float(torch.trace((B.T @ B) @ (A @ A.T)))
    if fro2 > 1e-8 * float(B.square().sum()) * float(A.square().sum()):
        return False
    return not bool((B @ A).any())


def _output_dtype(*tensors: torch.Tensor) -> torch.dtype:
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _stored_dtype(ckpt: Checkpoint, keys: Iterable[str]) -> torch.dtype:
    """float64 when any of ``keys`` is stored in float64, else float32 (dense outputs' dtype)."""
    return torch.float64 if any(ckpt.dtype(k) == torch.float64 for k in keys) else torch.float32


# ----- pairs ------------------------------------------------------------------------------------


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


def _plan_pair(base, tuned, modules, layers, allow_pickle):
    base_ckpt = open_checkpoint(base, allow_pickle=allow_pickle)
    tuned_ckpt = open_checkpoint(tuned, allow_pickle=allow_pickle)
    _check_same_architecture(base_ckpt, tuned_ckpt)
    names = [k[: -len(".weight")] for k in base_ckpt.keys() if parse_module_key(k)]
    plan = _select(names, modules, layers, base_ckpt.path)
    for name, _, _ in plan:
        _matrix_shape(base_ckpt, name + ".weight")
    return base_ckpt, tuned_ckpt, plan


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
        modules: module names (the key component before ``.weight``) to compare; ``["all"]`` for
            every one of :data:`ALL_MODULES` present (not the embeddings or the LM head).
        layers: layer indices to keep; ``None`` for all.
        allow_pickle: accept pickle checkpoints.

    Returns:
        An iterator of dense :class:`Delta` (float32; float64 if either input is float64).

    Raises:
        CheckpointError: unreadable checkpoints; architectures that differ (naming the first
            differing tensor in sorted key order); NaN or Inf in a read tensor.
        ValueError: a module or layer that matches nothing.
    """
    base_ckpt, tuned_ckpt, plan = _plan_pair(base, tuned, modules, layers, allow_pickle)
    return _pair_deltas(base_ckpt, tuned_ckpt, plan)


def _pair_deltas(base: Checkpoint, tuned: Checkpoint, plan) -> Iterator[Delta]:
    try:
        for name, layer, module in plan:
            w_base, w_tuned = _finite(base, name + ".weight"), _finite(tuned, name + ".weight")
            dtype = _output_dtype(w_base, w_tuned)
            # In place (each read is a fresh tensor): a third matrix would add half to the peak.
            delta = w_tuned.to(dtype).sub_(w_base.to(dtype))
            del w_base, w_tuned
            rows, cols = delta.shape
            yield Delta(name, layer, module, delta, rows, cols, None, "dense", not delta.any())
            del delta  # not held here while the next pair is read
    finally:
        base.close()
        tuned.close()


# ----- adapters ----------------------------------------------------------------------------------


def _pattern_value(pattern: dict | None, name: str, default):
    """peft's ``get_pattern_key``: the first pattern key matching ``(.*\\.)?(key)$`` wins."""
    for key, value in (pattern or {}).items():
        if re.match(rf"(.*\.)?({key})$", name):
            return value
    return default


def _adapter_weights_file(path: Path) -> Path:
    """The weights of an adapter folder (a weights file passed itself is returned as is)."""
    if not path.is_dir():
        return path
    for name in ("adapter_model.safetensors", "adapter_model.bin"):
        if (path / name).is_file():
            return path / name
    raise CheckpointError(f"adapter folder {path} has no adapter_model.safetensors")


class _Adapter:
    """One saved adapter: its config, its tensors grouped by module, and the optional base."""

    def __init__(self, adapter, base, allow_pickle: bool):
        path = Path(adapter)
        self.config = read_adapter_config(path)
        self.path = path
        self.peft_type = self.config["peft_type"].upper()
        if path.is_dir():
            path = _adapter_weights_file(path)
        self.ckpt = open_checkpoint(path, allow_pickle=allow_pickle)
        self.base = None if base is None else open_checkpoint(base, allow_pickle=allow_pickle)
        self.fan_in_fan_out = bool(self.config.get("fan_in_fan_out", False))
        self.modules: dict[str, dict[str, str]] = {}
        self.shared: dict[str, str] = {}
        parts = sorted(ADAPTER_KINDS[self.peft_type], key=len, reverse=True)
        for key in self.ckpt.keys():
            rest = key[len(PEFT_KEY_PREFIX) :] if key.startswith(PEFT_KEY_PREFIX) else key
            part = next((p for p in parts if rest.endswith("." + p)), None)
            if part is not None:
                self.modules.setdefault(rest[: -len(part) - 1], {})[part] = key
            elif rest.rsplit(".", 1)[-1] in ("vera_A", "vera_B"):
                self.shared[rest.rsplit(".", 1)[-1]] = key

    def get(self, key: str) -> torch.Tensor:
        return _finite(self.ckpt, key)

    def shape(self, parts: dict[str, str], part: str) -> tuple[int, ...]:
        return self.ckpt.shape(parts[part])

    def need(self, name: str, parts: dict[str, str], *needed: str) -> None:
        for part in needed:
            if part not in parts:
                raise CheckpointError(f"adapter {self.path}: module '{name}' has no '{part}'")

    def require_base(self, why: str) -> Checkpoint:
        if self.base is None:
            raise ValueError(f"adapter {self.path}: {why}; pass the base checkpoint (--base)")
        return self.base

    def base_weight(self, name: str) -> torch.Tensor:
        """The base weight in ``(out, in)`` layout (transposed back where ``fan_in_fan_out``)."""
        weight = _finite(self.require_base("this update needs the base weights"), name + ".weight")
        return weight.T.contiguous() if self.fan_in_fan_out else weight

    def base_shape(self, name: str) -> tuple[int, int]:
        base = self.require_base("this update needs the base weights")
        if name + ".weight" not in base:
            raise CheckpointError(
                f"adapter {self.path}: module '{name}' is not in base {base.path}"
            )
        rows, cols = _matrix_shape(base, name + ".weight")
        return (cols, rows) if self.fan_in_fan_out else (rows, cols)


# Each kind: shape(adapter, name, parts) -> (rows, cols), and
# build(adapter, name, parts) -> (update, rank, kind, is_zero).


def _lora_scale(ad: _Adapter, name: str, r: int) -> float:
    alpha = _pattern_value(ad.config.get("alpha_pattern"), name, ad.config.get("lora_alpha", 8))
    return alpha / math.sqrt(r) if ad.config.get("use_rslora") else alpha / r


def _lora_shape(ad, name, parts):
    ad.need(name, parts, "lora_A.weight", "lora_B.weight")
    return ad.shape(parts, "lora_B.weight")[0], ad.shape(parts, "lora_A.weight")[1]


def _lora_build(ad, name, parts):
    A, B = ad.get(parts["lora_A.weight"]), ad.get(parts["lora_B.weight"])
    r = A.shape[0]
    scale = _lora_scale(ad, name, r)
    if not ad.config.get("use_dora"):
        update = LowRank(B, A, scale)
        kind = "rslora" if ad.config.get("use_rslora") else "lora"
        return update, r, kind, scale == 0 or _is_zero_product(B, A)
    # DoRA (peft lora/variants.py, DoraLinearVariant.merge_*): the merged weight is
    # m / ||W + s B A||_row * (W + s B A), the norm taken over each output row (dim=1 of the
    # (out, in) weight); the update is that minus W. Done in float64: the subtraction cancels.
    magnitude_key = parts.get("lora_magnitude_vector") or parts.get("lora_magnitude_vector.weight")
    if magnitude_key is None:
        raise CheckpointError(f"adapter {ad.path}: DoRA module '{name}' has no magnitude vector")
    W = ad.base_weight(name)
    magnitude = ad.get(magnitude_key).double().reshape(-1)
    V = W.double() + scale * (B.double() @ A.double())
    factor = magnitude / torch.linalg.vector_norm(V, dim=1)
    delta = (factor[:, None] * V - W.double()).to(_output_dtype(W, A, B))
    # At step 0 (B = 0) peft's merge gives W back exactly (m was set to ||W||_row by the same
    # arithmetic); our float64 norm differs from that in the last bits of the stored dtype.
    low = min(torch.finfo(ad.ckpt.dtype(magnitude_key) or torch.float32).eps,
              torch.finfo(ad.base.dtype(name + ".weight") or torch.float32).eps)  # fmt: skip
    if _is_zero_product(B, A) and float((factor - 1).abs().max()) <= 4 * low:
        delta = torch.zeros_like(delta)
    return delta, r, "dora", not delta.any()


def _adalora_shape(ad, name, parts):
    ad.need(name, parts, "lora_A", "lora_B", "lora_E")
    return ad.shape(parts, "lora_B")[0], ad.shape(parts, "lora_A")[1]


def _adalora_build(ad, name, parts):
    # peft adalora/layer.py: B @ (A * E) * scaling / (ranknum + 1e-5). ranknum is not saved: it is
    # init_r at creation and is carried over when rank_pattern prunes the rows, and scaling is
    # lora_alpha, or the (pruned) rank where lora_alpha <= 0.
    A, B, E = (ad.get(parts[p]) for p in ("lora_A", "lora_B", "lora_E"))
    r = A.shape[0]
    if r == 0:  # every triplet pruned away by rank_pattern: no update
        return torch.zeros(B.shape[0], A.shape[1], dtype=_output_dtype(A, B)), 0, "adalora", True
    alpha = ad.config.get("lora_alpha", 8)
    scaling = alpha if alpha > 0 else float(r)
    ranknum = float(ad.config.get("init_r", r))
    scale = scaling / (ranknum + 1e-5)
    A_scaled = A * E.reshape(-1, 1)
    return LowRank(B, A_scaled, scale), r, "adalora", scale == 0 or _is_zero_product(B, A_scaled)


def _loha_shape(ad, name, parts):
    if "hada_t1" in parts or "hada_t2" in parts:
        raise ValueError(f"adapter {ad.path}: module '{name}' is a convolution (LoHa CP form)")
    ad.need(name, parts, "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")
    return ad.shape(parts, "hada_w1_a")[0], ad.shape(parts, "hada_w1_b")[1]


def _lycoris_scale(ad, name: str, r: int) -> float:
    # peft loha|lokr model.py, layer.py: r, alpha from rank_pattern / alpha_pattern; alpha / r
    return _pattern_value(ad.config.get("alpha_pattern"), name, ad.config.get("alpha", 8)) / r


def _loha_build(ad, name, parts):
    # peft loha/layer.py make_weight: ((w1_a @ w1_b) * (w2_a @ w2_b)) * alpha / r
    w1a, w1b, w2a, w2b = (ad.get(parts[p]).double() for p in ADAPTER_KINDS["LOHA"][:4])
    r = w1a.shape[1]
    delta = (w1a @ w1b) * (w2a @ w2b) * _lycoris_scale(ad, name, r)
    delta = delta.to(_stored_dtype(ad.ckpt, parts.values()))
    return delta, r, "loha", not delta.any()


def _lokr_factor_shape(ad, name, parts, which: str) -> tuple[int, int]:
    if f"lokr_{which}" in parts:
        return ad.shape(parts, f"lokr_{which}")
    ad.need(name, parts, f"lokr_{which}_a", f"lokr_{which}_b")
    return ad.shape(parts, f"lokr_{which}_a")[0], ad.shape(parts, f"lokr_{which}_b")[1]


def _lokr_shape(ad, name, parts):
    if "lokr_t2" in parts:
        raise ValueError(f"adapter {ad.path}: module '{name}' is a convolution (LoKr CP form)")
    (a, c), (b, d) = (_lokr_factor_shape(ad, name, parts, w) for w in ("w1", "w2"))
    return a * b, c * d


def _lokr_factor(ad, parts, which: str) -> torch.Tensor:
    if f"lokr_{which}" in parts:
        return ad.get(parts[f"lokr_{which}"]).double()
    return ad.get(parts[f"lokr_{which}_a"]).double() @ ad.get(parts[f"lokr_{which}_b"]).double()


def _lokr_build(ad, name, parts):
    # peft lokr/layer.py: kron(w1, w2) * alpha / r, each w either full or w_a @ w_b; r is the
    # configured rank (rank_pattern) even where neither factor is decomposed.
    r = int(_pattern_value(ad.config.get("rank_pattern"), name, ad.config.get("r", 8)))
    w1, w2 = _lokr_factor(ad, parts, "w1"), _lokr_factor(ad, parts, "w2")
    delta = torch.kron(w1, w2) * _lycoris_scale(ad, name, r)
    delta = delta.to(_stored_dtype(ad.ckpt, parts.values()))
    return delta, r, "lokr", not delta.any()


def _vera_shape(ad, name, parts):
    ad.need(name, parts, "vera_lambda_b", "vera_lambda_d")
    for shared in ("vera_A", "vera_B"):
        if shared not in ad.shared:
            raise ValueError(
                f"adapter {ad.path}: VeRA saved without its projection {shared} "
                f"(save_projection=False); save it with save_projection=True"
            )
    # The shared projections are sliced to each module's in_features, which only the base knows.
    rows, cols = ad.base_shape(name)
    if ad.shape(parts, "vera_lambda_b")[0] != rows:
        raise ValueError(
            f"adapter {ad.path}: module '{name}' has {ad.shape(parts, 'vera_lambda_b')[0]} "
            f"outputs but the base {ad.base.path} has shape {(rows, cols)}"
        )
    return rows, cols


def _vera_build(ad, name, parts):
    # peft vera/layer.py: (lambda_b * vera_B[:out]) @ (lambda_d * vera_A[:, :in]).
    rows, cols = ad.base_shape(name)
    vera_A, vera_B = ad.get(ad.shared["vera_A"]), ad.get(ad.shared["vera_B"])
    if vera_A.shape[1] < cols or vera_B.shape[0] < rows:
        raise ValueError(
            f"adapter {ad.path}: VeRA projections {tuple(vera_B.shape)}, {tuple(vera_A.shape)} "
            f"are too small for module '{name}' of shape {(rows, cols)}"
        )
    lam_b, lam_d = ad.get(parts["vera_lambda_b"]), ad.get(parts["vera_lambda_d"])
    B = lam_b.reshape(-1, 1) * vera_B[:rows]
    A = lam_d.reshape(-1, 1) * vera_A[:, :cols]
    return LowRank(B, A, 1.0), A.shape[0], "vera", _is_zero_product(B, A)


def _mps_shape(ad, name, parts):
    ad.need(name, parts, "mps_B", "mps_G1", "mps_G2")
    return ad.shape(parts, "mps_B")[0], ad.shape(parts, "mps_G1")[1] * ad.shape(parts, "mps_G2")[1]


def _mps_build(ad, name, parts):
    # artent.adapters.mps: A_MPS[k, i1 * n2 + i2] = sum_c G1[k, i1, c] G2[c, i2]; scale alpha / r.
    B, G1, G2 = (ad.get(parts[p]) for p in ("mps_B", "mps_G1", "mps_G2"))
    r = B.shape[1]
    A = torch.einsum("kic,cj->kij", G1, G2).reshape(r, -1)
    alpha = ad.config.get("alpha", 8.0)
    scale = alpha / (math.sqrt(r) if ad.config.get("use_rslora") else r)
    return LowRank(B, A, scale), r, "mps", scale == 0 or _is_zero_product(B, A)


_READERS: dict[str, tuple[Callable, Callable]] = {
    "LORA": (_lora_shape, _lora_build),
    "ADALORA": (_adalora_shape, _adalora_build),
    "LOHA": (_loha_shape, _loha_build),
    "LOKR": (_lokr_shape, _lokr_build),
    "VERA": (_vera_shape, _vera_build),
    "MPS": (_mps_shape, _mps_build),
}


def _plan_adapter(adapter, base, modules, layers, allow_pickle):
    ad = _Adapter(adapter, base, allow_pickle)
    if ad.peft_type == "LORA":
        for option in _UNSUPPORTED_LORA_OPTIONS:
            if ad.config.get(option):
                raise ValueError(f"adapter {ad.path}: LoRA option '{option}' is not supported")
        if ad.config.get("init_lora_weights") == "mica":
            raise ValueError(f"adapter {ad.path}: the MiCA LoRA variant is not supported")
        if ad.config.get("use_dora"):
            ad.require_base("a DoRA update depends on the base weights")
    if ad.peft_type == "VERA":
        ad.require_base("VeRA stores no module input widths")
    check_fits(ad)  # the same check external and nohair make before loading the pair
    plan = _select(ad.modules, modules, layers, ad.path)
    shape_of = _READERS[ad.peft_type][0]
    for name, _, _ in plan:
        shape_of(ad, name, ad.modules[name])
    return ad, plan


def deltas_from_adapter(
    adapter: str | Path,
    *,
    base: str | Path | None = None,
    modules: Iterable[str] = DEFAULT_MODULES,
    layers: Iterable[int] | None = None,
    allow_pickle: bool = False,
) -> Iterator[Delta]:
    """Each chosen module's update from a saved peft adapter (peft 0.21 conventions).

    Args:
        adapter: the adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``), or
            its weights file with the config beside it.
        base: the base checkpoint; needed for DoRA and VeRA, and when given, every adapted
            module's shape is checked against it.
        modules, layers, allow_pickle: as in :func:`deltas_from_pair`.

    Kinds: LoRA ``LowRank(B, A, alpha / r)`` (alpha_pattern / rank_pattern honoured; rsLoRA
    ``alpha / sqrt(r)``); DoRA dense ``m / ||W + sBA||_row (W + sBA) - W``; LoHa, LoKr dense;
    AdaLoRA ``LowRank(B, A * E, scaling / (init_r + 1e-5))``; VeRA ``LowRank(lambda_b vera_B,
    lambda_d vera_A)``; artent's MPS ``LowRank(B, A_MPS, alpha / r)``.

    Raises:
        CheckpointError: no ``adapter_config.json`` or weights, unreadable files, NaN or Inf.
        ValueError: an unknown peft_type or unsupported variant, DoRA/VeRA without a base, shapes
            that do not fit the base, a module or layer that matches nothing.
    """
    ad, plan = _plan_adapter(adapter, base, modules, layers, allow_pickle)
    return _adapter_deltas(ad, plan)


def _adapter_deltas(ad: _Adapter, plan) -> Iterator[Delta]:
    shape_of, build = _READERS[ad.peft_type]
    try:
        for name, layer, module in plan:
            rows, cols = shape_of(ad, name, ad.modules[name])
            update, rank, kind, is_zero = build(ad, name, ad.modules[name])
            yield Delta(name, layer, module, update, rows, cols, rank, kind, bool(is_zero))
    finally:
        ad.ckpt.close()
        if ad.base is not None:
            ad.base.close()


def count_deltas(
    *,
    base: str | Path | None = None,
    tuned: str | Path | None = None,
    adapter: str | Path | None = None,
    modules: Iterable[str] = DEFAULT_MODULES,
    layers: Iterable[int] | None = None,
    allow_pickle: bool = False,
) -> int:
    """How many :class:`Delta` the matching call would yield (headers only, for progress bars).

    With ``adapter``: as :func:`deltas_from_adapter` (``base`` optional); else as
    :func:`deltas_from_pair` (``base`` and ``tuned`` required). Raises what that call raises
    before its first item.
    """
    if adapter is not None:
        if tuned is not None:
            raise ValueError("count_deltas: give either adapter or tuned, not both")
        ad, plan = _plan_adapter(adapter, base, modules, layers, allow_pickle)
        for ckpt in (ad.ckpt, ad.base):
            if ckpt is not None:
                ckpt.close()
        return len(plan)
    if base is None or tuned is None:
        raise ValueError("count_deltas: give adapter, or both base and tuned")
    base_ckpt, tuned_ckpt, plan = _plan_pair(base, tuned, modules, layers, allow_pickle)
    base_ckpt.close()
    tuned_ckpt.close()
    return len(plan)
