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
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from artent.data.template import render_messages

# Bump when any generator's output changes: the tiny model's cache key includes it.
GENERATOR_VERSION = 1

_NOUNS = (
    "apple pear plum fig lemon melon grape cherry peach mango cat dog fox owl bear wolf horse "
    "mouse tiger lion river stone cloud tree house garden bridge tower window door chair table "
    "book lamp boat train road city forest island valley mountain lake field ship coin key bell "
    "drum map"
).split()
_ADJECTIVES = (
    "red blue green small large quiet bright dark warm cold old young happy slow quick tall soft "
    "loud round gentle"
).split()
_VERBS = "saw found liked painted carried followed watched visited cleaned counted".split()
_NAMES = "Ann Ben Cara Dan Eva Finn Gus Hana Ivan Jade Kai Lena Mia Noah Omar Pia".split()
_PLACES = "market park school harbour library museum station bakery farm beach".split()
_SYSTEM_PROMPTS = (
    "You are a helpful assistant.",
    "You are a concise assistant. Answer with the result only.",
    "Follow the user's instructions exactly.",
    "You are a careful assistant who double-checks every answer.",
)


def _rng(source: str, stream: str, seed: int, index: int) -> random.Random:
    return random.Random(f"{source}:{stream}:{seed}:{index}")


def _words(rng: random.Random, low: int, high: int) -> list[str]:
    return rng.sample(_NOUNS, rng.randint(low, high))


def _numbers(rng: random.Random, low: int, high: int, top: int = 99) -> list[int]:
    return rng.sample(range(top + 1), rng.randint(low, high))


def _join(items: Iterable[object]) -> str:
    return ", ".join(str(x) for x in items)


# --- Tulu-style instruction tasks: rng -> (prompt fields, answer) -----------------------------
# Each task's phrasings ("|"-separated) put the payload {x} last, after ": ", "? " or a newline.
_TULU_PHRASINGS = {
    "reverse_words": "Reverse the order of these words: {x}|Write the following words in reverse "
    "order: {x}|Give me these words backwards, last word first.\n{x}",
    "sort_numbers": "Sort these numbers {o}: {x}|Arrange the numbers from the list {o}.\n{x}",
    "uppercase": "Convert this text to upper case: {x}|Write this in capital letters.\n{x}",
    "capitalise": "Capitalize the first letter of each word: {x}|Write this in title case.\n{x}",
    "count_items": "How many items are in this list? {x}|Count the items in this list.\n{x}",
    "arithmetic": "What is {x}?|Compute {x}.|Calculate the value of {x}.",
    "extreme": "Which is the {w} number in this list? {x}|Find the {w} of these numbers.\n{x}",
    "to_json": "Convert these key=value pairs to a JSON object: {x}|Rewrite as JSON.\n{x}",
    "date_format": "Rewrite the date {x} in DD/MM/YYYY format.|Convert {x} from ISO format to "
    "DD/MM/YYYY.",
    "bullets": "Turn this comma-separated list into a bulleted list: {x}|Make a bullet list.\n{x}",
    "fill_template": "Fill in the template '{t}' using {x}.|Complete '{t}' with {x}.",
    "acronym": "Write the initials of these words in capitals: {x}|Make an acronym from: {x}",
}
_TEMPLATES = (
    "Hello {name}, welcome to the {place}!",
    "Dear {name}, your {item} is ready at the {place}.",
    "{name} bought a {item} at the {place}.",
)
_JSON_FIELDS = {
    "name": _NAMES,
    "color": _ADJECTIVES[:3],
    "size": ("small", "medium", "large"),
    "city": _PLACES,
    "pet": _NOUNS[10:18],
    "fruit": _NOUNS[:10],
}
Fields = dict[str, str]


def _reverse_words(rng: random.Random) -> tuple[Fields, str]:
    ws = _words(rng, 3, 7)
    return {"x": " ".join(ws)}, " ".join(reversed(ws))


def _sort_numbers(rng: random.Random) -> tuple[Fields, str]:
    xs, descending = _numbers(rng, 4, 7), rng.random() < 0.5
    orders = (
        ("in descending order", "from largest to smallest")
        if descending
        else ("in ascending order", "from smallest to largest")
    )
    return {"o": rng.choice(orders), "x": _join(xs)}, _join(sorted(xs, reverse=descending))


