"""The bench's evaluation data: task families (multiple choice and generated answers) and the KLD/PPL text.

One loader serves the built-in families under ``data/tasks/`` and a user's ``--tasks FILE.jsonl``, so both
are held to the same rules. A task file is JSON Lines, one item an object per line::

    {"id": "k-1", "category": "knowledge", "prompt": "The capital of France is",
     "choices": ["Paris", "Rome"], "answer": 0}
    {"id": "a-1", "category": "arithmetic", "prompt": "Question: What is 7 + 5?\\nAnswer:", "answer": "12"}

An item with ``choices`` is scored cloze style (each choice appended after one space, the most likely one is
the model's answer, ``answer`` is its index); one without is generated greedily and compared by
:func:`matches`. ``system`` is optional. A bad file is refused whole, with the line and the field: a bench
that quietly skipped half a file would report an accuracy over items nobody chose.
"""

from __future__ import annotations

import functools
import json
import random
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from assistant.errors import AssistantError
from assistant.untrusted import clean

DATA_DIR = Path(__file__).resolve().parent / "data"
TASKS_DIR = DATA_DIR / "tasks"
EVAL_DIR = DATA_DIR / "eval"
# The order the built-in text is concatenated in: fixed, so a chunk of the KLD text is the same chunk in every
# run and on every machine.
GENRES = ("narrative", "dialogue", "technical", "code", "lists")

# Bounds on untrusted files: a line past MAX_LINE is refused before it is decoded (a 5 MB line never becomes
# a string, let alone part of a message); MAX_ITEMS keeps a runaway file from a bench that never ends.
MAX_LINE = 1 << 20
MAX_ITEMS = 100_000
MAX_TEXT = 10 << 20

_FIELDS = frozenset({"id", "category", "prompt", "choices", "answer", "system"})
_FORMAT_HINT = (
    'one JSON object per line: {"prompt": ..., "choices": [...], "answer": INDEX} or {"prompt": ..., "answer": "TEXT"}'
)


@dataclass(frozen=True)
class Task:
    """One evaluation item. ``choices`` is None for a generated answer, whose ``answer`` is then the text."""

    id: str
    category: str
    prompt: str
    choices: tuple[str, ...] | None
    answer: int | str
    system: str | None = None

    @property
    def kind(self) -> str:
        """``"choice"`` (scored by log-likelihood) or ``"generate"`` (greedy reply, exact match)."""
        return "generate" if self.choices is None else "choice"


