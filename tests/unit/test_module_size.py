"""No module in ``assistant/`` is above 600 lines: past that a module holds more than one concern (#12)."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "assistant"
MAX_LINES = 600


def _sizes() -> dict[str, int]:
    return {
        path.relative_to(PACKAGE).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def test_no_module_is_above_600_lines() -> None:
    sizes = _sizes()
    assert sizes, f"no modules found under {PACKAGE}"
    too_long = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not too_long, f"above {MAX_LINES} lines (split by concern): {too_long}"