def _uppercase(rng: random.Random) -> tuple[Fields, str]:
    text = " ".join(_words(rng, 2, 5))
    return {"x": text}, text.upper()


def _capitalise(rng: random.Random) -> tuple[Fields, str]:
    ws = _words(rng, 2, 5)
    return {"x": " ".join(ws)}, " ".join(w.capitalize() for w in ws)


def _count_items(rng: random.Random) -> tuple[Fields, str]:
    ws = [rng.choice(_NOUNS) for _ in range(rng.randint(1, 9))]
    return {"x": _join(ws)}, str(len(ws))


def _arithmetic(rng: random.Random) -> tuple[Fields, str]:
    op = rng.choice("+-*")
    if op == "*":
        a, b = rng.randint(2, 12), rng.randint(2, 30)
    else:
        a, b = sorted((rng.randint(0, 99), rng.randint(0, 99)), reverse=True)
    return {"x": f"{a} {op} {b}"}, str({"+": a + b, "-": a - b, "*": a * b}[op])


def _extreme(rng: random.Random) -> tuple[Fields, str]:
    xs, largest = _numbers(rng, 3, 7), rng.random() < 0.5
    word = "largest" if largest else "smallest"
    return {"w": word, "x": _join(xs)}, str(max(xs) if largest else min(xs))


def _to_json(rng: random.Random) -> tuple[Fields, str]:
    keys = rng.sample(list(_JSON_FIELDS), rng.randint(1, 4))
    obj = {k: rng.choice(_JSON_FIELDS[k]) for k in keys}
    return {"x": "; ".join(f"{k}={v}" for k, v in obj.items())}, json.dumps(obj)


def _date_format(rng: random.Random) -> tuple[Fields, str]:
    y, m, d = rng.randint(1950, 2049), rng.randint(1, 12), rng.randint(1, 28)
    return {"x": f"{y:04d}-{m:02d}-{d:02d}"}, f"{d:02d}/{m:02d}/{y:04d}"


def _bullets(rng: random.Random) -> tuple[Fields, str]:
    ws = _words(rng, 2, 5)
    return {"x": _join(ws)}, "\n".join(f"- {w}" for w in ws)


def _fill_template(rng: random.Random) -> tuple[Fields, str]:
    template = rng.choice(_TEMPLATES)
    values = {"name": rng.choice(_NAMES), "place": rng.choice(_PLACES), "item": rng.choice(_NOUNS)}
    used = {k: v for k, v in values.items() if "{" + k + "}" in template}
    fields = ", ".join(f"{k}={v}" for k, v in used.items())
    return {"t": template, "x": fields}, template.format(**used)


def _acronym(rng: random.Random) -> tuple[Fields, str]:
    ws = _words(rng, 2, 5)
    return {"x": " ".join(ws)}, "".join(w[0].upper() for w in ws)


TULU_TASKS: dict[str, Callable[[random.Random], tuple[Fields, str]]] = {
    "reverse_words": _reverse_words,
    "sort_numbers": _sort_numbers,
    "uppercase": _uppercase,
    "capitalise": _capitalise,
    "count_items": _count_items,
    "arithmetic": _arithmetic,
    "extreme": _extreme,
    "to_json": _to_json,
    "date_format": _date_format,
    "bullets": _bullets,
    "fill_template": _fill_template,
    "acronym": _acronym,
}


# --- OpenThoughts-style word problems: rng -> (problem, reasoning lines, answer) -----------------


def _shopping(rng: random.Random) -> tuple[str, list[str], str]:
    name, item = rng.choice(_NAMES), rng.choice(_NOUNS[:10])
    start, bags, per_bag = rng.randint(0, 30), rng.randint(2, 6), rng.randint(2, 9)
    bought = bags * per_bag
    given = rng.randint(0, start + bought)
    left = start + bought - given
    problem = (
        f"{name} has {start} {item}s. {name} buys {bags} bags with {per_bag} {item}s in each "
        f"bag and then gives away {given} {item}s. How many {item}s does {name} have now?"
    )
    steps = [
        f"{name} starts with {start} {item}s.",
        f"The bags hold {bags} * {per_bag} = {bought} {item}s.",
        f"After buying, {name} has {start} + {bought} = {start + bought} {item}s.",
        f"After giving away {given}, {name} has {start + bought} - {given} = {left} {item}s.",
    ]
    return problem, steps, str(left)


