"""Offline, seeded data generators: Tulu 3 and OpenThoughts3 style records and a pretraining corpus.

Every answer is a deterministic function of its prompt (correct by construction), so a small
model can learn the tasks and a test can re-derive them. Record ``i`` of a given ``seed`` is
drawn from its own random stream (``random.Random`` seeded by a string, which Python hashes with
SHA-512, so nothing depends on ``PYTHONHASHSEED``); hence ``synthetic_tulu(10)`` is a prefix of
``synthetic_tulu(20)``. Record ids name the task(s): ``synthetic-tulu/<task>[+<task>]/<seed>-<i>``.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

from artent.data.tasks import (
    ADJECTIVES,
    NAMES,
    NOUNS,
    OPENTHOUGHTS_TASKS,
    PLACES,
    SYSTEM_PROMPTS,
    TULU_PHRASINGS,
    TULU_TASKS,
    VERBS,
    join_items,
    sample_numbers,
    sample_words,
)
from artent.data.template import render_messages

# Bump when any generator's output changes: the tiny model's cache key includes it.
GENERATOR_VERSION = 1

__all__ = [
    "GENERATOR_VERSION",
    "OPENTHOUGHTS_TASKS",
    "PRETRAIN_HELDOUT_TASKS",
    "TULU_TASKS",
    "pretraining_corpus",
    "synthetic_openthoughts",
    "synthetic_tulu",
    "write_dataset",
]


def _rng(source: str, stream: str, seed: int, index: int) -> random.Random:
    return random.Random(f"{source}:{stream}:{seed}:{index}")


# Tasks kept out of the pretraining chats, so that fine-tuning has something new to teach.
PRETRAIN_HELDOUT_TASKS = frozenset({"to_json", "fill_template", "acronym", "fractions", "clock"})


def _tulu_record(seed: int, index: int, stream: str, tasks: list[str]) -> dict:
    rng = _rng("tulu", stream, seed, index)
    messages = []
    if rng.random() < 0.3:
        messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
    names = [rng.choice(tasks)]
    if rng.random() < 0.15:  # an occasional second exchange, as in Tulu's multi-turn records
        names.append(rng.choice(tasks))
    for name in names:
        fields, answer = TULU_TASKS[name](rng)
        prompt = rng.choice(TULU_PHRASINGS[name].split("|")).format(**fields)
        messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    return {
        "id": f"synthetic-tulu/{'+'.join(names)}/{seed}-{index}",
        "source": "synthetic-tulu",
        "messages": messages,
    }


def _openthoughts_record(seed: int, index: int, stream: str, tasks: list[str]) -> dict:
    rng = _rng("openthoughts", stream, seed, index)
    name = rng.choice(tasks)
    problem, steps, answer = OPENTHOUGHTS_TASKS[name](rng)
    problem += rng.choice(("", " Think step by step.", " Explain your reasoning."))
    reply = "\n".join(
        [rng.choice(("Let's work it out.", "Step by step:")), *steps, f"Final answer: {answer}"]
    )
    return {
        "id": f"synthetic-openthoughts/{name}/{seed}-{index}",
        "source": "synthetic-openthoughts",
        "conversations": [{"from": "human", "value": problem}, {"from": "gpt", "value": reply}],
    }


def _check_count(n: int) -> None:
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"number of records n must be a non-negative integer, got {n!r}")


def synthetic_tulu(n: int, *, seed: int = 0) -> list[dict]:
    """Tulu 3 SFT-format instruction records with deterministic, learnable answers.

    Args:
        n: number of records.
        seed: random seed; record ``i`` depends only on ``(seed, i)``.

    Returns:
        ``[{"id", "source": "synthetic-tulu", "messages": [{"role", "content"}, ...]}, ...]``; about
        30% carry a system message and 15% a second user/assistant exchange.
    """
    _check_count(n)
    tasks = list(TULU_TASKS)
    return [_tulu_record(seed, i, "sft", tasks) for i in range(n)]


def synthetic_openthoughts(n: int, *, seed: int = 0) -> list[dict]:
    """OpenThoughts3-format word problems with a step-by-step trace ending ``Final answer: X``.

    Args:
        n: number of records.
        seed: random seed; record ``i`` depends only on ``(seed, i)``.

    Returns:
        ``[{"id", "source": "synthetic-openthoughts", "conversations": [{"from": "human", "value"},
        {"from": "gpt", "value"}]}, ...]``.
    """
    _check_count(n)
    tasks = list(OPENTHOUGHTS_TASKS)
    return [_openthoughts_record(seed, i, "sft", tasks) for i in range(n)]


def _prose(rng: random.Random) -> str:
    def sentence() -> str:
        name, noun, adj = rng.choice(NAMES), rng.choice(NOUNS), rng.choice(ADJECTIVES)
        k = rng.randint(2, 9)
        return rng.choice(
            (
                f"The {adj} {noun} {rng.choice(VERBS)} the {rng.choice(NOUNS)}.",
                f"{name} {rng.choice(VERBS)} a {adj} {noun} near the {rng.choice(PLACES)}.",
                f"It was a {adj} day at the {rng.choice(PLACES)}.",
                f"{name} went to the {rng.choice(PLACES)} and bought {k} {noun}s.",
                f"{name} and {rng.choice(NAMES)} like the {adj} {noun}.",
            )
        )

    return " ".join(sentence() for _ in range(rng.randint(2, 6)))


def _number_facts(rng: random.Random) -> str:
    def fact() -> str:
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        return rng.choice(
            (
                f"{a} plus {b} equals {a + b}.",
                f"{max(a, b)} minus {min(a, b)} equals {max(a, b) - min(a, b)}.",
                f"{a % 13} times {b % 13} is {(a % 13) * (b % 13)}.",
                f"{a} is an {'even' if a % 2 == 0 else 'odd'} number.",
                f"{max(a, b)} is not less than {min(a, b)}.",
                f"The number after {a} is {a + 1}.",
            )
        )

    return " ".join(fact() for _ in range(rng.randint(2, 6)))


def _list_text(rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        return f"Shopping list: {join_items(sample_words(rng, 2, 6))}."
    if kind == 1:
        start = rng.randint(0, 90)
        return f"Counting: {join_items(range(start, start + rng.randint(3, 10)))}."
    if kind == 2:
        xs = sample_numbers(rng, 3, 7)
        return f"The numbers {join_items(xs)} in order are {join_items(sorted(xs))}."
    return "Steps:\n" + "\n".join(
        f"{i + 1}. Find the {w}." for i, w in enumerate(sample_words(rng, 2, 5))
    )


def pretraining_corpus(n: int, *, seed: int = 0) -> list[str]:
    """Generic text for pretraining the tiny base model.

    A mix of simple English-like prose (35%), number facts (15%), lists (10%) and chats rendered
    with :func:`artent.data.template.render_messages` (40%: Tulu-style and OpenThoughts-style, from
    a random stream separate from the SFT generators' and without
    :data:`PRETRAIN_HELDOUT_TASKS`), so the base model knows the chat template but still has tasks
    left to learn by fine-tuning.

    Args:
        n: number of documents.
        seed: random seed; document ``i`` depends only on ``(seed, i)``.

    Returns:
        Documents as plain strings; chats start with the template's BOS token, the others do not.
    """
    _check_count(n)
    tulu_tasks = [t for t in TULU_TASKS if t not in PRETRAIN_HELDOUT_TASKS]
    ot_tasks = [t for t in OPENTHOUGHTS_TASKS if t not in PRETRAIN_HELDOUT_TASKS]
    docs = []
    for i in range(n):
        u = _rng("corpus", "kind", seed, i).random()
        if u < 0.35:
            docs.append(_prose(_rng("corpus", "prose", seed, i)))
        elif u < 0.50:
            docs.append(_number_facts(_rng("corpus", "facts", seed, i)))
        elif u < 0.60:
            docs.append(_list_text(_rng("corpus", "lists", seed, i)))
        elif u < 0.85:
            docs.append(render_messages(_tulu_record(seed, i, "pretrain", tulu_tasks)["messages"]))
        else:
            conv = _openthoughts_record(seed, i, "pretrain", ot_tasks)["conversations"]
            role = {"human": "user", "gpt": "assistant"}
            docs.append(
                render_messages([{"role": role[t["from"]], "content": t["value"]} for t in conv])
            )
    return docs


def write_dataset(records: Iterable[Mapping | str], path: str | os.PathLike) -> Path:
    """Write records to ``.jsonl`` or ``.parquet`` (by extension), atomically.

    The file is written under a temporary name in the same folder and renamed into place, so an
    interrupted write never leaves a partial file at ``path``.

    Args:
        records: dicts (one row each); plain strings are written as ``{"text": s}``.
        path: destination ending in ``.jsonl`` or ``.parquet``; parent folders are created.

    Returns:
        The destination path.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".parquet"):
        raise ValueError(f"dataset path {str(path)!r} must end in .jsonl or .parquet")
    rows = [{"text": r} if isinstance(r, str) else dict(r) for r in records]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        if suffix == ".jsonl":
            with open(tmp, "w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(rows), tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
