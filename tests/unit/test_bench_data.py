"""The built-in evaluation data is sound: every item well formed, answers checkable, enough of each family."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from assistant.bench import tasks

FILES = sorted(tasks.TASKS_DIR.glob("*.jsonl"))


def test_every_builtin_file_loads_through_the_user_loader() -> None:
    assert FILES
    loaded = [task for path in FILES for task in tasks.load_file(path)]
    assert loaded == tasks.builtin()


def test_each_file_is_one_family_named_after_it() -> None:
    for path in FILES:
        assert {task.category for task in tasks.load_file(path)} == {path.stem}


def test_choice_items_have_distinct_choices_and_an_answer_in_range() -> None:
    for task in tasks.builtin():
        if task.kind == "choice":
            assert task.choices is not None and len(task.choices) >= 2, task.id
            assert len(set(task.choices)) == len(task.choices), task.id
            assert isinstance(task.answer, int) and 0 <= task.answer < len(task.choices), task.id


def test_no_duplicate_ids_or_prompts_across_files() -> None:
    everything = tasks.builtin()
    ids = Counter(task.id for task in everything)
    prompts = Counter(task.prompt for task in everything)
    assert [i for i, n in ids.items() if n > 1] == []
    assert [p for p, n in prompts.items() if n > 1] == []


def test_at_least_five_families_of_a_hundred_and_two_generated() -> None:
    groups = tasks.families(tasks.builtin())
    big = {name for name, group in groups.items() if len(group) >= 100}
    assert len(big) >= 5, {name: len(group) for name, group in groups.items()}
    generated = {name for name, group in groups.items() if all(task.kind == "generate" for task in group)}
    assert len(generated) >= 2, generated


def test_every_generated_answer_matches_itself() -> None:
    for task in tasks.builtin():
        if task.kind == "generate":
            assert isinstance(task.answer, str) and tasks.normalize(task.answer), task.id
            assert tasks.matches(task.answer, task.answer), task.id


def test_arithmetic_answers_are_right() -> None:
    """Recompute each bare sum from its prompt, so a generator bug cannot ship a wrong key."""
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "times": lambda a, b: a * b}
    checked = 0
    for task in tasks.builtin():
        found = re.fullmatch(r"Question: What is (\d+) (\+|-|times) (\d+)\?\nAnswer:", task.prompt)
        if found:
            assert task.answer == str(ops[found[2]](int(found[1]), int(found[3]))), task.id
            checked += 1
    assert checked >= 100


def test_extraction_answers_appear_in_their_text() -> None:
    for task in tasks.builtin():
        if task.category == "extraction":
            assert isinstance(task.answer, str)
            assert re.search(rf"\b{re.escape(task.answer)}\b", task.prompt.split("\nQuestion:")[0]), task.id


def test_reading_answers_appear_in_their_story() -> None:
    for task in tasks.builtin():
        if task.category == "reading":
            assert task.choices is not None and isinstance(task.answer, int)
            story = task.prompt.split("Story: ", 1)[1].split("\n\nQuestion:")[0]
            assert task.choices[task.answer].removeprefix("a ") in story, task.id


def test_sources_names_every_data_file() -> None:
    sources = (tasks.DATA_DIR / "SOURCES.md").read_text(encoding="utf-8")
    data_files = [p for p in tasks.DATA_DIR.rglob("*") if p.is_file() and p.name != "SOURCES.md"]
    assert data_files
    for path in data_files:
        assert f"`{path.relative_to(tasks.DATA_DIR).as_posix()}`" in sources, path


@pytest.mark.parametrize("genre", tasks.GENRES)
def test_each_genre_file_is_present_and_not_trivial(genre: str) -> None:
    text = (tasks.EVAL_DIR / f"{genre}.txt").read_text(encoding="utf-8")
    assert len(text) > 9000, genre
    assert tasks.eval_genres()[genre] in tasks.eval_text()


def test_builtin_text_is_the_genres_in_order() -> None:
    genres = tasks.eval_genres()
    assert list(genres) == list(tasks.GENRES)
    assert tasks.eval_text() == "\n\n".join(genres.values())
