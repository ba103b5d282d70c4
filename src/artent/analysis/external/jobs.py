"""Which models the external analysis measures, and the loop that loads and measures each.

* :func:`measure_jobs`: the models, adapters and run checkpoints of ``artent external`` (the
  jobs of :func:`artent.inputs.external_jobs`), into one set of tables with ``model`` and
  ``source`` columns;
* :func:`measure_runs`: every checkpoint of training runs (the study's external stage), the
  step-0 checkpoint measured once, since every method starts from the base model itself;
* :func:`measure_checkpoint`: one checkpoint of a run (a sweep point's last);
* :func:`window_frames`: each base model's window frame, checked before any model loads.

Each measurement returns the tables of :func:`~.measure.run_external` by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from artent.analysis.external.config import ExternalConfig
from artent.analysis.external.measure import run_external
from artent.analysis.runs import RunCheckpoint, run_checkpoints
from artent.data.corpus import window_frame
from artent.models.loading import load_for_forward, load_tokenizer


def _concat(parts: dict[str, list]) -> dict[str, Any]:
    import pandas as pd  # lazy: the analyses' modules import without pandas

    return {name: pd.concat(frames, ignore_index=True) for name, frames in parts.items()}


def _spinner(what: str, show: bool):
    """A spinner naming the model being measured (a no-op unless ``show``)."""
    if not show:
        return nullcontext()
    from rich.console import Console  # lazy: only a command's progress needs rich

    return Console(stderr=True).status(what)


def measure_jobs(
    jobs: Iterable[tuple[str, int | None, dict[str, Any], str | None]],
    corpus: Any,
    cfg: ExternalConfig,
    *,
    model_names: dict[str, str],
    device: str | None = "auto",
    allow_pickle: bool = False,
    progress: bool = False,
    notify: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure every job on ``corpus``: the tables of all of them, stacked.

    Args:
        jobs: ``(label, step, spec, source)``: ``spec`` is what
            :func:`~artent.models.loading.load_for_forward` takes, or ``{"loaded": (model,
            tokenizer)}`` for a model in memory (measured where it is).
        corpus: the texts (as :func:`run_external` reads them).
        cfg: the analysis' options.
        model_names: each label's ``model`` column (the base model's name).
        device: where each loaded model goes.
        allow_pickle: read pickle checkpoints.
        progress: a spinner naming the model being measured.
        notify: receives one-line notes.
    """
    parts: dict[str, list] = {}
    for label, step, spec, source in jobs:
        if "loaded" in spec:
            model, tokenizer = spec["loaded"]
        else:
            model, tokenizer = load_for_forward(**spec, device=device, allow_pickle=allow_pickle)
        what = f"attention of {label}" + (f" step {step}" if step is not None else "")
        with _spinner(what, progress):
            tables = run_external(
                model, tokenizer, corpus, cfg, step=step, label=label, notify=notify
            )
            for name, frame in tables.items():
                if "label" in frame:
                    frame = frame.assign(source=source)
                parts.setdefault(name, []).append(frame.assign(model=model_names[label]))
    return _concat(parts)


def measure_checkpoint(
    checkpoint: RunCheckpoint,
    texts: Any,
    cfg: ExternalConfig,
    *,
    device: Any = None,
    label: str | None = None,
    notify: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The tables of one run checkpoint (labelled ``label``, default the run's name).

    Args:
        checkpoint: the checkpoint (its base and full weights or adapter).
        texts: the corpus.
        cfg: the analysis' options.
        device: where the model goes (``None``: where it loads, the CPU).
        label: the ``label`` column.
        notify: receives one-line notes.
    """
    kind = "full" if checkpoint.is_full else "adapter"
    model, tokenizer = load_for_forward(checkpoint.base, **{kind: checkpoint.path})
    if device is not None:
        model = model.to(device)
    return run_external(
        model,
        tokenizer,
        texts,
        cfg,
        step=checkpoint.step,
        label=checkpoint.label if label is None else label,
        notify=notify,
    )


def measure_runs(run_dirs: Iterable[str | Path], texts: Any, cfg: ExternalConfig, *, device: Any):
    """Every checkpoint of every run, in order; the step-0 checkpoints are the base model itself
    (LoRA and MPS with ``B = 0``, FFT from a copy): it is measured once and labelled per run.

    Args:
        run_dirs: artent training-run folders.
        texts: the corpus.
        cfg: the analysis' options.
        device: where each model goes.
    """
    parts: dict[str, list] = {}
    base_model_tables = None
    for run in run_dirs:
        for checkpoint in run_checkpoints(run):
            if checkpoint.step == 0:
                if base_model_tables is None:
                    model, tokenizer = load_for_forward(checkpoint.base)
                    base_model_tables = run_external(
                        model.to(device), tokenizer, texts, cfg, step=0
                    )
                tables = {k: v.assign(label=checkpoint.label) for k, v in base_model_tables.items()}
            else:
                tables = measure_checkpoint(checkpoint, texts, cfg, device=device)
            for name, frame in tables.items():
                parts.setdefault(name, []).append(frame)
    return _concat(parts)


def window_frames(
    bases: Sequence[str], start: str, *, loaded: dict[str, Any] | None = None
) -> dict[str, str]:
    """Each base model's window frame under ``start``, read off its tokenizer alone, so that a
    start the tokenizer cannot give (``bos`` without a BOS token) fails before any model loads.

    Args:
        bases: model names or folders (their tokenizers are loaded).
        start: the window start (:data:`artent.data.corpus.WINDOW_STARTS`).
        loaded: ``{name: tokenizer}`` of models in memory, whose tokenizers are given.

    Returns:
        ``{base: frame}``, the frame as text (``"<s> ..."``) for the run record.

    Raises:
        ValueError: one line naming the option and the model.
    """
    tokenizers = {base: None for base in bases} | (loaded or {})
    frames = {}
    for base, tok in tokenizers.items():
        try:
            frames[base] = window_frame(tok or load_tokenizer(base), start).tokens
        except ValueError as e:
            why = str(e).removeprefix(f"window_start {start}: ")
            raise ValueError(f"window_start={start}: model {base}: {why}") from None
    return frames
