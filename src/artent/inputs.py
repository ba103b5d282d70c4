"""The inputs of the analyses as the API takes them: labels, runs, hub ids, models in memory.

:mod:`artent.api` hands what the user passed (paths, ``{label: path}`` mappings, ``label=``
names, hub ids, loaded models) to the functions here, which turn them into the sources of the
internal analysis and the jobs of the external one, each with its unique label
(:mod:`artent.analysis.labels`) and its step (:func:`artent.analysis.runs.checkpoint_step`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["external_jobs", "internal_sources", "labelled", "local_or_hub"]

#: what a hub repository id looks like (``org/name`` or ``name``); only one that is not a local
#: path is looked up on the hub
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
#: the files fetched from the hub for an analysis (weights as safetensors, configs, tokenizers)
HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken"]


def labelled(value: Any) -> list[tuple[str | None, Any]]:
    """``(label, item)`` pairs of an option: ``None``, one item, a list, or ``{label: item}``."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [(str(k), v) for k, v in value.items()]
    if isinstance(value, (str, Path)) or not isinstance(value, Iterable):
        return [(None, value)]
    return [(None, v) for v in value]


def _hub_offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE"):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return True
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def local_or_hub(name: Any, option: str, *, allow_pickle: bool = False) -> str:
    """A local path as it is; a hub id that is not one fetched from the hub (or its cache).

    Args:
        name: a path, or a hub repository id (``org/name``).
        option: how errors name the parameter, ahead of the path (``adapter=``).
        allow_pickle: also fetch ``*.bin`` weights.

    Raises:
        ValueError: a path that does not exist and is no hub id; a hub id while the hub is
            unreachable (offline) and the id is not in the local cache; an id the hub does not
            have.
    """
    text = str(name)
    if Path(text).expanduser().exists() or text in ("tiny", "smollm2"):
        return text
    if not HUB_ID.fullmatch(text) or text.startswith((".", "/")):
        raise ValueError(f"{option}{text}: no such file or folder")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - transformers depends on it
        raise ValueError(f"{option}{text}: no such file or folder") from None
    patterns = HUB_FILES + (["*.bin"] if allow_pickle else [])
    offline = _hub_offline()
    try:
        return snapshot_download(text, allow_patterns=patterns, local_files_only=offline)
    except Exception as e:  # noqa: BLE001 - the hub client raises many types
        kind = type(e).__name__
        if offline or any(w in kind for w in ("Offline", "LocalEntry", "Connect", "Timeout")):
            why = "HF_HUB_OFFLINE is set" if offline else "no connection"
            raise ValueError(
                f"{option}{text}: no such local path, and the hub is unreachable ({why}) to "
                f"fetch it as a hub id; download it first or pass a local folder"
            ) from None
        if "NotFound" in kind or "Unauthorized" in kind:
            raise ValueError(f"{option}{text}: no such local path or hub repository") from None
        raise ValueError(f"{option}{text}: cannot fetch from the hub ({kind})") from None


def _given_labels(pairs: list[tuple[str | None, Any]], label: Any, what: str) -> list:
    """The labels set by hand: ``label=`` (one per input, in order) over ``{label: item}``."""
    if label is None:
        return [lab for lab, _ in pairs]
    names = [label] if isinstance(label, str) else list(label)
    if len(names) != len(pairs):
        raise ValueError(
            f"label=: {len(names)} label(s) for {len(pairs)} input(s); give one per input, in "
            f"the order {what}"
        )
    return names


def _path_of(item: Any) -> str | None:
    from artent.models.in_memory import is_module

    return None if is_module(item) else str(item)


def internal_sources(
    *,
    adapter: Any = None,
    base: Any = None,
    tuned: Any = None,
    run: Any = None,
    model: Any = None,
    label: Any = None,
    allow_pickle: bool = False,
) -> list:
    """The sources of :func:`artent.internal`, labelled (see its arguments).

    Labels set by ``label`` go, in order, to ``tuned``, each adapter, each run, then ``model``.
    """
    from artent.analysis.internal import Source, sources_from_run
    from artent.analysis.labels import assign_labels
    from artent.analysis.runs import checkpoint_step
    from artent.models.in_memory import is_module

    in_memory = is_module(base) or is_module(tuned)
    if tuned is not None and base is None:
        raise ValueError("tuned= needs base= (the checkpoint it was tuned from)")
    if in_memory and not (is_module(base) and is_module(tuned)):
        raise ValueError("base= and tuned= are both models in memory or both paths, not one each")
    inputs: list[tuple[str, str | None, Any]] = []  # (kind, label given, item)
    inputs += [("tuned", lab, t) for lab, t in labelled(tuned)]
    inputs += [("adapter", lab, a) for lab, a in labelled(adapter)]
    inputs += [("run", lab, r) for lab, r in labelled(run)]
    inputs += [("model", lab, m) for lab, m in labelled(model)]
    if not inputs:
        raise ValueError(
            "nothing to analyse: pass base= and tuned=, adapter=, run=, or a model in memory "
            "as model"
        )
    given = _given_labels([(g, i) for _, g, i in inputs], label, "tuned=, adapter=, run=")
    paths = [_path_of(i) for _, _, i in inputs]
    for n, (kind, _, item) in enumerate(inputs):
        if kind in ("adapter", "run") and is_module(item):
            raise ValueError(f"{kind}=: give a path (a model in memory goes to model=)")
        if is_module(item) and given[n] is None:  # named by its own name, else "tuned"/"model"
            paths[n] = _memory_name(item)
            given[n] = None if paths[n] else kind
    labels = assign_labels(paths, given, what="label=")
    if not in_memory and base is not None:
        base = local_or_hub(base, "base=", allow_pickle=allow_pickle)
    sources: list = []
    for (kind, _, item), lab in zip(inputs, labels, strict=True):
        if kind == "tuned" and in_memory:
            sources.append(Source(lab, None, "live", None, None, _pair_reader(base, item)))
        elif kind == "tuned":
            tuned_path = local_or_hub(item, "tuned=", allow_pickle=allow_pickle)
            sources.append(Source(lab, checkpoint_step(tuned_path), "pair", tuned_path, base))
        elif kind == "adapter":
            path = local_or_hub(item, "adapter=", allow_pickle=allow_pickle)
            b = None if base is None or in_memory else str(base)
            sources.append(Source(lab, checkpoint_step(path), "adapter", path, b))
        elif kind == "run":
            b = None if base is None or in_memory else str(base)
            sources += sources_from_run(item, base=b, label=lab)
        else:
            if not is_module(item):
                raise ValueError("model=: give a model in memory (a peft model); paths go to run=")
            sources.append(Source(lab, None, "live", None, None, _peft_reader(item)))
    return sources


