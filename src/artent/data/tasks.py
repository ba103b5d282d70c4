"""The generated tasks: a small vocabulary, Tulu-style instructions and OpenThoughts-style problems.

Each task is a function of a ``random.Random`` alone, and its answer is computed from what it
drew, so every answer is correct by construction. :mod:`artent.data.generators` turns them into
records and documents; changing any task's output means bumping its ``GENERATOR_VERSION``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable

NOUNS = (
    "apple pear plum fig lemon melon grape cherry peach mango cat dog fox owl bear wolf horse "
    "mouse tiger lion river stone cloud tree house garden bridge tower window door chair table "
    "book lamp boat train road city forest island valley mountain lake field ship coin key bell "
    "drum map"
).split()
ADJECTIVES = (
    "red blue green small large quiet bright dark warm cold old young happy slow quick tall soft "
    "loud round gentle"
).split()
VERBS = "saw found liked painted carried followed watched visited cleaned counted".split()
NAMES = "Ann Ben Cara Dan Eva Finn Gus Hana Ivan Jade Kai Lena Mia Noah Omar Pia".split()
PLACES = "market park school harbour library museum station bakery farm beach".split()
SYSTEM_PROMPTS = (
    "You are a helpful assistant.",
    "You are a concise assistant. Answer with the result only.",
    "Follow the user's instructions exactly.",
    "You are a careful assistant who double-checks every answer.",
)


def sample_words(rng: random.Random, low: int, high: int) -> list[str]:
    return rng.sample(NOUNS, rng.randint(low, high))


def sample_numbers(rng: random.Random, low: int, high: int, top: int = 99) -> list[int]:
    return rng.sample(range(top + 1), rng.randint(low, high))


def join_items(items: Iterable[object]) -> str:
    return ", ".join(str(x) for x in items)


# --- Tulu-style instruction tasks: rng -> (prompt fields, answer) -----------------------------
# Each task's phrasings ("|"-separated) put the payload {x} last, after ": ", "? " or a newline.
TULU_PHRASINGS = {
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
    "name": NAMES,
    "color": ADJECTIVES[:3],
    "size": ("small", "medium", "large"),
    "city": PLACES,
    "pet": NOUNS[10:18],
    "fruit": NOUNS[:10],
}
Fields = dict[str, str]


def _reverse_words(rng: random.Random) -> tuple[Fields, str]:
    ws = sample_words(rng, 3, 7)
    return {"x": " ".join(ws)}, " ".join(reversed(ws))


def _sort_numbers(rng: random.Random) -> tuple[Fields, str]:
    xs, descending = sample_numbers(rng, 4, 7), rng.random() < 0.5
    orders = (
        ("in descending order", "from largest to smallest")
        if descending
        else ("in ascending order", "from smallest to largest")
    )
    return {"o": rng.choice(orders), "x": join_items(xs)}, join_items(
        sorted(xs, reverse=descending)
    )


def _uppercase(rng: random.Random) -> tuple[Fields, str]:
    text = " ".join(sample_words(rng, 2, 5))
    return {"x": text}, text.upper()


def _capitalise(rng: random.Random) -> tuple[Fields, str]:
    ws = sample_words(rng, 2, 5)
    return {"x": " ".join(ws)}, " ".join(w.capitalize() for w in ws)


def _count_items(rng: random.Random) -> tuple[Fields, str]:
    ws = [rng.choice(NOUNS) for _ in range(rng.randint(1, 9))]
    return {"x": join_items(ws)}, str(len(ws))


def _arithmetic(rng: random.Random) -> tuple[Fields, str]:
    op = rng.choice("+-*")
    if op == "*":
        a, b = rng.randint(2, 12), rng.randint(2, 30)
    else:
        a, b = sorted((rng.randint(0, 99), rng.randint(0, 99)), reverse=True)
    return {"x": f"{a} {op} {b}"}, str({"+": a + b, "-": a - b, "*": a * b}[op])


def _extreme(rng: random.Random) -> tuple[Fields, str]:
    xs, largest = sample_numbers(rng, 3, 7), rng.random() < 0.5
    word = "largest" if largest else "smallest"
    return {"w": word, "x": join_items(xs)}, str(max(xs) if largest else min(xs))


def _to_json(rng: random.Random) -> tuple[Fields, str]:
    keys = rng.sample(list(_JSON_FIELDS), rng.randint(1, 4))
    obj = {k: rng.choice(_JSON_FIELDS[k]) for k in keys}
    return {"x": "; ".join(f"{k}={v}" for k, v in obj.items())}, json.dumps(obj)


def _date_format(rng: random.Random) -> tuple[Fields, str]:
    y, m, d = rng.randint(1950, 2049), rng.randint(1, 12), rng.randint(1, 28)
    return {"x": f"{y:04d}-{m:02d}-{d:02d}"}, f"{d:02d}/{m:02d}/{y:04d}"


def _bullets(rng: random.Random) -> tuple[Fields, str]:
    ws = sample_words(rng, 2, 5)
    return {"x": join_items(ws)}, "\n".join(f"- {w}" for w in ws)


def _fill_template(rng: random.Random) -> tuple[Fields, str]:
    template = rng.choice(_TEMPLATES)
    values = {"name": rng.choice(NAMES), "place": rng.choice(PLACES), "item": rng.choice(NOUNS)}
    used = {k: v for k, v in values.items() if "{" + k + "}" in template}
    fields = ", ".join(f"{k}={v}" for k, v in used.items())
    return {"t": template, "x": fields}, template.format(**used)


def _acronym(rng: random.Random) -> tuple[Fields, str]:
    ws = sample_words(rng, 2, 5)
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
    name, item = rng.choice(NAMES), rng.choice(NOUNS[:10])
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
        f"A pen costs ${p1} and a notebook costs ${p2}. {rng.choice(NAMES)} buys {n1} pens "
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
    word = rng.choice(NOUNS)
    letter = rng.choice(word) if rng.random() < 0.85 else rng.choice("aeiourst")
    positions = [i + 1 for i, c in enumerate(word) if c == letter]
    problem = f"How many times does the letter '{letter}' appear in the word '{word}'?"
    steps = [
        f"Spell the word: {' '.join(word)}.",
        (
            f"The letter '{letter}' is at positions {join_items(positions)}."
            if positions
            else f"The letter '{letter}' does not occur."
        ),
        f"That is {len(positions)} occurrence{'s' if len(positions) != 1 else ''}.",
    ]
    return problem, steps, str(len(positions))


def _count_even(rng: random.Random) -> tuple[str, list[str], str]:
    xs = [rng.randint(0, 99) for _ in range(rng.randint(3, 8))]
    evens = [x for x in xs if x % 2 == 0]
    problem = f"How many even numbers are in the list {join_items(xs)}?"
    steps = [f"{x} is {'even' if x % 2 == 0 else 'odd'}." for x in xs]
    steps.append(f"The even numbers are {join_items(evens) or 'none'}, so there are {len(evens)}.")
    return problem, steps, str(len(evens))


def _tallest(rng: random.Random) -> tuple[str, list[str], str]:
    people = rng.sample(NAMES, 3)  # tallest first
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
    problem = f"What is the next number in the sequence {join_items(terms)}?"
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
    name, age = rng.choice(NAMES), rng.randint(3, 12)
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
