"""The domain is headless: nothing outside assistant/ui imports Textual, and `--help` imports nothing heavy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "assistant"
HEADLESS = sorted(
    ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)
    for p in PACKAGE.rglob("*.py")
    if "ui" not in p.relative_to(PACKAGE).parts and p.name != "__main__.py"
)


@pytest.mark.parametrize("module", HEADLESS)
def test_headless_module_does_not_import_textual(module: str) -> None:
    code = f"import sys, {module}; sys.exit(1 if any(m == 'textual' or m.startswith('textual.') for m in sys.modules) else 0)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"{module} imports textual\n{result.stderr}"


def loaded_after(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport sys\nprint('LOADED', [m for m in {modules!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert "LOADED" in result.stdout, result.stdout + result.stderr
    return list(ast.literal_eval(result.stdout.split("LOADED", 1)[1].strip()))


def test_help_imports_nothing_heavy() -> None:
    code = "from assistant.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    heavy = ("llama_cpp", "faster_whisper", "textual", "huggingface_hub", "numpy", "ctranslate2")
    assert loaded_after(code, heavy) == []


def test_first_frame_imports_only_textual() -> None:
    """What bare `assistant` loads before its first frame: no click, no pydantic (config.toml is validated
    just after the frame), no model runtime. Each would add tens of milliseconds to the first paint."""
    code = "import assistant.cli, assistant.cli.tui, assistant.ui.app"
    heavy = ("click", "pydantic", "llama_cpp", "faster_whisper", "huggingface_hub", "numpy")
    assert loaded_after(code, heavy) == []
