"""Write the quickstart dataset: short chat Q/A rows in the ``messages`` format.

    python examples/quickstart-data/generate.py

Deterministic (fixed seed, no dependencies), so the committed ``train.jsonl`` and
``validation.jsonl`` are exactly what this script writes. The questions follow a few
templates with varying facts: a tiny model learns the templates within a couple of
minutes on CPU, so the quickstart's eval loss drops clearly, and the facts keep it from
being trivially memorised.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).parent
SYSTEM = "You are a concise assistant. Answer in one sentence."

CAPITALS = {
    "France": "Paris",
    "Germany": "Berlin",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Portugal": "Lisbon",
    "Austria": "Vienna",
    "Poland": "Warsaw",
    "Greece": "Athens",
    "Norway": "Oslo",
    "Sweden": "Stockholm",
    "Finland": "Helsinki",
    "Denmark": "Copenhagen",
    "Ireland": "Dublin",
    "Egypt": "Cairo",
    "Kenya": "Nairobi",
    "Japan": "Tokyo",
    "China": "Beijing",
    "India": "New Delhi",
    "Peru": "Lima",
    "Chile": "Santiago",
    "Canada": "Ottawa",
    "Mexico": "Mexico City",
    "Cuba": "Havana",
    "Russia": "Moscow",
}
OPPOSITES = {
    "hot": "cold",
    "big": "small",
    "fast": "slow",
    "up": "down",
    "early": "late",
    "happy": "sad",
    "light": "dark",
    "open": "closed",
    "full": "empty",
    "old": "young",
    "hard": "soft",
    "high": "low",
    "wet": "dry",
    "strong": "weak",
    "near": "far",
}
COLOURS = {
    "the sky": "blue",
    "grass": "green",
    "snow": "white",
    "coal": "black",
    "a banana": "yellow",
    "a tomato": "red",
    "an orange": "orange",
    "a plum": "purple",
    "chocolate": "brown",
    "a flamingo": "pink",
    "the sun": "yellow",
    "a cloud": "white",
}
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
NUMBERS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
]


def addition(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(0, 20), rng.randint(0, 20)
    return f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}."


def capital(rng: random.Random) -> tuple[str, str]:
    country = rng.choice(sorted(CAPITALS))
    return f"What is the capital of {country}?", f"The capital of {country} is {CAPITALS[country]}."


def opposite(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(sorted(OPPOSITES))
    return f"What is the opposite of {word}?", f"The opposite of {word} is {OPPOSITES[word]}."


def colour(rng: random.Random) -> tuple[str, str]:
    thing = rng.choice(sorted(COLOURS))
    return f"What colour is {thing}?", f"{thing[0].upper()}{thing[1:]} is {COLOURS[thing]}."


def next_day(rng: random.Random) -> tuple[str, str]:
    index = rng.randrange(len(DAYS))
    day, after = DAYS[index], DAYS[(index + 1) % len(DAYS)]
    return f"What day comes after {day}?", f"The day after {day} is {after}."


def spell_number(rng: random.Random) -> tuple[str, str]:
    n = rng.randrange(len(NUMBERS))
    return f"How do you write {n} in words?", f"{n} is written {NUMBERS[n]}."


TEMPLATES: list[Callable[[random.Random], tuple[str, str]]] = [
    addition,
    capital,
    opposite,
    colour,
    next_day,
    spell_number,
]


def rows(count: int, rng: random.Random) -> list[dict[str, object]]:
    out = []
    for index in range(count):
        question, answer = TEMPLATES[index % len(TEMPLATES)](rng)
        out.append(
            {
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
    rng.shuffle(out)
    return out


def write(path: Path, data: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in data), encoding="utf-8")


def main() -> None:
    write(HERE / "train.jsonl", rows(480, random.Random(1)))
    write(HERE / "validation.jsonl", rows(48, random.Random(2)))


if __name__ == "__main__":
    main()
