"""OpenAI-style error bodies, ``{"error": {"message", "type", "param", "code"}}``, for every failure.

Clients (the ``openai`` package, Open WebUI, editors) show ``error.message`` to the user and branch on the
status, so every failure -- bad JSON, a wrong type, an unknown model, a crash -- gets one of these with the
right status, never a traceback or FastAPI's own 422 shape.
"""

from __future__ import annotations

from typing import Any

from ..errors import AssistantError, one_line


class APIError(Exception):
    """A failure the client caused or can act on, with the HTTP status it maps to."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def not_found_model(model: str, detail: str | None = None) -> APIError:
    """Unknown or not installed: the message says how to get it (the id is echoed back as plain text in JSON)."""
    return APIError(
        404,
        detail or f"model '{model}' is not installed (run 'assistant models pull {model}')",
        param="model",
        code="model_not_found",
    )


# AssistantError messages the domain raises, by the phrase that says what kind of failure it is.
_CONTEXT_PHRASES = ("too long for", "the context holds", "prompt is 0 tokens")
_MODEL_PHRASES = ("is not installed", "is gone", "unknown model", "not in the catalog", "is a speech model")


def from_domain(exc: AssistantError, model: str | None = None) -> APIError:
    """Map a domain failure to a status: a prompt over the context or a grammar llama.cpp cannot parse is the
    client's (400), a model that will not
    fit in memory is 507, a missing model 404, anything else the server's (500)."""
    text = one_line(exc)
    if any(p in text for p in _CONTEXT_PHRASES):
        return APIError(400, text, param="messages", code="context_length_exceeded")
    if "could not parse the grammar" in text:
        return APIError(400, text, param="response_format", code="invalid_schema")
    if "won't fit in memory" in text:
        return APIError(507, text, type="server_error", code="insufficient_memory")
    if any(p in text for p in _MODEL_PHRASES):
        return not_found_model(model or "", text)
    return APIError(500, text, type="server_error")
