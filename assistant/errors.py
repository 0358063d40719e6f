"""The one exception type fronts turn into a one-line message (a traceback only with ``--debug``)."""

from __future__ import annotations


class AssistantError(Exception):
    """A failure the user can act on. ``hint`` says what to do next."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class Cancelled(AssistantError):
    """Work stopped by the user (Ctrl+C, Esc); whatever was half-done has been cleaned up."""

    def __init__(self, message: str = "cancelled") -> None:
        super().__init__(message)
