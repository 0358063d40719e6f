"""A user's ``--tasks FILE.jsonl``: loaded whole or refused with one line naming the file, the line and the field;
and the helpers the bench scores with (subsample, normalize, matches)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.bench import tasks
from assistant.errors import AssistantError, one_line

GOOD_CHOICE = {"prompt": "The capital of France is", "choices": ["Paris", "Rome"], "answer": 0}
GOOD_TEXT = {"prompt": "Question: What is 7 + 5?\nAnswer:", "answer": "12"}


def write(tmp_path: Path, *lines: object, name: str = "mine.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


def refused(path: Path) -> str:
    with pytest.raises(AssistantError) as caught:
        tasks.load_file(path)
    message = str(caught.value)
    assert "\n" not in message and one_line(caught.value) == message
    assert str(path) in message
    assert caught.value.hint
    return message


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    assert "no items" in refused(path)
    path.write_text("\n  \n", encoding="utf-8")
    assert "no items" in refused(path)


@pytest.mark.parametrize(
    ("item", "field", "words"),
    [
        ({"prompt": "Question: What is 1 + 1?\nAnswer:"}, "answer", "missing"),
        ({"answer": "2"}, "prompt", "missing"),
        ({**GOOD_CHOICE, "answer": 2}, "answer", "out of range"),
        ({**GOOD_CHOICE, "answer": -1}, "answer", "out of range"),
        ({**GOOD_CHOICE, "answer": True}, "answer", "bool"),
        ({**GOOD_CHOICE, "answer": "Paris"}, "answer", "str"),
        ({**GOOD_TEXT, "answer": 12}, "answer", "int"),
        ({**GOOD_TEXT, "answer": ""}, "answer", "empty"),
        ({**GOOD_TEXT, "answer": " . "}, "answer", "empty"),
        ({**GOOD_TEXT, "prompt": 5}, "prompt", "string"),
        ({**GOOD_TEXT, "category": ["x"]}, "category", "string"),
        ({**GOOD_TEXT, "system": 1}, "system", "string"),
        ({**GOOD_CHOICE, "choices": ["Paris"]}, "choices", "at least 2"),
        ({**GOOD_CHOICE, "choices": "Paris"}, "choices", "at least 2"),
        ({**GOOD_CHOICE, "choices": ["Paris", 3]}, "choices", "string"),
        ({**GOOD_CHOICE, "choices": ["Paris", "Paris"]}, "choices", "twice"),
        ({**GOOD_TEXT, "choice": ["a", "b"]}, "choice", "unknown"),
    ],
)
def test_bad_item_names_line_and_field(tmp_path: Path, item: dict, field: str, words: str) -> None:
    message = refused(write(tmp_path, GOOD_TEXT, GOOD_CHOICE, item))
    assert "line 3" in message
    assert f"{field}:" in message
    assert words in message


@pytest.mark.parametrize(("line", "field"), [("{not json", "json"), ("[1, 2]", "item"), ('"a string"', "item")])
def test_not_json_or_not_an_object(tmp_path: Path, line: str, field: str) -> None:
    message = refused(write(tmp_path, GOOD_TEXT, line))
    assert "line 2" in message and f"{field}:" in message


def test_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    message = refused(write(tmp_path, {**GOOD_TEXT, "id": "a"}, GOOD_CHOICE, {**GOOD_CHOICE, "id": "a"}))
    assert "line 3" in message and "id:" in message and "line 1" in message


def test_missing_id_that_collides_with_a_given_one(tmp_path: Path) -> None:
    message = refused(write(tmp_path, {**GOOD_TEXT, "id": "mine-2"}, GOOD_CHOICE))
    assert "line 2" in message and "id:" in message


def test_a_5mb_line_is_refused_without_being_quoted(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    path.write_bytes(
        json.dumps(GOOD_TEXT).encode() + b"\n" + b'{"prompt": "' + b"x" * (5 << 20) + b'", "answer": "1"}\n'
    )
    message = refused(path)
    assert "line 2" in message and "line:" in message and "1 MB" in message
    assert len(message) < 500


def test_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(
        json.dumps(GOOD_TEXT).encode() + b"\n" + '{"prompt": "caf\xe9", "answer": "1"}\n'.encode("latin-1")
    )
    message = refused(path)
    assert "line 2" in message and "UTF-8" in message


def test_too_many_items(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks, "MAX_ITEMS", 3)
    message = refused(write(tmp_path, *({**GOOD_TEXT, "id": str(i)} for i in range(4))))
    assert "line 4" in message and "more than 3" in message


def test_a_missing_file(tmp_path: Path) -> None:
    assert "cannot read" in refused(tmp_path / "nowhere.jsonl")


def test_a_path_with_a_newline_stays_one_line(tmp_path: Path) -> None:
    path = tmp_path / "two\nlines.jsonl"
    path.write_bytes(b"{oops\n")
    with pytest.raises(AssistantError) as caught:
        tasks.load_file(path)
    assert "\n" not in str(caught.value) and "line 1" in str(caught.value)


def test_a_good_file_of_both_kinds_loads_whole(tmp_path: Path) -> None:
    lines: list[object] = []
    for i in range(10):
        lines.append(
            {
                "id": f"c{i}",
                "category": "facts",
                "prompt": f"Fact {i}:",
                "choices": ["yes", "no", "maybe"],
                "answer": i % 3,
            }
        )
        lines.append({"prompt": f"Question: What is {i} + 1?\nAnswer:", "answer": str(i + 1), "system": "Be brief."})
    loaded = tasks.load_file(write(tmp_path, *lines[:10], "", *lines[10:], name="quiz.jsonl"))
    assert len(loaded) == 20
    assert [t.kind for t in loaded[:2]] == ["choice", "generate"]
    first, second = loaded[0], loaded[1]
    assert first == tasks.Task("c0", "facts", "Fact 0:", ("yes", "no", "maybe"), 0, None)
    # Without an id or category: the file's stem, and the line number (line 11 is the blank line).
    assert (second.id, second.category, second.answer, second.system) == ("quiz-2", "quiz", "1", "Be brief.")
    assert loaded[11].id == "quiz-13"
    assert list(tasks.families(loaded)) == ["facts", "quiz"]


def test_subsample_is_deterministic_and_stratified() -> None:
    everything = tasks.builtin()
    quick = tasks.subsample(everything, 10, seed=7)
    assert quick == tasks.subsample(everything, 10, seed=7)
    assert quick != tasks.subsample(everything, 10, seed=8)
    groups = tasks.families(quick)
    assert list(groups) == list(tasks.families(everything))
    assert all(len(group) == 10 for group in groups.values())
    # Kept in their original order, and a family smaller than the ask is kept whole.
    order = {task.id: i for i, task in enumerate(everything)}
    assert [order[t.id] for t in quick] == sorted(order[t.id] for t in quick)
    small = everything[:3]
    assert tasks.subsample(small, 10) == small
    with pytest.raises(AssistantError):
        tasks.subsample(everything, 0)


def test_subsample_of_one_family_does_not_depend_on_the_others() -> None:
    everything = tasks.builtin()
    alone = [t for t in everything if t.category == "reading"]
    assert tasks.subsample(alone, 5, seed=1) == [
        t for t in tasks.subsample(everything, 5, seed=1) if t.category == "reading"
    ]


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("  Paris. ", "paris"),
        ("The answer is 12.", "12"),
        ("Answer: 3.5", "3.5"),
        ("1,000", "1,000"),
        ("the  Red   Kite!", "red kite"),
        ("don't", "don t"),
        ("ＰＡＲＩＳ", "paris"),
    ],
)
def test_normalize(text: str, normal: str) -> None:
    assert tasks.normalize(text) == normal


@pytest.mark.parametrize(
    ("generated", "answer"),
    [
        ("12", "12"),
        (" 12.", "12"),
        ("12\nQuestion: What is 8 + 1?", "12"),
        ("The answer is 12, because 7 + 5 = 12.", "12"),
        ("Answer: Paris", "Paris"),
        ("\n\nLisbon!", "Lisbon"),
        ("a teacher.", "teacher"),
        ("3.5", "3.5"),
        ("5 + 6 = 11", "11"),  # a sentence that states the answer: its last number
        ("Sara is 36 years old.", "36"),
        ("I think it is 12", "12"),
        ("Sam lives in Lisbon, Portugal.", "Lisbon"),  # a text answer as whole words of the first sentence
        ("Paris is the capital", "Paris"),
    ],
)
def test_matches(generated: str, answer: str) -> None:
    assert tasks.matches(generated, answer)


@pytest.mark.parametrize(
    ("generated", "answer"),
    [
        ("12 or 13", "12"),
        ("120", "12"),
        ("1 2", "12"),
        ("35", "3.5"),
        ("Parisian food", "Paris"),
        ("The capital is Lyon. Paris is bigger.", "Paris"),  # only the first sentence counts
        ("", "12"),
        ("12 - 5 = 4", "12"),
        ("12 - 5 = 4", "7"),
        ("13\n12", "12"),
        ("12", ""),
    ],
)
def test_does_not_match(generated: str, answer: str) -> None:
    assert not tasks.matches(generated, answer)
