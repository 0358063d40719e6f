"""The footer: the app's keys, there in the first frame."""

from __future__ import annotations

from textual.widgets import Footer


class KeyFooter(Footer):
    """Textual's Footer, with its keys in the first frame: the stock one composes them only after the
    bindings-changed signal, a few repaints later (50-60 ms of first paint here). It relies on Footer's
    ``_bindings_ready`` flag; a test checks the keys are there at mount, so a Textual change shows up."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.set_reactive(Footer._bindings_ready, True)
