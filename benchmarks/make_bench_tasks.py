"""Writes the bench's built-in task families, assistant/bench/data/tasks/*.jsonl, from the tables below.

The JSONL files are committed; this script is how they were made, so a fix to an item is a fix here and a
re-run. It is deterministic (fixed seeds, no clock, no network): running it again writes the same bytes.
The items are deliberately easy — the bench compares quantized variants of models as small as
SmolLM2-135M, and a family the smallest model answers at chance cannot tell two of its variants apart.
Every fact and answer below was written for this project (Apache-2.0).

    python benchmarks/make_bench_tasks.py
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "assistant" / "bench" / "data" / "tasks"

Item = dict[str, Any]

# -- knowledge: cloze facts ----------------------------------------------------------------------------
CAPITALS = {
    "France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Germany": "Berlin", "Spain": "Madrid",
    "England": "London", "Russia": "Moscow", "Egypt": "Cairo", "China": "Beijing", "Canada": "Ottawa",
    "Greece": "Athens", "Portugal": "Lisbon", "Ireland": "Dublin", "Norway": "Oslo", "Sweden": "Stockholm",
    "Finland": "Helsinki", "Denmark": "Copenhagen", "Austria": "Vienna", "Poland": "Warsaw",
    "Hungary": "Budapest", "Peru": "Lima", "Kenya": "Nairobi", "Thailand": "Bangkok", "South Korea": "Seoul",
    "Argentina": "Buenos Aires", "Mexico": "Mexico City", "Cuba": "Havana", "Belgium": "Brussels",
    "the Netherlands": "Amsterdam", "Czechia": "Prague", "Iceland": "Reykjavik", "Chile": "Santiago",
    "Colombia": "Bogota", "Indonesia": "Jakarta", "the Philippines": "Manila", "Vietnam": "Hanoi",
    "Iran": "Tehran", "Iraq": "Baghdad", "Ukraine": "Kyiv", "Scotland": "Edinburgh",
}  # fmt: skip
OPPOSITES = {
    "hot": "cold", "big": "small", "up": "down", "day": "night", "fast": "slow", "happy": "sad",
    "old": "young", "open": "closed", "light": "dark", "full": "empty", "wet": "dry", "hard": "soft",
    "early": "late", "rich": "poor", "tall": "short", "left": "right", "in": "out", "win": "lose",
    "push": "pull", "black": "white", "thick": "thin", "strong": "weak", "loud": "quiet", "clean": "dirty",
    "first": "last", "above": "below", "buy": "sell", "true": "false", "north": "south", "east": "west",
}  # fmt: skip
COLOURS = {
    "grass": "green", "snow": "white", "a ripe banana": "yellow", "coal": "black", "blood": "red",
    "the sky on a clear day": "blue", "milk": "white", "a carrot": "orange", "chocolate": "brown",
    "a lemon": "yellow", "a ripe tomato": "red", "the leaves in summer": "green", "a crow": "black",
    "an orange": "orange", "the sea on a sunny day": "blue",
}  # fmt: skip
# Wrong answers that are nearly right, kept out of an item's distractors so each item has one defensible answer.
NEAR = {
    "tall": ("small",),
    "loud": ("soft",),
    "chocolate": ("black",),
    "the sea on a sunny day": ("green",),
    "a ripe banana": ("brown",),
}
COLOUR_WORDS = ["red", "green", "blue", "yellow", "white", "black", "orange", "brown"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]  # fmt: skip
FACTS = [
    ("There are seven days in a", "week", ["month", "year", "minute"]),
    ("There are twelve months in a", "year", ["week", "day", "hour"]),
    ("There are sixty minutes in an", "hour", ["year", "week", "month"]),
    ("Water freezes into", "ice", ["sand", "smoke", "glass"]),
    ("The Sun rises in the", "east", ["west", "north", "south"]),
    ("A triangle has three", "sides", ["wheels", "legs", "eyes"]),
    ("Bees make", "honey", ["milk", "bread", "cheese"]),
    ("Cows give us", "milk", ["honey", "wool", "eggs"]),
    ("Sheep give us", "wool", ["honey", "silk", "eggs"]),
    ("Hens lay", "eggs", ["wool", "honey", "milk"]),
    ("The largest ocean on Earth is the", "Pacific Ocean", ["Arctic Ocean", "Indian Ocean", "Southern Ocean"]),
    ("The planet we live on is called", "Earth", ["Mars", "Jupiter", "Venus"]),
    ("At night the sky is lit by the Moon and the", "stars", ["clouds", "trees", "rivers"]),
    ("A baby cat is called a", "kitten", ["puppy", "calf", "foal"]),
    ("A baby dog is called a", "puppy", ["kitten", "lamb", "chick"]),
    ("A baby sheep is called a", "lamb", ["puppy", "kitten", "cub"]),
]


def knowledge() -> Iterator[tuple[str, str, list[str]]]:
    """(prompt, answer, distractors): distractors come from the same table, so none is an odd one out."""
    rng = random.Random("knowledge")
    capitals = list(CAPITALS.values())
    for country, city in CAPITALS.items():
        yield f"The capital of {country} is", city, rng.sample([c for c in capitals if c != city], 3)
    words = list(OPPOSITES.values())
    for word, opposite in OPPOSITES.items():
        pool = [w for w in words if w not in (opposite, word, *NEAR.get(word, ()))]
        yield f"The opposite of {word} is", opposite, rng.sample(pool, 3)
    for thing, colour in COLOURS.items():
        pool = [c for c in COLOUR_WORDS if c != colour and c not in NEAR.get(thing, ())]
        yield f"The colour of {thing} is", colour, rng.sample(pool, 3)
    for i, day in enumerate(DAYS):
        after = DAYS[(i + 1) % 7]
        yield f"The day after {day} is", after, rng.sample([d for d in DAYS if d not in (after, day)], 3)
    for i, month in enumerate(MONTHS):
        after = MONTHS[(i + 1) % 12]
        yield f"The month after {month} is", after, rng.sample([m for m in MONTHS if m not in (after, month)], 3)
    yield from FACTS


# -- commonsense: everyday cause, use and place ----------------------------------------------------------
TOOLS = [
    ("To cut paper, you use", "scissors"), ("To write a letter, you use", "a pen"),
    ("To sweep the floor, you use", "a broom"), ("To stay dry in the rain, you use", "an umbrella"),
    ("To eat soup, you use", "a spoon"), ("To drink water, you use", "a glass"),
    ("To brush your teeth, you use", "a toothbrush"), ("To dry yourself after a bath, you use", "a towel"),
    ("To hit a nail into wood, you use", "a hammer"), ("To unlock a door, you use", "a key"),
    ("To see in the dark, you use", "a torch"), ("To tell the time, you use", "a clock"),
    ("To comb your hair, you use", "a comb"), ("To boil water, you use", "a kettle"),
    ("To take a photo, you use", "a camera"), ("To dig a hole in the garden, you use", "a spade"),
    ("To wash your hands, you use", "soap"), ("To rest your head in bed, you use", "a pillow"),
    ("To carry your books to school, you use", "a bag"), ("To keep food cold, you use", "a fridge"),
    ("To post a letter, you stick on", "a stamp"), ("To look at your own face, you use", "a mirror"),
    ("To measure how long a table is, you use", "a ruler"), ("To keep your feet warm, you wear", "socks"),
    ("To keep your hands warm in winter, you wear", "gloves"), ("To protect your head on a bike, you wear", "a helmet"),
    ("To cut bread, you use", "a knife"), ("To rub out a pencil mark, you use", "an eraser"),
    ("To cook an egg in a pan, you use", "a stove"), ("To read a book at night, you turn on", "a lamp"),
]  # fmt: skip
PLACES = [
    ("To buy bread, people go to the", "bakery"), ("When they are very ill, people go to the", "hospital"),
    ("To borrow a book, people go to the", "library"), ("To catch a train, people go to the", "station"),
    ("To catch a plane, people go to the", "airport"), ("Children go to learn at", "school"),
    ("To swim in the sea, people go to the", "beach"), ("To see lions and elephants, people go to the", "zoo"),
    ("To watch a film on a big screen, people go to the", "cinema"), ("To post a letter, people go to the", "post office"),
    ("Farmers grow wheat on a", "farm"), ("To put money in the bank, people go to the", "bank"),
    ("To get their teeth checked, people go to the", "dentist"), ("To buy medicine, people go to the", "pharmacy"),
    ("To eat a meal cooked for them, people go to a", "restaurant"), ("To fill the car with fuel, people go to the", "petrol station"),
    ("At night, people sleep in a", "bed"), ("People cook their meals in the", "kitchen"),
    ("People take a shower in the", "bathroom"), ("A car is kept at night in the", "garage"),
]  # fmt: skip
BODY = [
    ("You see with your", "eyes"), ("You hear with your", "ears"), ("You smell with your", "nose"),
    ("You taste food with your", "tongue"), ("You chew food with your", "teeth"), ("You think with your", "brain"),
    ("You wear a hat on your", "head"), ("You wear shoes on your", "feet"), ("You wear a ring on your", "finger"),
    ("You wear a scarf around your", "neck"),
]  # fmt: skip
NEEDS = [
    ("When you are hungry, you", "eat"), ("When you are thirsty, you", "drink"), ("When you are tired, you", "sleep"),
    ("When something is funny, you", "laugh"), ("When you are very sad, you might", "cry"),
    ("When the phone rings, you", "answer it"), ("When you are cold, you put on", "a coat"),
    ("When it gets dark, you turn on", "the light"), ("When your hands are dirty, you", "wash them"),
    ("When a friend gives you a present, you say", "thank you"),
]  # fmt: skip
SOUNDS = [
    ("barks", "dog"), ("meows", "cat"), ("moos", "cow"), ("quacks", "duck"), ("neighs", "horse"),
    ("oinks", "pig"), ("baas", "sheep"), ("roars", "lion"), ("hoots at night", "owl"), ("buzzes", "bee"),
    ("hisses", "snake"), ("crows at dawn", "rooster"),
]  # fmt: skip
CAUSES = [
    ("If you drop a glass on a stone floor, it will", "break", ["grow", "sing", "melt"]),
    ("If you leave ice in the sun, it will", "melt", ["freeze", "grow", "break"]),
    ("If you do not water a plant, it will", "die", ["sing", "fly", "freeze"]),
    ("If you put your hand in fire, it will", "burn", ["freeze", "grow", "sing"]),
    ("If it rains all day, the ground will be", "wet", ["dry", "hot", "loud"]),
    ("If you run for an hour, you will feel", "tired", ["cold", "frozen", "smaller"]),
    ("When water is heated enough, it will", "boil", ["freeze", "break", "grow"]),
    ("In winter it is usually", "cold", ["hot", "boiling", "sandy"]),
    ("A stone thrown into a pond will", "sink", ["float", "fly", "melt"]),
    ("A piece of wood dropped into a pond will", "float", ["sink", "melt", "break"]),
    ("People wear sunglasses when it is", "sunny", ["dark", "raining", "night"]),
    ("You should look both ways before you cross the", "road", ["bed", "sky", "table"]),
    ("Before you eat, you should wash your", "hands", ["shoes", "car", "hair"]),
    ("A candle gives us", "light", ["water", "music", "food"]),
    ("An oven is used to", "bake bread", ["wash clothes", "play music", "cut grass"]),
    ("A kite flies best on a day that is", "windy", ["still", "foggy", "snowy"]),
]


# Pairs of answers that could both be right for one of the two prompts; never each other's distractor.
CLOSE = {
    frozenset(p)
    for p in [("scissors", "a knife"), ("a torch", "a lamp"), ("a camera", "a mirror"), ("hospital", "pharmacy"),
              ("hospital", "dentist"), ("brain", "head"), ("cry", "sleep"), ("cry", "eat"), ("cry", "drink"),
              ("snake", "cat"), ("a glass", "a kettle"), ("socks", "gloves"), ("restaurant", "kitchen"),
              ("eyes", "head"), ("ears", "head"), ("nose", "head"), ("tongue", "teeth")]
}  # fmt: skip
MORE = [
    ("A ball is round, and a box is", "square", ["round", "wet", "hungry"]),
    ("Fish swim in", "water", ["sand", "the sky", "fire"]),
    ("Birds fly in the", "sky", ["sea", "ground", "soup"]),
    (
        "A cup of hot tea is too hot to drink, so you wait for it to",
        "cool down",
        ["get hotter", "turn blue", "fly away"],
    ),
]


def commonsense() -> Iterator[tuple[str, str, list[str]]]:
    rng = random.Random("commonsense")
    tables = [TOOLS, PLACES, BODY, NEEDS, [(f"The animal that {sound} is the", animal) for sound, animal in SOUNDS]]
    for table in tables:
        answers = [a for _, a in table]
        for prompt, answer in table:
            pool = [a for a in answers if a != answer and frozenset((a, answer)) not in CLOSE]
            yield prompt, answer, rng.sample(pool, 3)
    yield from CAUSES
    yield from MORE


# -- reading: a short passage, a question about it -----------------------------------------------------
NAMES = ["Tom", "Anna", "Sam", "Lucy", "Ben", "Mia", "Jack", "Emma", "Leo", "Sara", "Max", "Lily", "Omar", "Nina", "Paul", "Rosa"]  # fmt: skip
OBJECTS = ["ball", "kite", "bike", "hat", "cup", "bag", "car", "book", "box", "coat"]
TOWNS = ["Leeds", "Oxford", "Dover", "York", "Bath", "Bristol", "Cardiff", "Glasgow"]
PETS = ["dog", "cat", "rabbit", "parrot", "goldfish", "horse"]
FRUITS = ["apples", "pears", "oranges", "plums", "lemons"]
NUMBER_WORDS = ["two", "three", "four", "five", "six", "seven", "eight", "nine"]


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


READ = "Read the story and answer the question.\n\nStory: {story}\n\nQuestion: {question}\nAnswer:"


def reading() -> Iterator[tuple[str, str, list[str]]]:
    rng = random.Random("reading")
    for i in range(130):
        a, b = rng.sample(NAMES, 2)
        c1, c2 = rng.sample(COLOUR_WORDS, 2)
        o1, o2 = rng.sample(OBJECTS, 2)
        t1, t2 = rng.sample(TOWNS, 2)
        pet = rng.choice(PETS)
        fruit = rng.choice(FRUITS)
        n = rng.choice(NUMBER_WORDS)
        story = (
            f"{a} has {article(c1)} {c1} {o1} and {b} has {article(c2)} {c2} {o2}. {a} lives in {t1}, and {b} lives in {t2}. "
            f"{b} has a pet {pet}. One morning {a} bought {n} {fruit} at the market."
        )
        kind = i % 5
        if kind == 0:
            question, answer, pool = f"What colour is {a}'s {o1}?", c1, [c for c in COLOUR_WORDS if c != c1]
            wrong = [c2, *rng.sample([c for c in pool if c != c2], 2)]
        elif kind == 1:
            question, answer = f"Where does {b} live?", t2
            wrong = [t1, *rng.sample([t for t in TOWNS if t not in (t1, t2)], 2)]
        elif kind == 2:
            question, answer = f"Who has a pet {pet}?", b
            wrong = [a, *rng.sample([x for x in NAMES if x not in (a, b)], 2)]
        elif kind == 3:
            question, answer = f"How many {fruit} did {a} buy?", n
            wrong = rng.sample([x for x in NUMBER_WORDS if x != n], 3)
        else:
            question, answer = f"What kind of pet does {b} have?", f"a {pet}"
            wrong = [f"a {p}" for p in rng.sample([p for p in PETS if p != pet], 3)]
        yield READ.format(story=story, question=question), answer, wrong


# -- classification: sentiment and word category -------------------------------------------------------
THINGS = ["film", "book", "meal", "hotel", "phone", "song", "game", "shop", "chair", "holiday", "concert", "café"]
GOOD = ["was wonderful and I loved every minute", "is excellent, I would happily buy it again",
        "made me very happy", "was great fun from start to finish", "is the best I have ever had",
        "was lovely and the staff were kind"]  # fmt: skip
BAD = ["was terrible and I hated every minute", "is awful, I want my money back",
       "made me very angry", "was boring and far too long", "is the worst I have ever had",
       "was dirty and the staff were rude"]  # fmt: skip
SENTIMENT = "Review: The {thing} {text}.\nIs this review positive or negative?\nAnswer:"
CATEGORIES = {
    "animal": ["dog", "cat", "horse", "lion", "tiger", "rabbit", "elephant", "mouse", "cow", "monkey", "bear", "wolf", "zebra", "fox", "goat"],
    "fruit": ["apple", "banana", "orange", "grape", "pear", "cherry", "lemon", "mango", "peach", "plum", "strawberry", "melon", "pineapple", "kiwi", "apricot"],
    "vehicle": ["car", "bus", "train", "bicycle", "truck", "boat", "plane", "tractor", "taxi", "van", "motorbike", "ship", "scooter", "tram", "helicopter"],
    "colour": ["red", "blue", "green", "yellow", "purple", "pink", "black", "white", "grey", "brown", "beige", "violet", "silver", "gold", "turquoise"],
}  # fmt: skip
CATEGORY = "Word: {word}\nIs this word an animal, a fruit, a vehicle or a colour?\nAnswer:"


def classification() -> Iterator[tuple[str, str, list[str]]]:
    for thing in THINGS:
        for j, (good, bad) in enumerate(zip(GOOD, BAD, strict=True)):
            if (THINGS.index(thing) + j) % 2:  # half the pairs of each thing, so the family stays ~2/3 sentiment
                continue
            yield SENTIMENT.format(thing=thing, text=good), "positive", ["negative"]
            yield SENTIMENT.format(thing=thing, text=bad), "negative", ["positive"]
    names = list(CATEGORIES)
    for category, words in CATEGORIES.items():
        for word in words:
            yield CATEGORY.format(word=word), category, [c for c in names if c != category]


# -- arithmetic (generated) -----------------------------------------------------------------------------
ASK = "Question: {q}\nAnswer:"
# (template, operation): "-" problems take away fewer than there were, so no answer is negative.
WORD_PROBLEMS = [
    ("{n} has {x} apples and gets {y} more. How many apples does {n} have now?", "+"),
    ("{n} has {x} sweets and eats {y} of them. How many sweets are left?", "-"),
    ("There are {x} birds on a tree and {y} more land on it. How many birds are on the tree?", "+"),
    ("{n} had {x} balloons and {y} of them popped. How many balloons does {n} have left?", "-"),
    ("{n} buys {x} bags with {y} oranges in each bag. How many oranges does {n} have?", "*"),
]


def arithmetic() -> Iterator[tuple[str, str]]:
    rng = random.Random("arithmetic")
    seen: set[str] = set()

    def once(question: str, value: int) -> Iterator[tuple[str, str]]:
        if question not in seen:
            seen.add(question)
            yield ASK.format(q=question), str(value)

    while len(seen) < 50:
        x, y = rng.randint(1, 9), rng.randint(1, 9)
        yield from once(f"What is {x} + {y}?", x + y)
    while len(seen) < 75:
        x, y = rng.randint(10, 40), rng.randint(1, 20)
        yield from once(f"What is {x} + {y}?", x + y)
    while len(seen) < 100:
        x = rng.randint(2, 20)
        y = rng.randint(1, x - 1)
        yield from once(f"What is {x} - {y}?", x - y)
    while len(seen) < 115:
        x, y = rng.randint(2, 9), rng.randint(2, 5)
        yield from once(f"What is {x} times {y}?", x * y)
    while len(seen) < 140:
        template, op = WORD_PROBLEMS[len(seen) % len(WORD_PROBLEMS)]
        x = rng.randint(3, 9)
        y = rng.randint(1, x - 1) if op == "-" else rng.randint(2, 5)
        value = x + y if op == "+" else x - y if op == "-" else x * y
        yield from once(template.format(n=rng.choice(NAMES), x=x, y=y), value)


# -- extraction (generated): one field of a short record -------------------------------------------------
JOBS = ["teacher", "doctor", "baker", "farmer", "nurse", "pilot", "driver", "painter", "cook", "dentist", "lawyer", "builder"]  # fmt: skip
CITIES = ["Paris", "London", "Berlin", "Madrid", "Rome", "Vienna", "Dublin", "Lisbon", "Oslo", "Athens", "Prague", "Tokyo"]  # fmt: skip
RECORD = "Text: {name} is {age} years old and lives in {city}. {name} works as a {job}.\nQuestion: {question}\nAnswer:"


def extraction() -> Iterator[tuple[str, str]]:
    rng = random.Random("extraction")
    seen: set[str] = set()
    while len(seen) < 120:
        name, city, job, age = rng.choice(NAMES), rng.choice(CITIES), rng.choice(JOBS), rng.randint(20, 70)
        question, answer = [
            (f"In which city does {name} live?", city),
            (f"How old is {name}?", str(age)),
            (f"What is {name}'s job?", job),
        ][len(seen) % 3]
        prompt = RECORD.format(name=name, age=age, city=city, job=job, question=question)
        if prompt not in seen:
            seen.add(prompt)
            yield prompt, answer


# -- writing ---------------------------------------------------------------------------------------------
def choice_items(family: str, rows: Iterator[tuple[str, str, list[str]]]) -> list[Item]:
    """Multiple-choice items with the right answer's position spread evenly (a model biased to "A" gains nothing)."""
    items = []
    for i, (prompt, answer, wrong) in enumerate(rows):
        choices = list(wrong)
        slot = i % (len(choices) + 1)
        choices.insert(slot, answer)
        assert len(set(choices)) == len(choices), (prompt, choices)
        items.append(
            {"id": f"{family}-{i + 1:03d}", "category": family, "prompt": prompt, "choices": choices, "answer": slot}
        )
    return items


def generated_items(family: str, rows: Iterator[tuple[str, str]]) -> list[Item]:
    return [
        {"id": f"{family}-{i + 1:03d}", "category": family, "prompt": p, "answer": a} for i, (p, a) in enumerate(rows)
    ]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    families = {
        "knowledge": choice_items("knowledge", knowledge()),
        "commonsense": choice_items("commonsense", commonsense()),
        "reading": choice_items("reading", reading()),
        "classification": choice_items("classification", classification()),
        "arithmetic": generated_items("arithmetic", arithmetic()),
        "extraction": generated_items("extraction", extraction()),
    }
    for family, items in families.items():
        lines = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
        (OUT / f"{family}.jsonl").write_text(lines, encoding="utf-8")
        print(f"{family}: {len(items)} items")


if __name__ == "__main__":
    main()
