"""Fixtures for the hostile-input suite: crafted GGUFs made from the real starter model, never committed.

``craft(name=..., chat_template=..., ...)`` copies the starter SmolLM2 GGUF through the ``gguf`` package's
``gguf-new-metadata`` with the metadata changed, and returns the new file (cached per test session, so a
test that needs the same crafted file as another pays for the copy once).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import SMOL

_FLAGS = {
    "name": "--general-name",
    "description": "--general-description",
    "chat_template": "--chat-template",
    "pre_tokenizer": "--pre-tokenizer",
}


@pytest.fixture(scope="session")
def craft(starter_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Make a copy of the starter GGUF with new metadata: ``craft(name="[/]evil", chat_template="...")``.

    ``remove`` is a list of metadata keys to drop (``tokenizer.chat_template`` makes a base model).
    """
    out_dir = tmp_path_factory.mktemp("crafted")
    made: dict[str, Path] = {}

    def _craft(*, remove: tuple[str, ...] | list[str] = (), src: Path | None = None, **fields: str) -> Path:
        source = src or starter_files[SMOL]
        args: list[str] = []
        for key, value in sorted(fields.items()):
            if key not in _FLAGS:
                raise TypeError(f"craft() has no field {key!r}; known: {sorted(_FLAGS)}")
            args += [_FLAGS[key], value]
        for key in remove:
            args += ["--remove-metadata", key]
        digest = hashlib.sha256(repr((str(source), args)).encode("utf-8", "surrogatepass")).hexdigest()[:16]
        if digest in made:
            return made[digest]
        target = out_dir / f"crafted-{digest}.gguf"
        subprocess.run(
            [sys.executable, "-m", "gguf.scripts.gguf_new_metadata", "--force", *args, str(source), str(target)],
            check=True,
            capture_output=True,
            timeout=300,
        )
        made[digest] = target
        return target

    return _craft
