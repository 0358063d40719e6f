"""A text file attached to a message: read it safely and put it in the prompt as a fenced block.

The file's text is data: it goes into the message as it is (the chat view renders messages as plain text or
escaped Markdown, ``untrusted``), inside a fence longer than any run of backticks in it, so nothing in the
file can close the block early. Refused, each in one line: a path that is not a file, a file over
``MAX_BYTES``, a binary file (a NUL byte, or bytes that are not UTF-8).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import AssistantError

MAX_BYTES = 1_000_000  # far more than any small model's context holds; the token check says the rest
_BACKTICKS = re.compile(r"`{3,}")
_COMMAND = re.compile(r"^/attach(?:\s+(?P<path>.*))?$")


@dataclass(frozen=True)
class Attachment:
    name: str  # the file's name (not its folder)
    text: str  # its content, decoded
    block: str  # what goes into the message

    @property
    def size(self) -> int:
        return len(self.text.encode("utf-8"))


def read(path: Path) -> Attachment:
    """The file at ``path`` as an attachment, or one ``AssistantError`` saying why not."""
    path = path.expanduser()
    hint = "attach a text file (code, notes, Markdown, CSV, logs)"
    try:
        if not path.is_file():
            raise AssistantError(f"{path}: not a file" if path.exists() else f"{path}: no such file", hint)
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise AssistantError(f"{path.name} is {size:,} bytes, more than {MAX_BYTES:,}", "attach a smaller part")
        with path.open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise AssistantError(
            f"{path}: cannot read: {exc.strerror or exc}", "check the path and its permissions"
        ) from None
    if b"\0" in data:
        raise AssistantError(f"{path.name} is a binary file", hint)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise AssistantError(f"{path.name} is not UTF-8 text", hint) from None
    return Attachment(path.name, text, fenced(path.name, text))


def fenced(name: str, text: str) -> str:
    """``text`` under its file name, in a fence no backtick run inside it can close."""
    longest = max((len(m.group()) for m in _BACKTICKS.finditer(text)), default=2)
    fence = "`" * (longest + 1)
    language = Path(name).suffix.lstrip(".").lower()
    language = language if language.isalnum() else ""
    return f"{name}:\n{fence}{language}\n{text.rstrip()}\n{fence}\n"


def command_path(text: str) -> str | None:
    """The path of an ``/attach PATH`` first line ("" when it names none), or None when ``text`` is no such
    command."""
    first = text.split("\n", 1)[0].strip()
    match = _COMMAND.match(first)
    if match is None:
        return None
    return (match.group("path") or "").strip().strip("'\"")
