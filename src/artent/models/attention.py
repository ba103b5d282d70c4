"""Per-head attention matrices and attention outputs of a causal LM, from one eager forward pass.

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
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["attention_maps", "attention_outputs", "decoder_layers", "eager_attention"]


def _transformers_model(model: Any):
    """The transformers ``PreTrainedModel`` inside ``model`` (unwrapping a PeftModel)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not hasattr(inner, "config") or not hasattr(inner, "set_attn_implementation"):
        raise ValueError(
            f"model: expected a transformers PreTrainedModel (or a PeftModel around one), got "
            f"{type(model).__name__}"
        )
    return inner


@contextmanager
def eager_attention(model: Any):
    """Run the block with ``model`` on eager attention in eval mode; restore both afterwards.

    Eval mode because attention dropout (zero in LLaMA, not everywhere) would make the maps
    random; the model's own training flag is put back on exit.

    Raises:
        RuntimeError: the model cannot be switched to eager attention.
    """
    inner = _transformers_model(model)
    previous = inner.config._attn_implementation
    if previous != "eager":
        try:
            inner.set_attn_implementation("eager")
        except Exception as exc:  # any failure to switch means no weights: say so plainly
            raise RuntimeError(
                f"{type(inner).__name__}: cannot switch attention to 'eager' (it uses "
                f"{previous!r}), so no attention weights can be read: {exc}"
            ) from exc
        # set_attn_implementation only *warns* for models that cannot switch dynamically.
        if inner.config._attn_implementation != "eager":
            raise RuntimeError(
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


def decoder_layers(model: Any) -> list:
    """The decoder layers of a causal LM, in order (each with ``self_attn.o_proj``).

    Raises:
        ValueError: no decoder layer stack with ``self_attn.o_proj`` is found.
    """
    import torch

    inner = _transformers_model(model)
    decoder = inner.get_decoder() if hasattr(inner, "get_decoder") else None
    candidates = [getattr(decoder, "layers", None)] if decoder is not None else []
    candidates += [m for m in inner.modules() if isinstance(m, torch.nn.ModuleList)]
    for layers in candidates:
        if (
            isinstance(layers, torch.nn.ModuleList)
            and len(layers) > 0
            and all(hasattr(getattr(l, "self_attn", None), "o_proj") for l in layers)
        ):
            return list(layers)
    raise ValueError(
        f"model: no decoder layers with self_attn.o_proj found in {type(inner).__name__}"
    )


def _prepare(model: Any, input_ids: Any, attention_mask: Any):
    import torch

    ids = torch.as_tensor(input_ids)
    if ids.ndim == 1:
        ids = ids[None]
    if ids.ndim != 2 or ids.shape[1] == 0:
        raise ValueError(
            f"input_ids: expected shape [batch, T] with T >= 1, got {tuple(ids.shape)}"
        )
    device = next(_transformers_model(model).parameters()).device
    mask = None if attention_mask is None else torch.as_tensor(attention_mask).to(device)
    return ids.to(device=device, dtype=torch.long), mask


def _stack_attentions(attentions: Any, n_layers: int, what: str):
    import torch

    if not attentions or any(a is None for a in attentions):
        raise RuntimeError(
            f"{what}: the forward pass returned no attention weights although eager attention "
            "was set; this model does not expose them"
        )
    if len(attentions) != n_layers:
        raise RuntimeError(
            f"{what}: got attention weights of {len(attentions)} of {n_layers} layers"
        )
    return torch.stack(list(attentions))


def attention_maps(model: Any, input_ids: Any, attention_mask: Any = None) -> torch.Tensor:
    """Every layer's and head's attention matrix, from one eager forward pass.

    Args:
        model: a causal LM from ``transformers`` (any attention implementation; it is switched to
            eager for the call and restored afterwards) or a ``peft.PeftModel`` around one.
        input_ids: ``[batch, T]`` (or ``[T]``) token ids.
        attention_mask: optional ``[batch, T]`` padding mask (1 = real token).

    Returns:
        ``[layers, batch, heads, T, T]`` tensor in the model's dtype, on its device:
        ``A[l, b, h, i, j]`` is how much query position ``i`` attends to key ``j`` (zero for
        ``j > i``; each row sums to one), with query heads (grouped key/value heads repeated).

    Raises:
        RuntimeError: eager attention cannot be set or returns no weights.
    """
    import torch

    ids, mask = _prepare(model, input_ids, attention_mask)
    n_layers = len(decoder_layers(model))
    with eager_attention(model), torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_attentions=True, use_cache=False)
    return _stack_attentions(out.attentions, n_layers, "attention_maps")


def attention_outputs(
    model: Any,
    input_ids: Any,
    attention_mask: Any = None,
    *,
    return_attention: bool = False,
) -> dict[str, torch.Tensor]:
    """Per-head attention context (``A V``, before ``o_proj``) and every decoder layer's output.

    Both are read with forward hooks during one eager forward pass (eager so that the context is
    exactly ``attention_maps @ V`` and not another kernel's rounding of it).

    Args:
        model: as in :func:`attention_maps` (a PeftModel works, LoRA on ``o_proj`` included).
        input_ids: ``[batch, T]`` (or ``[T]``) token ids.
        attention_mask: optional ``[batch, T]`` padding mask.
        return_attention: also return the attention maps of the same pass.

    Returns:
        ``{"context": [layers, batch, T, heads, head_dim], "hidden": [layers, batch, T, hidden]}``
        (plus ``"attention": [layers, batch, heads, T, T]`` on request): ``context[l, b, t, h]`` is
        head ``h``'s ``sum_j A[l, b, h, t, j] V_h[j]``, the input of layer ``l``'s ``o_proj``;
        ``hidden[l]`` is layer ``l``'s output hidden states (after its residual additions, before
        the final norm). Model dtype, on the model's device.
    """
    import torch

    ids, mask = _prepare(model, input_ids, attention_mask)
    layers = decoder_layers(model)
    contexts: list = [None] * len(layers)
    hiddens: list = [None] * len(layers)
    handles = []

    def _keep_context(i: int):
        def hook(_module, args, _output):
            contexts[i] = args[0].detach()

        return hook

    def _keep_hidden(i: int):
        def hook(_module, _args, output):
            out = output[0] if isinstance(output, tuple) else output
            hiddens[i] = out.detach()

        return hook

    try:
        for i, layer in enumerate(layers):
            handles.append(layer.self_attn.o_proj.register_forward_hook(_keep_context(i)))
            handles.append(layer.register_forward_hook(_keep_hidden(i)))
        with eager_attention(model) as inner, torch.no_grad():
            out = model(
                input_ids=ids,
                attention_mask=mask,
                output_attentions=return_attention,
                use_cache=False,
            )
    finally:
        for h in handles:
            h.remove()
    if any(c is None for c in contexts) or any(h is None for h in hiddens):
        raise RuntimeError("attention_outputs: a decoder layer was not run by the forward pass")
    context = torch.stack(contexts)  # [layers, batch, T, heads * head_dim]
    head_dim = getattr(layers[0].self_attn, "head_dim", None)
    if head_dim is None:  # architectures without the attribute: the text config's head count
        config = (
            inner.config.get_text_config() if hasattr(inner.config, "get_text_config") else None
        )
        head_dim = context.shape[-1] // int((config or inner.config).num_attention_heads)
    result = {
        "context": context.reshape(*context.shape[:3], -1, int(head_dim)),
        "hidden": torch.stack(hiddens),
    }
    if return_attention:
        result["attention"] = _stack_attentions(out.attentions, len(layers), "attention_outputs")
    return result
