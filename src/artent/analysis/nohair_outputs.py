"""The no-hair comparison of attention outputs, one layer at a time across every model.

The attention maps of ``L`` layers for ``n`` models (``L x heads x T x T`` each) are what the
comparison needs and what memory cannot hold at long ``T`` (about 1 GB per window and model for
a 30-layer model at ``T = 2048``). So the models run their forward passes side by side, one
thread each, and meet at every layer (a :class:`threading.Barrier`): when every model has made
layer ``l``'s maps (then its per-head context, then its output), the pairwise sums are taken and
the tensors dropped. Memory holds the models and one layer's tensors of each, whatever the depth.
The sums give exactly what comparing the stacked tensors gives:

* ``attention_js``: the mean over every row (layers, windows, heads, queries) of the
  Jensen-Shannon divergence between the two models' attention rows (nats);
* ``context_rel_dist`` / ``context_cos`` (and ``hidden_*``): per layer, the relative Frobenius
  distance ``||a - b|| / ||b||`` and the cosine of the flattened tensors over all windows, then
  the mean over layers.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["compare_outputs"]

KINDS = ("attention", "context", "hidden")


def _js_sum(p, q) -> tuple[float, int]:
    """Sum over rows of the Jensen-Shannon divergence of two stochastic tensors, and the rows."""
    import torch

    p, q = p.double(), q.double()
    m = (0.5 * (p + q)).clamp_min(1e-300)

    def kl(a):
        return torch.where(a > 0, a * (torch.log(a.clamp_min(1e-300)) - torch.log(m)), 0.0).sum(-1)

    js = 0.5 * kl(p) + 0.5 * kl(q)
    return float(js.sum()), int(js.numel())


class _Sums:
    """The running sums of one ordered pair ``(x, reference)``."""

    def __init__(self) -> None:
        self.js, self.rows = 0.0, 0
        # per kind, per layer: [sum (a - b)^2, sum b^2, sum a b, sum a^2]
        self.norms: dict[str, dict[int, list[float]]] = {"context": {}, "hidden": {}}

    def add(self, kind: str, layer: int, a, b) -> None:
        if kind == "attention":
            js, rows = _js_sum(a, b)
            self.js, self.rows = self.js + js, self.rows + rows
            return
        a, b = a.double().reshape(-1), b.double().reshape(-1)
        acc = self.norms[kind].setdefault(layer, [0.0, 0.0, 0.0, 0.0])
        for i, v in enumerate(
            ((a - b).square().sum(), b.square().sum(), (a * b).sum(), a.square().sum())
        ):
            acc[i] += float(v)

    def result(self) -> dict[str, float]:
        out = {"attention_js": self.js / self.rows if self.rows else math.nan}
        for kind in ("context", "hidden"):
            per = self.norms[kind].values()
            rel = [math.sqrt(d) / math.sqrt(b) for d, b, _, _ in per]
            cos = [ab / max(math.sqrt(a2 * b2), 1e-300) for _, b2, ab, a2 in per]
            out[f"{kind}_rel_dist"] = sum(rel) / len(rel) if rel else math.nan
            out[f"{kind}_cos"] = sum(cos) / len(cos) if cos else math.nan
        return out


def compare_outputs(
    models: dict[str, tuple[Any, Any]],
    pairs: Sequence[tuple[str, str]],
    *,
    batch_size: int = 8,
) -> tuple[dict[tuple[str, str], dict[str, float]], str | None]:
    """Pairwise attention-output comparison of models on their windows, layer by layer.

    Args:
        models: ``{label: (model, ids)}``, each model with its ``[windows, T]`` token ids (the
            same windows for every model: a no-hair comparison reads one corpus).
        pairs: the ordered pairs ``(x, reference)`` to compare.
        batch_size: windows per forward pass (memory holds one layer's tensors of a batch).

    Returns:
        ``({pair: {attention_js, context_rel_dist, context_cos, hidden_rel_dist, hidden_cos}},
        note)``: the context columns are NaN, and ``note`` says why, for an architecture whose
        output projection artent does not know.

    Raises:
        ValueError: models whose layer stacks differ (they cannot be compared layer by layer) or
            windows of different shapes.
    """
    from artent.models.attention import architecture, attention_layers

    labels = list(models)
    stacks = {k: attention_layers(m) for k, (m, _) in models.items()}
    depth = {len(s) for s in stacks.values()}
    shapes = {tuple(ids.shape) for _, ids in models.values()}
    if len(depth) != 1 or len(shapes) != 1:
        layers = {k: len(s) for k, s in stacks.items()}
        raise ValueError(
            f"no-hair: the models differ in depth or windows ({layers}, {sorted(shapes)}); "
            "compare models of one base"
        )
    with_context = all(site.out_proj is not None for s in stacks.values() for site in s)
    note = None
    if not with_context:
        note = f"per-head context not available for {architecture(models[labels[0]][0])}"
    sums = {pair: _Sums() for pair in pairs}
    n_windows = next(iter(shapes))[0]
    for start in range(0, n_windows, batch_size):
        _lockstep(models, labels, sums, slice(start, start + batch_size), with_context)
    return {pair: s.result() for pair, s in sums.items()}, note


def _lockstep(models, labels, sums, rows: slice, with_context: bool) -> None:
    """One batch of windows through every model at once, meeting at each layer's tensors."""
    from artent.models.attention import read_attention

    slot: dict[str, tuple[str, int, Any]] = {}
    errors: list[BaseException] = []

    def compare() -> None:  # run by one thread once every model has filled its slot
        kinds = {(kind, layer) for kind, layer, _ in slot.values()}
        if len(kinds) != 1:
            raise RuntimeError(f"no-hair: the models' forward passes diverged ({sorted(kinds)})")
        ((kind, layer),) = kinds
        for (x, ref), s in sums.items():
            s.add(kind, layer, slot[x][2], slot[ref][2])
        slot.clear()

    barrier = threading.Barrier(len(labels), action=compare)

    def run(label: str) -> None:
        model, ids = models[label]

        def meet(kind: str):
            def hook(layer: int, tensor) -> None:
                slot[label] = (kind, layer, tensor.detach())
                barrier.wait()

            return hook

        try:
            read_attention(
                model,
                ids[rows],
                meet("attention"),
                on_context=meet("context") if with_context else None,
                on_hidden=meet("hidden"),
            )
        except threading.BrokenBarrierError:
            pass  # another model failed; its error is the one reported
        except BaseException as e:  # noqa: BLE001 - re-raised by the caller's thread below
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(k,), name=f"nohair-{k}") for k in labels]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    if barrier.broken:
        raise RuntimeError("no-hair: a model's forward pass stopped before the others")
