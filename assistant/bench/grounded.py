"""Prompts for speculative decoding: 30 grounded in their input (the reply repeats much of it: code edits,
rewrites, extraction to JSON, summaries with quotes, reformatted lists, continued tables) and 30 open-ended.
Written for this project (``data/SOURCES.md``); each is (task type, prompt). ``assistant bench --speculative``
times a sample of the grounded ones (``spec.py``), ``benchmarks/speculative.py`` all of them."""

from __future__ import annotations

CODE = [
    """def total(items):
    result = 0
    for item in items:
        if item.price > 0:
            result = result + item.price * item.quantity
    return result""",
    """def read_config(path):
    with open(path) as f:
        lines = f.readlines()
    config = {}
    for line in lines:
        key, value = line.strip().split("=")
        config[key] = value
    return config""",
    """class Counter:
    def __init__(self):
        self.count = 0

    def add(self, n):
        self.count = self.count + n

    def reset(self):
        self.count = 0""",
    """def find_user(users, name):
    for user in users:
        if user["name"] == name:
            return user
    return None""",
    """def mean(values):
    total = 0
    for v in values:
        total += v
    return total / len(values)""",
    """def greet(name, times):
    for i in range(times):
        print("Hello, " + name + "!")
    print("Done greeting " + name)""",
]
CODE_TASKS = [
    "Rename the function total to order_total and show the whole code:",
    "Add type hints to this function and show the whole code:",
    "Rename the class Counter to Tally and show the whole code:",
    "Rename the parameter users to people everywhere and show the whole code:",
    "Make this function return 0 for an empty list and show the whole code:",
    "Rename the variable i to round_number and show the whole code:",
]
TEXTS = [
    "The cat sits on the mat while the dog runs in the garden and the children play with a red ball.",
    "Our team meets every Monday at nine to plan the week, and on Friday we review what was finished.",
    "The train to Berlin leaves at half past six from platform four, and it stops in Leipzig and Halle.",
    "She opens the window, waters the plants on the balcony and makes a cup of tea before work.",
    "The library is closed on Sunday, so please return your books on Saturday before five o'clock.",
    "He writes a short report about the project, sends it to the team and asks for their comments.",
]
RECORDS = [
    "Name: Anna Schmidt. Age: 34. City: Hamburg. Job: engineer. Email: anna.schmidt@example.com.",
    "Name: Luis Garcia. Age: 51. City: Valencia. Job: teacher. Email: luis.garcia@example.org.",
    "Name: Mei Chen. Age: 27. City: Toronto. Job: designer. Email: mei.chen@example.net.",
    "Name: Tom Baker. Age: 45. City: Leeds. Job: nurse. Email: tom.baker@example.com.",
    "Name: Sara Rossi. Age: 38. City: Turin. Job: chef. Email: sara.rossi@example.it.",
    "Name: Ole Hansen. Age: 62. City: Bergen. Job: fisherman. Email: ole.hansen@example.no.",
]
ARTICLES = [
    'The town council voted on Tuesday to build a new bridge over the river. "The old bridge is no longer safe,"'
    ' said the mayor. Work will start in March and should take two years. "We expect less traffic in the centre,"'
    " the chief engineer added.",
    'A new study found that people who walk thirty minutes a day sleep better. "The effect was clear after two'
    ' weeks," said the lead researcher. The study followed 400 adults for six months. "Walking is free and easy,"'
    " she added.",
    'The museum will open a new hall for old maps next month. "Some of these maps are five hundred years old,"'
    ' said the curator. Visitors can see how cities grew over the centuries. "Children love the sea monsters,"'
    " she said.",
    'Farmers in the valley expect a good apple harvest this year. "The spring was warm and the summer was not too'
    ' dry," said one farmer. Prices may fall as a result. "We will sell more juice," said the cooperative\'s head.',
]
LISTS = [
    "- apples\n- bread\n- milk\n- eggs\n- cheese",
    "- Monday: gym\n- Tuesday: piano\n- Wednesday: swimming\n- Thursday: chess",
    "name,age,city\nAnna,34,Hamburg\nLuis,51,Valencia\nMei,27,Toronto",
    "product,price\ntea,3.50\ncoffee,4.20\njuice,2.80",
]
TABLES = [
    "| Year | Sales |\n|------|-------|\n| 2019 | 120 |\n| 2020 | 135 |\n| 2021 | 150 |",
    "1. Wake up at seven\n2. Make breakfast\n3. Walk the dog\n4. Start work",
    "| Planet | Moons |\n|--------|-------|\n| Earth | 1 |\n| Mars | 2 |",
    "Step 1: open the box.\nStep 2: take out the parts.\nStep 3: read the manual.",
]


def grounded() -> list[tuple[str, str]]:
    prompts = [("code edit", f"{task}\n\n{code}") for task, code in zip(CODE_TASKS, CODE, strict=True)]
    prompts += [("rewrite", f"Rewrite this in the past tense: {text}") for text in TEXTS]
    prompts += [
        ("extract to JSON", f"Extract name, age, city, job and email as JSON from this text:\n\n{record}")
        for record in RECORDS
    ]
    prompts += [("summary with quotes", f"Summarise this, quoting the two people:\n\n{text}") for text in ARTICLES]
    prompts += [
        ("reformat a list", f"Turn this into a Markdown table (or a numbered list for a plain list):\n\n{text}")
        for text in LISTS
    ]
    prompts += [("continue a table", f"Repeat this and continue it with two more rows:\n\n{text}") for text in TABLES]
    return prompts


OPEN = [
    "Tell me a short story about a robot who learns to paint.",
    "What are three good habits for a healthy morning?",
    "Write a haiku about the sea.",
    "Why is the sky blue?",
    "Give me ideas for a birthday party for a ten-year-old.",
    "Explain how a bicycle works.",
    "What should I pack for a weekend in the mountains?",
    "Describe a perfect autumn day.",
    "How do bees make honey?",
    "Write a short poem about a cat.",
    "What is the difference between weather and climate?",
    "Suggest a name for a small bakery and explain why.",
    "How can I learn to play the guitar?",
    "Tell me an interesting fact about octopuses.",
    "What makes a good friend?",
    "Describe the taste of a lemon to someone who never had one.",
    "Why do we have seasons?",
    "Write a letter to a future version of yourself.",
    "What are some ways to save energy at home?",
    "Explain what a volcano is to a child.",
    "Invent a new board game and describe its rules.",
    "What would you do on a rainy Sunday?",
    "How do airplanes stay in the air?",
    "Tell me about a famous explorer.",
    "What are the benefits of reading books?",
    "Describe a city in the year 2100.",
    "How does a rainbow form?",
    "Write a short dialogue between a teacher and a student.",
    "What is your favourite kind of music and why?",
    "Give me tips for a job interview.",
]


def open_ended() -> list[tuple[str, str]]:
    return [("open-ended", prompt) for prompt in OPEN]
