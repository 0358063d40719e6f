"""The one place a worker failure becomes visible: a one-line notification, never a traceback.

Worker state messages do not bubble: each node that starts workers hands its ``Worker.StateChanged`` to
``report_failure`` and then cleans up what is its own (a screen re-enables its button, the conversation
marks the reply partial). Nothing here knows the app, so screens and widgets can call it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.worker import Worker, WorkerState

from .. import errors

if TYPE_CHECKING:
    from textual.app import App
    from textual.widget import Widget

# worker group -> the notification's title
WORKER_LABELS = {
    "generate": "reply failed",
    "model": "model load failed",
    "download": "download failed",
    "chats": "chat history",
    "db": "saving failed",
    "startup": "startup",
    "model-list": "model list",
    "dictation": "dictation",
}


def report_failure(node: App[Any] | Widget, event: Worker.StateChanged) -> str | None:
    """Notify the user if ``event`` is a failure (an information if they stopped it themselves, an error
    otherwise) and return the line shown; None for any other state change."""
    if event.state != WorkerState.ERROR:
        return None
    worker = event.worker
    line = errors.one_line(worker.error, typed=True)
    label = WORKER_LABELS.get(worker.group) or worker.group or ""
    if isinstance(worker.error, errors.Cancelled):  # the user stopped it: not an error
        node.notify(line, title=label, timeout=4)
    else:
        node.notify(line, title=label, severity="error", timeout=8)
    return line
