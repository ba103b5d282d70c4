"""Per-head attention matrices and attention outputs of a transformer, from eager forward passes.

``transformers`` computes attention through a pluggable kernel named by
``config._attn_implementation``. Only ``"eager"`` materialises the ``T x T`` attention weights:
``"sdpa"`` (the default when a model is built or loaded) and the flash kernels return none, and
``output_attentions=True`` under ``sdpa`` gives an *empty tuple* plus a log warning, not an error.
So every function here switches the model to eager for the duration of the call (through
``set_attn_implementation``) and restores the implementation it found afterwards; when the switch
does not take, or no weights come back, it raises instead of returning nothing.

A ``peft.PeftModel`` works as it is: the attention kernel lives on the wrapped transformers model
(reached through ``get_base_model()``), and a LoRA-wrapped ``o_proj`` still receives the per-head
context as its input.

Architectures: every layer stack is found by its attention module and that module's output
projection (:data:`ATTENTION_SITES`: LLaMA, Qwen2/3, Mistral, Gemma 2/3 and Phi-3's
``self_attn.o_proj``, OPT's ``self_attn.out_proj``, GPT-2's ``attn.c_proj``, GPT-NeoX's
``attention.dense``, BERT's ``attention.self`` and ``attention.output.dense``, ...). Under eager
attention each of these modules returns ``(output, weights)``, so the weights are read by a forward
hook *layer by layer* (:func:`read_attention`): a caller can reduce one layer's maps before the next
layer runs, and memory holds one layer's maps, never every layer's. A model whose layers are found
only by an ``...Attention`` class name still gives maps, but no per-head context.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = [
    "ATTENTION_SITES",
    "AttentionLayer",
    "AttentionUnavailable",
    "architecture",
    "attention_layers",
    "attention_maps",
    "attention_outputs",
    "decoder_layers",
    "eager_attention",
    "read_attention",
]

#: (attention module, its output projection) as paths inside one layer of the stack, tried in
#: order. The attention module returns ``(output, weights)`` under eager attention; the output
#: projection's input is the per-head context ``A V`` with the heads concatenated.
ATTENTION_SITES: tuple[tuple[str, str], ...] = (
    ("self_attn", "self_attn.o_proj"),  # LLaMA, Qwen2/3, Mistral, Gemma 2/3, Phi-3
    ("self_attn", "self_attn.out_proj"),  # OPT
    ("self_attn", "self_attn.dense"),  # Phi-1/2
    ("attn", "attn.c_proj"),  # GPT-2
    ("attn", "attn.out_proj"),  # GPT-J
    ("attention", "attention.dense"),  # GPT-NeoX
    ("self_attention", "self_attention.dense"),  # Falcon, BLOOM
    ("attention.self", "attention.output.dense"),  # BERT, RoBERTa
)
#: ``config.layer_types`` entries of layers that attend within a window only.
LOCAL_LAYER_TYPES = ("sliding_attention", "chunked_attention")


class AttentionUnavailable(ValueError):
    """The model gives no attention weights (a user input problem: one line, exit code 2)."""


def transformers_model(model: Any):
    """The transformers ``PreTrainedModel`` inside ``model`` (unwrapping a PeftModel)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not hasattr(inner, "config") or not hasattr(inner, "set_attn_implementation"):
        raise AttentionUnavailable(
            f"model: expected a transformers PreTrainedModel (or a PeftModel around one), got "
            f"{type(model).__name__}"
        )
    return inner


def architecture(model: Any) -> str:
    """The model's ``config.model_type`` (``"llama"``, ``"gpt2"``, ...), or its class name."""
    inner = transformers_model(model)
    return str(getattr(inner.config, "model_type", None) or type(inner).__name__)