def _change(rng: random.Random) -> tuple[str, list[str], str]:
    p1, p2 = rng.randint(1, 9), rng.randint(1, 9)
    n1, n2 = rng.randint(1, 6), rng.randint(1, 6)
    cost = p1 * n1 + p2 * n2
    paid = rng.choice([x for x in (10, 20, 50, 100) if x >= cost])
    problem = (
        f"A pen costs ${p1} and a notebook costs ${p2}. {rng.choice(_NAMES)} buys {n1} pens "
        f"and {n2} notebooks and pays with ${paid}. How much change is given, in dollars?"
    )
    steps = [
        f"The pens cost {n1} * {p1} = {p1 * n1} dollars.",
        f"The notebooks cost {n2} * {p2} = {p2 * n2} dollars.",
        f"The total is {p1 * n1} + {p2 * n2} = {cost} dollars.",
        f"The change is {paid} - {cost} = {paid - cost} dollars.",
    ]
    return problem, steps, str(paid - cost)


def _count_letter(rng: random.Random) -> tuple[str, list[str], str]:
    word = rng.choice(_NOUNS)
    letter = rng.choice(word) if rng.random() < 0.85 else rng.choice("aeiourst")
    positions = [i + 1 for i, c in enumerate(word) if c == letter]
    problem = f"How many times does the letter '{letter}' appear in the word '{word}'?"
    steps = [
        f"Spell the word: {' '.join(word)}.",
        (
            f"The letter '{letter}' is at positions {_join(positions)}."
            if positions
            else f"The letter '{letter}' does not occur."
        ),
        f"That is {len(positions)} occurrence{'s' if len(positions) != 1 else ''}.",
    ]
    return problem, steps, str(len(positions))


def _count_even(rng: random.Random) -> tuple[str, list[str], str]:
    xs = [rng.randint(0, 99) for _ in range(rng.randint(3, 8))]
    evens = [x for x in xs if x % 2 == 0]
    problem = f"How many even numbers are in the list {_join(xs)}?"
    steps = [f"{x} is {'even' if x % 2 == 0 else 'odd'}." for x in xs]
    steps.append(f"The even numbers are {_join(evens) or 'none'}, so there are {len(evens)}.")
    return problem, steps, str(len(evens))


def _tallest(rng: random.Random) -> tuple[str, list[str], str]:
    people = rng.sample(_NAMES, 3)  # tallest first
    facts = [f"{people[0]} is taller than {people[1]}.", f"{people[1]} is taller than {people[2]}."]
    rng.shuffle(facts)
    want_tallest = rng.random() < 0.5
    answer = people[0] if want_tallest else people[2]
    problem = f"{' '.join(facts)} Who is the {'tallest' if want_tallest else 'shortest'}?"
    steps = [
        *(f"We know: {f}" for f in facts),
        f"So the order from tallest to shortest is {', '.join(people)}.",
        f"The {'tallest' if want_tallest else 'shortest'} is {answer}.",
    ]
    return problem, steps, answer


def _fractions(rng: random.Random) -> tuple[str, list[str], str]:
    while True:
        a, b, c, d = rng.randint(1, 9), rng.randint(2, 9), rng.randint(1, 9), rng.randint(2, 9)
        if a < b and c < d and a * d != c * b:
            break
    answer = f"{a}/{b}" if a * d > c * b else f"{c}/{d}"
    problem = f"Which is larger, {a}/{b} or {c}/{d}?"
    steps = [
        f"Compare by cross-multiplying: {a} * {d} = {a * d} and {c} * {b} = {c * b}.",
        f"Since {max(a * d, c * b)} > {min(a * d, c * b)}, {answer} is larger.",
    ]
    return problem, steps, answer


def _sequence(rng: random.Random) -> tuple[str, list[str], str]:
    start, diff = rng.randint(0, 30), rng.randint(1, 9) * rng.choice((1, 1, -1))
    terms = [start + k * diff for k in range(4)]
    problem = f"What is the next number in the sequence {_join(terms)}?"
    steps = [
        f"The differences between consecutive terms are all {diff}.",
        f"So the next term is {terms[-1]} + {diff} = {terms[-1] + diff}."
        if diff > 0
        else f"So the next term is {terms[-1]} - {-diff} = {terms[-1] + diff}.",
    ]
    return problem, steps, str(terms[-1] + diff)


