"""Regenerate the fixture corpus shipped in this folder.

The fixture models (``shared.models``) are trained on three small text files:

- ``sentences.txt``: plain English sentences, one per line, plus a few lines with accents,
  CJK and emoji so that byte-level tokenization is exercised;
- ``records.jsonl``: JSON records, one per line, of a few simple shapes;
- ``dialogues.jsonl``: short chats, one per line, as ``{"messages": [{"role", "content"}, ...]}``.

The files are committed; this script only documents how they were made and rebuilds them
byte for byte (it is seeded). Run ``python -m shared.corpus.generate``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).parent
SEED = 20261122

NAMES = ["Ana", "Bruno", "Chen", "Dara", "Elif", "Farid", "Greta", "Hiro", "Ines", "Jonas",
         "Kofi", "Lena", "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara"]
CITIES = ["Lima", "Paris", "Tokyo", "Oslo", "Cairo", "Lagos", "Quito", "Seoul", "Rome", "Delhi",
          "Madrid", "Berlin", "Nairobi", "Sydney", "Toronto", "Dublin"]
JOBS = ["teacher", "baker", "nurse", "pilot", "farmer", "painter", "engineer", "doctor",
        "writer", "chef", "driver", "singer"]
ANIMALS = ["cat", "dog", "fox", "owl", "horse", "rabbit", "bird", "fish"]
PLACES = ["garden", "kitchen", "park", "river", "market", "library", "station", "forest"]
COLORS = ["red", "blue", "green", "yellow", "white", "black", "orange", "purple"]
PRODUCTS = ["lamp", "chair", "table", "book", "phone", "kettle", "bike", "clock", "pen", "cup"]
TAGS = ["home", "office", "garden", "kitchen", "sport", "travel", "music", "light"]
FRUITS = ["apples", "pears", "plums", "grapes", "lemons", "cherries"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

SENTENCE_TEMPLATES = [
    "{name} lives in {city} and works as a {job}.",
    "The {color} {animal} sleeps in the {place}.",
    "Every {day}, {name} buys {fruit} at the market.",
    "{name} and {name2} walked to the {place} together.",
    "The {animal} is small, but it is very fast.",
    "In {city}, the weather is warm in the summer.",
    "{name} has a {color} {product} on the desk.",
    "The {job} from {city} said hello to {name}.",
    "Once upon a time, a {animal} lived near a {place}.",
    "{name} reads a book in the {place} every evening.",
    "It is a sunny day in {city}, and the {animal} is happy.",
    "The {product} costs {price} dollars in {city}.",
]

# Written by hand: general sentences and a few about the course's own subject.
FIXED_SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A language model predicts the next token from the tokens before it.",
    "The cache keeps the keys and values of earlier tokens.",
    "Greedy decoding always picks the most likely token.",
    "Sampling with a temperature makes the text more varied.",
    "A batch of requests shares the same forward pass.",
    "The server streams tokens as soon as they are ready.",
    "Small models run well on a laptop.",
    "Hello, world! How are you today?",
    "One, two, three, four, five, six, seven, eight, nine, ten.",
    "The sun rises in the east and sets in the west.",
    "Water boils at one hundred degrees.",
    "Café crème à Paris, s'il vous plaît.",
    "Mañana vamos a la playa con los niños.",
    "Grüße aus München und Zürich.",
    "東京は大きい都市です。",
    "我喜欢喝茶。",
    "I love pizza 🍕 and ice cream 🍦!",
    "Tabs\tand  double  spaces\tare text too.",
]

QA = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("What is the capital of Japan?", "The capital of Japan is Tokyo."),
    ("What is the capital of Peru?", "The capital of Peru is Lima."),
    ("What is the capital of Norway?", "The capital of Norway is Oslo."),
    ("What color is the sky?", "The sky is blue."),
    ("What color is grass?", "Grass is green."),
    ("How many legs does a dog have?", "A dog has four legs."),
    ("How many days are in a week?", "There are seven days in a week."),
    ("What does a baker make?", "A baker makes bread."),
    ("What does a cache store?", "A cache stores keys and values."),
    ("Say hello.", "Hello! How can I help you?"),
    ("What is two plus two?", "Two plus two is four."),
]

SYSTEM_PROMPTS = ["You are a helpful assistant.", "You answer in one short sentence."]


def _sentence(rng: random.Random) -> str:
    template = rng.choice(SENTENCE_TEMPLATES)
    name, name2 = rng.sample(NAMES, 2)
    return template.format(
        name=name, name2=name2, city=rng.choice(CITIES), job=rng.choice(JOBS),
        color=rng.choice(COLORS), animal=rng.choice(ANIMALS), place=rng.choice(PLACES),
        day=rng.choice(DAYS), fruit=rng.choice(FRUITS), product=rng.choice(PRODUCTS),
        price=rng.randint(2, 99),
    )


def _record(rng: random.Random) -> dict:
    kind = rng.randrange(3)
    if kind == 0:
        return {"name": f"user{rng.randint(1, 999)}", "age": rng.randint(18, 90),
                "city": rng.choice(CITIES)}
    if kind == 1:
        return {"id": rng.randint(1, 9999), "product": rng.choice(PRODUCTS),
                "price": round(rng.uniform(1, 100), 2), "in_stock": rng.random() < 0.5,
                "tags": rng.sample(TAGS, rng.randint(1, 3))}
    return {"name": rng.choice(NAMES), "job": rng.choice(JOBS), "city": rng.choice(CITIES),
            "active": rng.random() < 0.5}


def _dialogue(rng: random.Random) -> dict:
    messages = []
    if rng.random() < 0.3:
        messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
    kind = rng.randrange(3)
    if kind == 0:
        question, answer = rng.choice(QA)
    elif kind == 1:
        question = "Give me a user record as JSON."
        answer = json.dumps(_record(rng))
    else:
        name, city, job = rng.choice(NAMES), rng.choice(CITIES), rng.choice(JOBS)
        question = f"Where does {name} live?"
        answer = f"{name} lives in {city} and works as a {job}."
    messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return {"messages": messages}


def generate() -> None:
    rng = random.Random(SEED)
    sentences = FIXED_SENTENCES + [_sentence(rng) for _ in range(1500)]
    (HERE / "sentences.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    records = [json.dumps(_record(rng)) for _ in range(1200)]
    (HERE / "records.jsonl").write_text("\n".join(records) + "\n", encoding="utf-8")
    dialogues = [json.dumps(_dialogue(rng), ensure_ascii=False) for _ in range(800)]
    (HERE / "dialogues.jsonl").write_text("\n".join(dialogues) + "\n", encoding="utf-8")


if __name__ == "__main__":
    generate()