@contextmanager
def eager_attention(model: Any):
    """Run the block with ``model`` on eager attention in eval mode; restore both afterwards.

    Eval mode because attention dropout (zero in LLaMA, not everywhere) would make the maps
    random; the model's own training flag is put back on exit.

    Raises:
        AttentionUnavailable: the model cannot be switched to eager attention.
    """
    inner = transformers_model(model)
    previous = inner.config._attn_implementation
    if previous != "eager":
        try:
            inner.set_attn_implementation("eager")
        except Exception as exc:  # any failure to switch means no weights: say so plainly
            raise AttentionUnavailable(
                f"{type(inner).__name__}: cannot switch attention to 'eager' (it uses "
                f"{previous!r}), so no attention weights can be read: {exc}"
            ) from exc
        # set_attn_implementation only *warns* for models that cannot switch dynamically.
        if inner.config._attn_implementation != "eager":
            raise AttentionUnavailable(
                f"{type(inner).__name__}: does not support switching its attention "
                f"implementation (still {inner.config._attn_implementation!r}); load it with "
                "attn_implementation='eager' to read attention weights"
            )
    was_training = model.training
    model.eval()
    try:
        yield inner
    finally:
        model.train(was_training)
        if previous != "eager" and previous is not None:
            inner.set_attn_implementation(previous)


@dataclass
class AttentionLayer:
    """One layer's attention, as :func:`attention_layers` finds it.

    Attributes:
        index: the layer's position in the stack.
        layer: the layer (block) module.
        attention: the module returning ``(output, weights)`` under eager attention.
        out_proj: the output projection whose input is the per-head context; ``None`` when the
            architecture is not in :data:`ATTENTION_SITES`.
        local: the layer attends within a sliding window (Gemma's local layers, Mistral).
        window: that window in tokens (``None`` for global layers).
    """

    index: int
    layer: Any
    attention: Any
    out_proj: Any
    local: bool
    window: int | None


def _submodule(module: Any, path: str):
    for part in path.split("."):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


def text_config(config: Any) -> Any:
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def _local_layers(config: Any, n_layers: int) -> list[tuple[bool, int | None]]:
    """``(local, window)`` per layer from the config (``layer_types``, else ``sliding_window``)."""
    config = text_config(config)
    window = getattr(config, "sliding_window", None)
    window = int(window) if isinstance(window, int) and window > 0 else None
    types = getattr(config, "layer_types", None)
    if types is not None and len(types) == n_layers:
        return [(t in LOCAL_LAYER_TYPES, window if t in LOCAL_LAYER_TYPES else None) for t in types]
    # No per-layer types: a configured window applies to every layer (Mistral, Phi-3).
    return [(window is not None, window)] * n_layers


def attention_layers(model: Any) -> list[AttentionLayer]:
    """Every layer's attention module (and output projection), in order.

    The layer stack is the first ``ModuleList`` of the model whose every item holds one of the
    :data:`ATTENTION_SITES`; failing that, the first whose every item holds a module whose class
    name ends in ``Attention`` (maps only, no per-head context).

    Raises:
        AttentionUnavailable: no attention layer stack is found (e.g. a state-space model).
    """
    import torch

    inner = transformers_model(model)
    stacks = [m for m in inner.modules() if isinstance(m, torch.nn.ModuleList) and len(m) > 0]
    found: list[tuple[Any, Any, Any]] | None = None
    for stack in stacks:
        for attn_path, proj_path in ATTENTION_SITES:
            sites = [(l, _submodule(l, attn_path), _submodule(l, proj_path)) for l in stack]
            if all(a is not None and p is not None for _, a, p in sites):
                found = sites
                break
        if found:
            break
    if found is None:
        for stack in stacks:
            sites = []
            for layer in stack:
                attn = next(
                    (m for m in layer.modules() if type(m).__name__.endswith("Attention")), None
                )
                sites.append((layer, attn, None))
            if all(a is not None for _, a, _ in sites):
                found = sites
                break
    if found is None:
        raise AttentionUnavailable(
            f"model {architecture(inner)} ({type(inner).__name__}): no attention layers found, "
            "so it returns no attention maps"
        )
    kinds = _local_layers(inner.config, len(found))
    return [
        AttentionLayer(i, layer, attn, proj, local, window)
        for i, ((layer, attn, proj), (local, window)) in enumerate(zip(found, kinds, strict=True))
    ]


