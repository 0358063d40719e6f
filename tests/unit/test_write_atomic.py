"""``paths.write_text_atomic``: the one atomic write every front uses, and its one way of refusing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from assistant import paths
from assistant.errors import AssistantError


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return paths.ensure(tmp_path / "exports")


def test_writes_privately_and_replaces_whole(folder: Path) -> None:
    target = folder / "out.md"
    target.write_text("old")
    paths.write_text_atomic(target, "new")
    assert target.read_text() == "new" and (target.stat().st_mode & 0o777) == 0o600
    assert [p.name for p in folder.iterdir()] == ["out.md"]  # no temp file left


@pytest.mark.parametrize("where", ["missing", "under-a-file"])
def test_a_folder_that_is_not_there_is_named(folder: Path, where: str) -> None:
    (folder / "a-file").write_text("x")
    missing = folder / ("missing" if where == "missing" else "a-file")
    with pytest.raises(AssistantError, match="no such folder") as caught:
        paths.write_text_atomic(missing / "out.md", "text")
    assert str(missing) in str(caught.value)


def test_a_target_that_is_not_a_regular_file_is_refused(folder: Path) -> None:
    fifo = folder / "fifo"
    os.mkfifo(fifo)
    (folder / "sub").mkdir()
    for target in (fifo, folder / "sub"):
        with pytest.raises(AssistantError, match="not a regular file"):
            paths.write_text_atomic(target, "text")
    assert sorted(p.name for p in folder.iterdir()) == ["fifo", "sub"]  # nothing replaced, no temp file
