"""The no-hair comparison (METHOD.md section 5): different insides, the same attention outside?

For the same input texts, models are compared pairwise (each fine-tuned model against every other
and against the base):

* internal contrast: mean ``|Delta S|`` between the internal profiles of the same (layer, module);
* external contrast: mean ``|Delta S|`` between the attention profiles of the same (layer, head,
  encoding, order);
* attention outputs: per-head context ``A V`` (the input of the output projection: ``o_proj``,
  GPT-2's ``c_proj``, NeoX's ``dense``, ...) and each layer's output: relative Frobenius distance
  ``||X_a - X_b|| / ||X_b||`` and cosine similarity of the flattened tensors, averaged over
  layers; attention maps: mean Jensen-Shannon divergence of rows (nats). For an architecture
  whose output projection artent does not know, the context columns are NaN and one line says
  "per-head context not available for ARCH"; the rest of the comparison runs;
* the no-hair ratio = external contrast / internal contrast (small means "no hair").

Against the base there is no update, so internal contrast and ratio are undefined (NaN) there.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from artent.analysis.external import ExternalConfig, run_external
from artent.analysis.external.jobs import window_frames
from artent.analysis.internal import InternalConfig, Source, run_internal
from artent.analysis.labels import assign_labels
from artent.analysis.nohair_outputs import compare_outputs
from artent.analysis.runs import is_run, resolve_base, run_checkpoints
from artent.data.corpus import DEFAULT_WINDOW_START, check_window_start, corpus_windows
from artent.folders.atomic import pyplot, save_figure
from artent.models.loading import check_adapter_on, load_for_forward
from artent.validation import check_device, check_fields, keyword

ENTROPY = "entropy"


@dataclass
class NoHairConfig:
    """Options of the no-hair comparison.

    Args:
        seq_len: tokens per window ``T`` fed to every model.
        n_texts: the most windows of ``T`` tokens cut from the corpus (the first ones).
        modules: modules for the internal profiles.
        encodings: attention encodings for the external profiles.
        orders: site orders for the external profiles.
        device: torch device for the profiles (``None``: CPU).
        allow_pickle: read pickle checkpoints (never by default).
        window_start: how each window starts (``"model"``, ``"bos"``, ``"none"``; see
            :mod:`artent.data.corpus`); every model reads windows framed by its own tokenizer.
    """

    seq_len: int = 64
    n_texts: int = 8
    modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    encodings: tuple[str, ...] = ("amplitude",)
    orders: tuple[str, ...] = ("sequential",)
    device: str | None = None
    allow_pickle: bool = False
    window_start: str = DEFAULT_WINDOW_START

    def __post_init__(self) -> None:
        check_fields(self, keyword)
        if self.device is not None:
            check_device(self.device, "device=")
        self.window_start = check_window_start(self.window_start, "window_start=")


@dataclass
class ModelSpec:
    """A model to compare: ``kind`` is ``base``, ``full`` (a tuned folder) or ``adapter``."""

    label: str
    base: str
    kind: str
    path: str | None = None

    def internal_source(self) -> Source | None:
        if self.kind == "base":
            return None
        return Source(
            self.label, None, "pair" if self.kind == "full" else "adapter", self.path, self.base
        )


def resolve_specs(
    items: list[str], base: str | None = None, labels: list[str | None] | None = None
) -> list[ModelSpec]:
    """Turn run folders, adapter folders and model folders into specs, plus their common base.

    Args:
        items: the models' folders (an artent run or Trainer ``output_dir``: its last checkpoint).
        base: the base of adapter and model folders (and of a Trainer run).
        labels: labels set by hand, one per item (``None`` where not): the others get the
            shortest path suffix that tells them apart (:mod:`artent.analysis.labels`).
    """
    names = assign_labels(items, labels, what="label=")
    if "base" in names:
        raise ValueError("label=: 'base' names the base model's row; choose another label")
    if base is not None:
        base = resolve_base(base)  # `tiny` as the cached folder, as the runs record their base
    specs: list[ModelSpec] = []
    for item, name in zip(items, names, strict=True):
        p = Path(item)
        if is_run(p):
            last = run_checkpoints(p, base)[-1]
            if last.base is None:
                raise ValueError(f"{p}: the adapters name no base model; pass base=")
            specs.append(
                ModelSpec(name, last.base, "full" if last.is_full else "adapter", last.path)
            )
        elif (p / "adapter_config.json").is_file():
            if base is None:
                raise ValueError(f"{p}: an adapter needs base= (the model it adapts)")
            specs.append(ModelSpec(name, base, "adapter", str(p)))
        elif (p / "config.json").is_file():
            if base is None:
                raise ValueError(f"{p}: a fine-tuned model needs base= to compare against")
            specs.append(ModelSpec(name, base, "full", str(p)))
        else:
            raise ValueError(f"{item}: not a run folder, an adapter folder or a model folder")
    bases = {s.base for s in specs}
    if len(bases) != 1:
        raise ValueError(f"models to compare must share one base, got {sorted(bases)}")
    return [ModelSpec("base", bases.pop(), "base"), *specs]


def check_specs(specs: list[ModelSpec], cfg: NoHairConfig) -> None:
    """Check every adapter against its base, and every base's window frame, before any model
    is loaded (or unpickled).

    Raises:
        ValueError: naming the first adapter that does not fit, a pickle without
            ``cfg.allow_pickle``, or a base whose tokenizer cannot start windows as
            ``cfg.window_start`` asks.
    """
    for spec in specs:
        if spec.kind == "adapter":
            check_adapter_on(spec.path, spec.base, allow_pickle=cfg.allow_pickle)
    window_frames([spec.base for spec in specs], cfg.window_start)


def js_divergence_rows(p, q) -> float:
    """Mean Jensen-Shannon divergence (nats) between matching rows of stochastic matrices."""
    import torch

    p, q = p.double(), q.double()
    m = 0.5 * (p + q)

    def kl(a):
        return torch.where(a > 0, a * (torch.log(a) - torch.log(m.clamp_min(1e-300))), 0.0).sum(-1)

    return float((0.5 * kl(p) + 0.5 * kl(q)).mean())


def _mean_abs_diff(x, y, keys: list[str]) -> float:
    if x is None or y is None or x.empty or y.empty:
        return float("nan")
    merged = x.merge(y, on=keys, suffixes=("_a", "_b"))
    if merged.empty:
        return float("nan")
    return float((merged[f"{ENTROPY}_a"] - merged[f"{ENTROPY}_b"]).abs().mean())


def _once(notify: Callable[[str], None] | None) -> Callable[[str], None]:
    """A printer of one-line notes that says each once (default ``warnings.warn``)."""
    said: set[str] = set()

    def note(message: str) -> None:
        if message not in said:
            said.add(message)
            (notify or (lambda m: warnings.warn(m, stacklevel=3)))(message)

    return note


def _measure(specs: list[ModelSpec], texts: Any, cfg: NoHairConfig, ext_cfg, note):
    """Every model's internal and external profiles on the same windows; ``(measured,
    loaded)``: the profiles by label, and each model with its windows (for the outputs)."""
    int_cfg = InternalConfig(modules=cfg.modules, device=cfg.device, allow_pickle=cfg.allow_pickle)
    measured: dict[str, dict] = {}
    loaded: dict[str, tuple[Any, Any]] = {}
    for spec in specs:
        model, tok = load_for_forward(
            spec.base,
            full=spec.path if spec.kind == "full" else None,
            adapter=spec.path if spec.kind == "adapter" else None,
            allow_pickle=cfg.allow_pickle,
        )
        windows = corpus_windows(tok, texts, cfg.seq_len, cfg.n_texts, start=cfg.window_start)
        if windows.note is not None:
            note(windows.note)
        ext = run_external(model, tok, windows, ext_cfg, label=spec.label)["external"]
        src = spec.internal_source()
        internal = run_internal([src], int_cfg, progress=False)[0] if src else None
        measured[spec.label] = dict(external=ext, internal=internal)
        loaded[spec.label] = (model, windows.ids)
    return measured, loaded


def _ordered_pairs(specs: list[ModelSpec], labels) -> list[tuple[str, str]]:
    """Every pair ``(model, reference)``: the reference is the base where it takes part, else a
    full fine-tune (LoRA against FFT)."""
    kinds = {s.label: s.kind for s in specs}
    pairs = []
    for a, b in combinations(labels, 2):
        swap = kinds[a] == "base" or (kinds[a] == "full" and kinds[b] != "full")
        pairs.append((b, a) if swap else (a, b))
    return pairs


def _pair_rows(pairs, measured: dict[str, dict], outputs: dict) -> list[dict]:
    """One row per pair: the internal and external contrasts, their ratio, the output
    distances."""
    ext_keys = ["layer", "head", "encoding", "order", "bond"]
    int_keys = ["layer", "module", "bond"]
    rows = []
    for x, ref in pairs:
        mx, mr = measured[x], measured[ref]
        ext_c = _mean_abs_diff(mx["external"], mr["external"], ext_keys)
        int_c = _mean_abs_diff(mx["internal"], mr["internal"], int_keys)
        out = outputs[x, ref]
        rows.append(
            dict(
                model=x,
                reference=ref,
                internal_contrast=int_c,
                external_contrast=ext_c,
                nohair_ratio=ext_c / int_c if int_c and int_c == int_c else float("nan"),
                context_rel_dist=out["context_rel_dist"],
                context_cos=out["context_cos"],
                hidden_rel_dist=out["hidden_rel_dist"],
                hidden_cos=out["hidden_cos"],
                attention_js=out["attention_js"],
            )
        )
    return rows


def run_nohair(
    specs: list[ModelSpec],
    texts: Any,
    cfg: NoHairConfig,
    *,
    notify: Callable[[str], None] | None = None,
):
    """Measure every model on the same windows of the corpus and compare them pairwise.

    Args:
        specs: the models (:func:`resolve_specs`).
        texts: the corpus (a :class:`~artent.data.corpus.Corpus` or a list of documents).
        cfg: :class:`NoHairConfig`.
        notify: receives one-line notes (fewer windows than asked, no per-head context);
            default ``warnings.warn``.

    Returns:
        ``{"pairs", "internal", "external"}`` DataFrames: one row per ordered pair ``(a, b)``
        (``b`` the reference), and the per-model profiles behind the contrasts.
    """
    import pandas as pd  # lazy: as every analysis module, pandas when a table is made

    note = _once(notify)
    ext_cfg = ExternalConfig(
        seq_len=cfg.seq_len,
        encodings=cfg.encodings,
        orders=cfg.orders,
        n_texts=cfg.n_texts,
        device=cfg.device,
        scaling_lengths=(cfg.seq_len,),
        baseline_samples=1,
        scaling_baseline_samples=0,
        window_start=cfg.window_start,
    )
    check_specs(specs, cfg)
    measured, loaded = _measure(specs, texts, cfg, ext_cfg, note)
    pairs = _ordered_pairs(specs, measured)
    # every model side by side, one layer's maps at a time (never every layer's at once)
    outputs, context_note = compare_outputs(loaded, pairs, batch_size=ext_cfg.batch_size)
    if context_note is not None:
        note(context_note)
    del loaded
    internal = pd.concat(
        [m["internal"].assign(model=k) for k, m in measured.items() if m["internal"] is not None],
        ignore_index=True,
    )
    external = pd.concat(
        [m["external"].assign(model=k) for k, m in measured.items()], ignore_index=True
    )
    rows = _pair_rows(pairs, measured, outputs)
    return {"pairs": pd.DataFrame(rows), "internal": internal, "external": external}


def plot_nohair(pairs, path: str | Path) -> Path:
    """Internal vs external contrast per pair, and the no-hair ratio (PNG)."""
    plt = pyplot()

    names = [f"{r.model}\nvs {r.reference}" for r in pairs.itertuples()]
    x = np.arange(len(pairs))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    ax1.bar(x - 0.2, pairs.internal_contrast.fillna(0), 0.4, label="internal |dS|")
    ax1.bar(x + 0.2, pairs.external_contrast, 0.4, label="external |dS|")
    ax1.set_xticks(x, names, fontsize=7)
    ax1.set(ylabel="mean |Delta S| (nats)", title="internal vs external contrast")
    ax1.legend(fontsize=8)
    ax2.bar(x, pairs.nohair_ratio.fillna(0))
    ax2.set_xticks(x, names, fontsize=7)
    ax2.set(ylabel="external / internal", title="no-hair ratio (NaN vs base shown as 0)")
    return save_figure(fig, path)
