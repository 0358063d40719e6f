"""Numbers as people read them, shared by every front (CLI, TUI, bench reports)."""

from __future__ import annotations


def human_size(n: int | float | None) -> str:
    """Bytes in decimal units, as disk tools and download pages show them: ``98.4 MB``."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"
