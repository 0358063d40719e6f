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


def one_line(error: BaseException | None, *, typed: bool = False, empty: str | None = None) -> str:
    """How a failure becomes one line for the user: the first line of its message, never a traceback.

    ``typed`` prefixes the exception's class name (``OSError: …``) unless it is an :class:`AssistantError`,
    whose message was written for the user. A failure without a message gives ``empty`` if given, else the
    class name, so the line is never blank by accident.
    """
    if error is None:
        return "unknown error" if empty is None else empty
    if isinstance(error, AssistantError):
        return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    lines = str(error).strip().splitlines()
    if not lines:
        return type(error).__name__ if empty is None else empty
    return f"{type(error).__name__}: {lines[0]}" if typed else lines[0]
