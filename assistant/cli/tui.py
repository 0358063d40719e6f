"""Launch the Textual app (imported only when the TUI is opened)."""

from __future__ import annotations


def run_tui() -> None:
    from ..ui.app import run

    run()