def _clock(rng: random.Random) -> tuple[str, list[str], str]:
    h, m = rng.randint(5, 12), rng.choice(range(0, 60, 5))
    dh, dm = rng.randint(0, 4), rng.choice(range(5, 60, 5))
    total = (h + dh) * 60 + m + dm
    arrival = f"{total // 60 % 24}:{total % 60:02d}"
    problem = (
        f"A train leaves at {h}:{m:02d} and travels for {dh} hours and {dm} minutes. "
        "At what time does it arrive (24-hour clock)?"
    )
    steps = [
        f"Adding {dh} hours gives {h + dh}:{m:02d}.",
        f"Adding {dm} minutes gives {m} + {dm} = {m + dm} minutes past {h + dh}.",
        f"{m + dm} minutes is {(m + dm) // 60} hour(s) and {(m + dm) % 60} minutes, "
        f"so the train arrives at {arrival}.",
    ]
    return problem, steps, arrival


def _ages(rng: random.Random) -> tuple[str, list[str], str]:
    name, age = rng.choice(_NAMES), rng.randint(3, 12)
    older, factor = rng.randint(1, 6), rng.randint(2, 4)
    problem = (
        f"{name} is {age} years old. {name}'s brother is {older} years older, and their "
        f"mother is {factor} times as old as the brother. How old is the mother?"
    )
    steps = [
        f"The brother is {age} + {older} = {age + older} years old.",
        f"The mother is {factor} * {age + older} = {factor * (age + older)} years old.",
    ]
    return problem, steps, str(factor * (age + older))


OPENTHOUGHTS_TASKS: dict[str, Callable[[random.Random], tuple[str, list[str], str]]] = {
    "shopping": _shopping,
    "change": _change,
    "count_letter": _count_letter,
    "count_even": _count_even,
    "tallest": _tallest,
    "fractions": _fractions,
    "sequence": _sequence,
    "clock": _clock,
    "ages": _ages,
}

# Tasks kept out of the pretraining chats, so that fine-tuning has something new to teach.
PRETRAIN_HELDOUT_TASKS = frozenset({"to_json", "fill_template", "acronym", "fractions", "clock"})


def _tulu_record(seed: int, index: int, stream: str, tasks: list[str]) -> dict:
    rng = _rng("tulu", stream, seed, index)
    messages = []
    if rng.random() < 0.3:
        messages.append({"role": "system", "content": rng.choice(_SYSTEM_PROMPTS)})
    names = [rng.choice(tasks)]
    if rng.random() < 0.15:  # an occasional second exchange, as in Tulu's multi-turn records
        names.append(rng.choice(tasks))
    for name in names:
        fields, answer = TULU_TASKS[name](rng)
        prompt = rng.choice(_TULU_PHRASINGS[name].split("|")).format(**fields)
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
        name, noun, adj = rng.choice(_NAMES), rng.choice(_NOUNS), rng.choice(_ADJECTIVES)
        k = rng.randint(2, 9)
        return rng.choice(
            (
                f"The {adj} {noun} {rng.choice(_VERBS)} the {rng.choice(_NOUNS)}.",
                f"{name} {rng.choice(_VERBS)} a {adj} {noun} near the {rng.choice(_PLACES)}.",
                f"It was a {adj} day at the {rng.choice(_PLACES)}.",
                f"{name} went to the {rng.choice(_PLACES)} and bought {k} {noun}s.",
                f"{name} and {rng.choice(_NAMES)} like the {adj} {noun}.",
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
        return f"Shopping list: {_join(_words(rng, 2, 6))}."
    if kind == 1:
        start = rng.randint(0, 90)
        return f"Counting: {_join(range(start, start + rng.randint(3, 10)))}."
    if kind == 2:
        xs = _numbers(rng, 3, 7)
        return f"The numbers {_join(xs)} in order are {_join(sorted(xs))}."
    return "Steps:\n" + "\n".join(
        f"{i + 1}. Find the {w}." for i, w in enumerate(_words(rng, 2, 5))
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
