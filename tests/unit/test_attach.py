"""Attaching a text file: the fenced block, and every refusal in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant import attach
from assistant.errors import AssistantError


def test_a_text_file_becomes_a_fenced_block_under_its_name(tmp_path: Path) -> None:
    notes = tmp_path / "notes.py"
    notes.write_text("print('hi')\n", encoding="utf-8")
    found = attach.read(notes)
    assert found.name == "notes.py" and found.size == 12
    assert found.block == "notes.py:\n```py\nprint('hi')\n```\n"


def test_backticks_in_the_file_cannot_close_the_fence() -> None:
    block = attach.fenced("README.md", "text\n````bash\nrm -rf /\n````\nmore")
    assert block.startswith("README.md:\n`````md\n") and block.endswith("\nmore\n`````\n")
    assert attach.fenced("odd name.t-x-t", "x").startswith("odd name.t-x-t:\n```\nx")  # no odd language tag


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"\x7fELF\x02\x01\x01\x00\x00\x00", "is a binary file"),
        (b"caf\xe9 latin-1", "is not UTF-8 text"),
        (b"x" * (attach.MAX_BYTES + 1), "more than 1,000,000"),
    ],
)
def test_binary_foreign_and_huge_files_are_refused(tmp_path: Path, content: bytes, why: str) -> None:
    path = tmp_path / "file.txt"
    path.write_bytes(content)
    with pytest.raises(AssistantError, match=why) as info:
        attach.read(path)
    assert "\n" not in info.value.message


def test_missing_paths_and_folders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AssistantError, match="no such file"):
        attach.read(tmp_path / "gone.txt")
    with pytest.raises(AssistantError, match="not a file"):
        attach.read(tmp_path)


def test_the_attach_command() -> None:
    assert attach.command_path("/attach notes.txt") == "notes.txt"
    assert attach.command_path("/attach  'my notes.txt'\nand a question") == "my notes.txt"
    assert attach.command_path("/attach") == ""
    assert attach.command_path("/attachment is not a command") is None
    assert attach.command_path("please /attach x") is None
