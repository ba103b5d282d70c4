"""The label of every input of an analysis: unique, short, and the user's own where given.

Each input (a run folder, an adapter, a tuned checkpoint, a model in memory) gets one label, the
name its rows carry in every table. By default it is the input's folder name, lengthened only as
far as needed to tell it from the other inputs: the nearest ancestor folder that differs between
the inputs of the same name is put in front, so ``runs/tulu-lora-r8/checkpoints/step-000006`` and
``runs/tulu-lora-r2/checkpoints/step-000006`` are ``tulu-lora-r8/step-000006`` and
``tulu-lora-r2/step-000006`` (the ``checkpoints`` they share says nothing). A label given by hand
(``label=``, the API's ``{label: path}``) is kept as it is. Two inputs left with the same label
are an error: rows of different inputs are never merged under one name.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["assign_labels", "path_labels"]


def _parts(path: str) -> tuple[str, ...]:
    """The folder names of a path from its own name upwards (a hub id or a name as written)."""
    p = Path(path)
    p = p.absolute() if p.exists() else p
    return tuple(x for x in reversed(p.parts) if x.strip("/")) or (str(path),)


def path_labels(paths: Sequence[str]) -> list[str]:
    """The shortest distinguishing path suffix of each path (see the module's docstring).

    Args:
        paths: the inputs' paths (or names: a hub id, ``tiny``).

    Returns:
        One label per path; paths that are the same folder keep the same label.
    """
    parts = [_parts(str(p)) for p in paths]
    labels = [[ps[0]] for ps in parts]
    depth = [1] * len(parts)  # how far up each path has been read
    while True:
        groups: dict[str, list[int]] = {}
        for i, lab in enumerate(labels):
            groups.setdefault("/".join(reversed(lab)), []).append(i)
        clashes = [g for g in groups.values() if len({parts[i] for i in g}) > 1]
        if not clashes:
            return ["/".join(reversed(lab)) for lab in labels]
        moved = False
        for group in clashes:
            # the next ancestor at which the group's paths are not all the same folder name
            while True:
                here = [parts[i][depth[i]] if depth[i] < len(parts[i]) else None for i in group]
                if all(h is None for h in here):
                    break
                for i in group:
                    depth[i] += 1
                if len(set(here)) > 1:
                    for i, h in zip(group, here, strict=True):
                        if h is not None:
                            labels[i].append(h)
                    moved = True
                    break
        if not moved:  # nothing left to tell them apart (cannot happen for distinct paths)
            return ["/".join(reversed(lab)) for lab in labels]


def assign_labels(
    paths: Sequence[str | None], given: Sequence[str | None] | None = None, *, what: str = "input"
) -> list[str]:
    """One unique label per input: the given one, or the shortest distinguishing path suffix.

    Args:
        paths: each input's path (``None`` for a model in memory, which then needs a label).
        given: labels set by hand, one per input (``None`` where not given).
        what: how errors name the inputs (``"label="``).

    Raises:
        ValueError: a given label that is empty, a label count that does not match the inputs,
            or two inputs with the same label (naming both).
    """
    given = list(given) if given is not None else [None] * len(paths)
    if len(given) != len(paths):
        raise ValueError(
            f"{what}: {len(given)} label(s) for {len(paths)} input(s); give one per input"
        )
    for g in given:
        if g is not None and (not isinstance(g, str) or not g.strip()):
            raise ValueError(f"{what}: a label must be a non-empty string, got {g!r}")
    free = [i for i, g in enumerate(given) if g is None]
    auto = path_labels([str(paths[i]) for i in free]) if free else []
    labels = [str(g).strip() if g is not None else "" for g in given]
    for i, lab in zip(free, auto, strict=True):
        labels[i] = lab
    seen: dict[str, int] = {}
    for i, lab in enumerate(labels):
        if lab in seen:
            j = seen[lab]
            raise ValueError(
                f"two inputs have the label {lab!r} ({_name(paths[j])} and {_name(paths[i])}); "
                f"name them apart with label= (the API: {{label: path}})"
            )
        seen[lab] = i
    return labels


def _name(path: str | None) -> str:
    return "a model in memory" if path is None else str(path)