def _pair_reader(base, tuned):
    from artent.models.in_memory import deltas_from_models

    return lambda cfg: deltas_from_models(base, tuned, modules=cfg.modules, layers=cfg.layers)


def _peft_reader(model):
    from artent.models.in_memory import deltas_from_peft_model

    return lambda cfg: deltas_from_peft_model(model, modules=cfg.modules, layers=cfg.layers)


def _memory_name(model: Any) -> str | None:
    """The name a model in memory was loaded from (labels it by default), if it says."""
    name = getattr(getattr(model, "config", None), "name_or_path", None)
    return str(name) if name else None


def external_jobs(
    *, model: Any, adapter: Any, run: Any, tokenizer: Any, label: Any, allow_pickle: bool
) -> list[tuple[str, int | None, dict[str, Any], str | None]]:
    """The ``(label, step, spec, source)`` of every model :func:`artent.external` measures.

    ``model`` is one model (a name, a folder or a model in memory) or a list of them (several
    models side by side; one ``tokenizer`` serves every model in memory). ``spec`` is what
    :func:`artent.models.loading.load_for_forward` takes, or ``{"loaded": (model,
    tokenizer)}`` for a model in memory. Labels set by ``label`` go, in order, to the models
    (the first with its adapter), then each run.
    """
    from artent.analysis.labels import assign_labels
    from artent.analysis.runs import checkpoint_step, run_checkpoints
    from artent.models.in_memory import is_module

    models = [] if model is None else list(model) if isinstance(model, list | tuple) else [model]
    if adapter and not models:
        raise ValueError("adapter= needs model= (the model it adapts)")
    if adapter and len(models) > 1:
        raise ValueError("adapter=: give one model= with it (the model it adapts)")
    items: list[tuple[str, str | None, Any, str | None]] = []  # (kind, label, item, path)
    for one in models:
        if is_module(one):
            if tokenizer is None:
                raise ValueError("model=: a model in memory needs its tokenizer (tokenizer=)")
            if adapter is not None:
                raise ValueError(
                    "adapter=: put the adapter on the model in memory with peft, or pass the "
                    "model by path"
                )
            name = _memory_name(one)
            items.append(("memory", None if name else "model", one, name))
        else:
            ad = (
                None
                if not adapter
                else local_or_hub(adapter, "adapter=", allow_pickle=allow_pickle)
            )
            items.append(("model", None, (str(one), ad), ad or str(one)))
    items += [("run", lab, r, str(r)) for lab, r in labelled(run)]
    given = _given_labels([(g, i) for _, g, i, _ in items], label, "model=, run=...")
    labels = assign_labels([p for _, _, _, p in items], given, what="label=")
    jobs: list[tuple[str, int | None, dict[str, Any], str | None]] = []
    for (kind, _, item, path), lab in zip(items, labels, strict=True):
        if kind == "memory":
            jobs.append((lab, None, {"loaded": (item, tokenizer)}, None))
        elif kind == "model":
            name, ad = item
            step = None if ad is None else checkpoint_step(ad)
            name = local_or_hub(name, "model=", allow_pickle=allow_pickle)
            jobs.append((lab, step, dict(base=name, adapter=ad), path))
        else:
            for c in run_checkpoints(item):
                if c.base is None:
                    raise ValueError(
                        f"run={item}: the adapter config of {c.path} names no base model "
                        f"(base_model_name_or_path)"
                    )
                what = "full" if c.is_full else "adapter"
                b = local_or_hub(c.base, f"run={item}: base=", allow_pickle=allow_pickle)
                jobs.append((lab, c.step, dict(base=b, **{what: c.path}), c.path))
    if not jobs:
        raise ValueError("nothing to analyse: pass model= (and adapter=) or run=")
    return jobs