def decoder_layers(model: Any) -> list:
    """The layers (blocks) of the attention stack, in order (see :func:`attention_layers`)."""
    return [site.layer for site in attention_layers(model)]


def _prepare(model: Any, input_ids: Any, attention_mask: Any):
    import torch

    ids = torch.as_tensor(input_ids)
    if ids.ndim == 1:
        ids = ids[None]
    if ids.ndim != 2 or ids.shape[1] == 0:
        raise ValueError(
            f"input_ids: expected shape [batch, T] with T >= 1, got {tuple(ids.shape)}"
        )
    device = next(transformers_model(model).parameters()).device
    mask = None if attention_mask is None else torch.as_tensor(attention_mask).to(device)
    return ids.to(device=device, dtype=torch.long), mask


def read_attention(
    model: Any,
    input_ids: Any,
    on_layer: Callable[[int, torch.Tensor], None],
    *,
    attention_mask: Any = None,
    on_context: Callable[[int, torch.Tensor], None] | None = None,
    on_hidden: Callable[[int, torch.Tensor], None] | None = None,
) -> list[AttentionLayer]:
    """One eager forward pass that hands each layer's attention maps to ``on_layer`` as it runs.

    ``on_layer(layer, weights)`` is called once per layer, in order, with that layer's
    ``[batch, heads, T, T]`` weights (model dtype and device); nothing keeps them afterwards, so
    memory holds one layer's maps at a time whatever the depth. ``on_context(layer, context)``
    receives the input of the layer's output projection, ``[batch, T, heads * head_dim]``, and
    ``on_hidden(layer, hidden)`` the layer's output hidden states.

    Args:
        model: a transformers model (causal or encoder-only) or a PeftModel around one; switched
            to eager attention and eval mode for the pass, both restored afterwards.
        input_ids: ``[batch, T]`` (or ``[T]``) token ids.
        on_layer: the consumer of each layer's maps.
        attention_mask: optional ``[batch, T]`` padding mask (1 = real token).
        on_context: consumer of each layer's per-head context (needs an output projection).
        on_hidden: consumer of each layer's output.

    Returns:
        The :class:`AttentionLayer` list the pass read.

    Raises:
        AttentionUnavailable: no attention layers, eager attention cannot be set, a layer
            returned no weights, or ``on_context`` is given and the architecture has no known
            output projection.
    """
    import torch

    ids, mask = _prepare(model, input_ids, attention_mask)
    layers = attention_layers(model)
    arch = architecture(model)
    if on_context is not None and any(site.out_proj is None for site in layers):
        raise AttentionUnavailable(f"per-head context not available for {arch}")
    seen = [0] * len(layers)

    def weights_hook(i: int):
        def hook(_module, _args, output):
            weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if not isinstance(weights, torch.Tensor) or weights.ndim != 4:
                raise AttentionUnavailable(
                    f"model {arch}: layer {i}'s attention returned no weights under eager "
                    "attention, so no attention maps can be read"
                )
            seen[i] += 1
            on_layer(i, weights.detach())

        return hook

    def input_hook(i: int, fn):
        def hook(_module, args, _output):
            fn(i, args[0].detach())

        return hook

    def output_hook(i: int, fn):
        def hook(_module, _args, output):
            fn(i, (output[0] if isinstance(output, tuple) else output).detach())

        return hook

    handles = []
    try:
        for site in layers:
            handles.append(site.attention.register_forward_hook(weights_hook(site.index)))
            if on_context is not None:
                handles.append(
                    site.out_proj.register_forward_hook(input_hook(site.index, on_context))
                )
            if on_hidden is not None:
                handles.append(site.layer.register_forward_hook(output_hook(site.index, on_hidden)))
        with eager_attention(model) as inner, torch.no_grad():
            # The bare transformer (no LM head): its logits, T x vocabulary per window, would
            # cost more than the attention on a small model with a large vocabulary.
            body = getattr(inner, "base_model", None)
            body = body if isinstance(body, torch.nn.Module) else inner
            body(input_ids=ids, attention_mask=mask, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    if seen != [1] * len(layers):
        raise AttentionUnavailable(
            f"model {arch}: the forward pass ran {sum(seen)} attention calls for {len(layers)} "
            "layers; artent cannot tell which maps belong to which layer"
        )
    return layers


def attention_maps(model: Any, input_ids: Any, attention_mask: Any = None) -> torch.Tensor:
    """Every layer's and head's attention matrix, from one eager forward pass.

    Holds every layer's maps at once: for long sequences on deep models use
    :func:`read_attention`, which hands them over one layer at a time.

    Args:
        model: a transformers model (any attention implementation; it is switched to eager for
            the call and restored afterwards) or a ``peft.PeftModel`` around one.
        input_ids: ``[batch, T]`` (or ``[T]``) token ids.
        attention_mask: optional ``[batch, T]`` padding mask (1 = real token).

    Returns:
        ``[layers, batch, heads, T, T]`` tensor in the model's dtype, on its device:
        ``A[l, b, h, i, j]`` is how much query position ``i`` attends to key ``j`` (each row sums
        to one; zero for ``j > i`` in a causal model), with query heads (grouped key/value heads
        repeated).

    Raises:
        AttentionUnavailable: eager attention cannot be set or returns no weights.
    """
    import torch

    maps: dict[int, torch.Tensor] = {}
    read_attention(model, input_ids, maps.__setitem__, attention_mask=attention_mask)
    return torch.stack([maps[i] for i in range(len(maps))])


def attention_outputs(
    model: Any,
    input_ids: Any,
    attention_mask: Any = None,
    *,
    return_attention: bool = False,
) -> dict[str, Any]:
    """Per-head attention context (``A V``, before the output projection) and layer outputs.

    Both are read with forward hooks during one eager forward pass (eager so that the context is
    exactly ``attention_maps @ V`` and not another kernel's rounding of it).

    Args:
        model: as in :func:`attention_maps` (a PeftModel works, LoRA on ``o_proj`` included).
        input_ids: ``[batch, T]`` (or ``[T]``) token ids.
        attention_mask: optional ``[batch, T]`` padding mask.
        return_attention: also return the attention maps of the same pass.

    Returns:
        ``{"context": [layers, batch, T, heads, head_dim] or None, "hidden": [layers, batch, T,
        hidden]}`` (plus ``"attention": [layers, batch, heads, T, T]`` on request):
        ``context[l, b, t, h]`` is head ``h``'s ``sum_j A[l, b, h, t, j] V_h[j]``, the input of
        layer ``l``'s output projection (``None``, with the reason under ``"context_note"``, for
        an architecture whose output projection artent does not know); ``hidden[l]`` is layer
        ``l``'s output hidden states (after its residual additions, before any final norm).
        Model dtype, on the model's device.
    """
    import torch

    layers = attention_layers(model)
    with_context = all(site.out_proj is not None for site in layers)
    maps: dict[int, torch.Tensor] = {}
    heads: dict[int, int] = {}
    contexts: dict[int, torch.Tensor] = {}
    hiddens: dict[int, torch.Tensor] = {}

    def on_layer(i: int, weights) -> None:
        heads[i] = int(weights.shape[1])
        if return_attention:
            maps[i] = weights

    read_attention(
        model,
        input_ids,
        on_layer,
        attention_mask=attention_mask,
        on_context=contexts.__setitem__ if with_context else None,
        on_hidden=hiddens.__setitem__,
    )
    n = len(layers)
    if len(hiddens) != n or (with_context and len(contexts) != n):
        raise AttentionUnavailable("attention_outputs: a layer was not run by the forward pass")
    result: dict[str, Any] = {"hidden": torch.stack([hiddens[i] for i in range(n)])}
    if with_context:
        context = torch.stack([contexts[i] for i in range(n)])  # [layers, batch, T, heads * d]
        result["context"] = context.reshape(*context.shape[:3], heads[0], -1)
    else:
        result["context"] = None
        result["context_note"] = f"per-head context not available for {architecture(model)}"
    if return_attention:
        result["attention"] = torch.stack([maps[i] for i in range(n)])
    return result