class _Bad(Exception):
    """One problem with one field of one item; :func:`load_file` adds the file and the line."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")


def _where(path: Path, line: int | None = None) -> str:
    name = clean(path, one_line=True)
    return f"{name}: line {line}" if line is not None else name


def _text(item: dict[str, Any], field: str, *, required: bool) -> str | None:
    value = item.get(field)
    if value is None:
        if required:
            raise _Bad(field, "missing")
        return None
    if not isinstance(value, str):
        raise _Bad(field, f"must be a string, not {type(value).__name__}")
    if not value.strip():
        raise _Bad(field, "is empty")
    return value


def _choices(item: dict[str, Any]) -> tuple[str, ...] | None:
    value = item.get("choices")
    if value is None:
        return None
    if not isinstance(value, list) or len(value) < 2:
        raise _Bad("choices", "must be a list of at least 2 strings")
    if not all(isinstance(c, str) and c.strip() for c in value):
        raise _Bad("choices", "every choice must be a non-empty string")
    if len(set(value)) != len(value):
        raise _Bad("choices", "has the same choice twice")
    return tuple(value)


def _answer(item: dict[str, Any], choices: tuple[str, ...] | None) -> int | str:
    if "answer" not in item or item["answer"] is None:
        raise _Bad("answer", "missing")
    value = item["answer"]
    if choices is not None:
        # bool is an int in Python; `true` as an index is a mistake, not choice 1.
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Bad("answer", f"must be the index of the right choice, not {type(value).__name__}")
        if not 0 <= value < len(choices):
            raise _Bad("answer", f"index {value} is out of range for {len(choices)} choices")
        return value
    if not isinstance(value, str):
        raise _Bad(
            "answer", f"must be the expected text (a string) when there are no choices, not {type(value).__name__}"
        )
    if not normalize(value):
        raise _Bad("answer", "is empty once case, spaces and punctuation are set aside")
    return value


def _item(raw: object, stem: str, line: int) -> Task:
    if not isinstance(raw, dict):
        raise _Bad("item", f"must be a JSON object, not {type(raw).__name__}")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise _Bad(clean(unknown[0], one_line=True)[:40], "unknown field")
    if "id" in raw and isinstance(raw["id"], int) and not isinstance(raw["id"], bool):
        raw = {**raw, "id": str(raw["id"])}
    choices = _choices(raw)
    return Task(
        id=_text(raw, "id", required=False) or f"{stem}-{line}",
        category=_text(raw, "category", required=False) or stem,
        prompt=_text(raw, "prompt", required=True) or "",
        choices=choices,
        answer=_answer(raw, choices),
        system=_text(raw, "system", required=False),
    )


def _lines(stream: BinaryIO, path: Path) -> Any:
    """(line number, decoded line) for each non-blank line, each read with a bound so no line is held whole."""
    number = 0
    while True:
        chunk = stream.readline(MAX_LINE + 1)
        if not chunk:
            return
        number += 1
        if len(chunk) > MAX_LINE:
            raise AssistantError(
                f"{_where(path, number)}: line: longer than {MAX_LINE >> 20} MB", "one item per line, each under 1 MB"
            )
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AssistantError(
                f"{_where(path, number)}: line: not UTF-8 (byte {exc.start + 1})", "save the file as UTF-8"
            ) from None
        if text.strip():
            yield number, text


def load_file(path: str | Path) -> list[Task]:
    """Every item of a task file, or an :class:`AssistantError` naming the file, the line and the field."""
    path = Path(path)
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    try:
        with path.open("rb") as stream:
            for number, text in _lines(stream, path):
                if len(tasks) >= MAX_ITEMS:
                    raise AssistantError(
                        f"{_where(path, number)}: item: more than {MAX_ITEMS:,} items", "split the file or subsample it"
                    )
                task = _parse_line(path, number, text)
                if task.id in seen:
                    raise AssistantError(
                        f"{_where(path, number)}: id: {clean(task.id, one_line=True)[:60]!r} already used on line {seen[task.id]}",
                        "give every item its own id",
                    )
                seen[task.id] = number
                tasks.append(task)
    except OSError as exc:
        raise AssistantError(f"{_where(path)}: cannot read: {exc.strerror or exc}", "check the --tasks path") from None
    if not tasks:
        raise AssistantError(f"{_where(path)}: no items (the file is empty)", _FORMAT_HINT)
    return tasks


def _parse_line(path: Path, number: int, text: str) -> Task:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AssistantError(f"{_where(path, number)}: json: not valid JSON ({exc.msg})", _FORMAT_HINT) from None
    except RecursionError:
        raise AssistantError(f"{_where(path, number)}: json: nested too deeply", _FORMAT_HINT) from None
    try:
        return _item(raw, path.stem, number)
    except _Bad as exc:
        raise AssistantError(f"{_where(path, number)}: {exc}", _FORMAT_HINT) from None


@functools.cache
def _builtin() -> tuple[Task, ...]:
    tasks: list[Task] = []
    for path in sorted(TASKS_DIR.glob("*.jsonl")):
        tasks.extend(load_file(path))
    if not tasks:
        raise AssistantError(f"no built-in tasks under {TASKS_DIR}", "reinstall the app")
    return tuple(tasks)


def builtin() -> list[Task]:
    """Every built-in family, in file order (loaded once; the files ship with the package)."""
    return list(_builtin())


def families(tasks: list[Task]) -> dict[str, list[Task]]:
    """``tasks`` grouped by category, the categories in the order they first appear."""
    groups: dict[str, list[Task]] = {}
    for task in tasks:
        groups.setdefault(task.category, []).append(task)
    return groups


def subsample(tasks: list[Task], per_family: int, seed: int | str = 0) -> list[Task]:
    """At most ``per_family`` items of each family, the same ones for the same seed (``--quick``).

    Stratified so a quick run still sees every family; each family draws from its own generator (seeded by
    the seed and the family's name), so adding a family does not change which items another one gets. The
    kept items stay in their original order.
    """
    if per_family < 1:
        raise AssistantError(f"cannot keep {per_family} items per family", "ask for at least 1")
    kept: list[Task] = []
    for name, group in families(tasks).items():
        if len(group) <= per_family:
            kept.extend(group)
            continue
        picked = set(random.Random(f"{seed}:{name}").sample(range(len(group)), per_family))
        kept.extend(task for i, task in enumerate(group) if i in picked)
    return kept


# A reply often opens with "The answer is" or echoes the prompt's "Answer:"; neither is part of the answer.
_PREFIX = re.compile(r"^\s*(?:the\s+)?answer(?:\s+is)?\s*[:\-]?\s+(?=\S)", re.IGNORECASE)
# Punctuation is dropped except a '.' or ',' between digits, so "3.5" stays "3.5" and does not become "35".
_PUNCT = re.compile(r"(?P<keep>(?<=\d)[.,](?=\d))|[^\w\s]|_")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
# Where the first clause of a reply ends: clause punctuation followed by a space or the end of the line.
_CLAUSE_END = re.compile(r"[.,;:!?](?=\s|$)")
_SENTENCE_END = re.compile(r"[.;!?](?=\s|$)")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def normalize(text: str) -> str:
    """``text`` as it is compared: NFKC, lower case, a leading "the answer is" / "answer:" dropped,
    punctuation (but not a decimal point) and the articles a/an/the dropped, whitespace collapsed."""
    text = _PREFIX.sub("", unicodedata.normalize("NFKC", text)).lower()
    text = _PUNCT.sub(lambda m: m.group() if m.group("keep") else " ", text)
    return " ".join(_ARTICLES.sub(" ", text).split())


def matches(generated: str, answer: str) -> bool:
    """Whether a greedy reply gives ``answer``: an exact match of its first clause, or a sentence that
    states it.

    Small instruct models answer in sentences ("Sara is 36 years old.", "5 + 6 = 11"), so an exact match
    alone would score them 0 on every generated item and could not tell two variants apart. The rule, on
    the reply's first non-blank line with a leading "The answer is" / "Answer:" dropped:

    * **exact**: the first clause (cut at ``.,;:!?`` before a space or the end), normalized, equals the
      normalized answer: "12.", "a teacher.", "The answer is 12, because ..." match;
    * **stated**: in the first sentence, a numeric answer must be its *last* number ("5 + 6 = 11",
      "I think it is 12"; not "12 or 13", "120" or "1 2"), a text answer must appear as whole words
      ("Sam lives in Lisbon, Portugal." gives "Lisbon"; "Parisian food" does not give "Paris").
    """
    expected = normalize(answer)
    if not expected:
        return False
    line = _PREFIX.sub("", next((line for line in generated.splitlines() if line.strip()), ""))
    if normalize(_CLAUSE_END.split(line, maxsplit=1)[0]) == expected:
        return True
    sentence = normalize(_SENTENCE_END.split(line, maxsplit=1)[0])
    if _NUMBER.fullmatch(expected):
        numbers = _NUMBER.findall(sentence)
        return bool(numbers) and numbers[-1] == expected
    return f" {expected} " in f" {sentence} "


def eval_genres() -> dict[str, str]:
    """The built-in KLD/PPL text of each genre, in :data:`GENRES` order."""
    genres = {}
    for genre in GENRES:
        try:
            genres[genre] = (EVAL_DIR / f"{genre}.txt").read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise AssistantError(
                f"the built-in {genre} text is missing ({exc.strerror})", "reinstall the app"
            ) from None
    return genres


def eval_text(path: str | Path | None = None) -> str:
    """The KLD/PPL text: the built-in genres joined by a blank line, or the user's ``--text`` file."""
    if path is None:
        return "\n\n".join(eval_genres().values())
    path = Path(path)
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_TEXT + 1)
    except OSError as exc:
        raise AssistantError(f"{_where(path)}: cannot read: {exc.strerror or exc}", "check the --text path") from None
    if len(data) > MAX_TEXT:
        raise AssistantError(f"{_where(path)}: larger than {MAX_TEXT >> 20} MB", "use a shorter text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AssistantError(f"{_where(path)}: not UTF-8 (byte {exc.start + 1})", "save the file as UTF-8") from None
    if not text.strip():
        raise AssistantError(f"{_where(path)}: the text is empty", "give a file with some text in it")
    return text
