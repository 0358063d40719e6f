"""Request bodies of the OpenAI and Ollama routes, validated before any model is touched.

Fields clients send that do not change what we generate (``user``, ``tools`` left empty, ``logprobs`` false,
Ollama's ``think``) are accepted and ignored, as OpenAI's and Ollama's own servers accept them: a strict
"unknown key" error here would break clients that always send them. Wrong types and out-of-range values are
errors (400). A field we cannot honour (``n`` > 1) is an error too, never silently dropped.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..chat import Message

# OpenAI's limits (a stop list of at most 4 strings); the token limit is clamped to the context later.
MAX_STOPS = 4


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(_Body):
    type: Literal["text"]
    text: str


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

    def to_message(self) -> Message:
        """``developer`` is OpenAI's newer name for ``system``; a list of text parts is joined."""
        content = self.content
        text = "".join(p.text for p in content) if isinstance(content, list) else content or ""
        return Message("system" if self.role == "developer" else self.role, text)


class JSONSchemaFormat(_Body):
    name: str = "response"
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Body):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class StreamOptions(_Body):
    include_usage: bool = False


class Sampling(_Body):
    """What OpenAI's chat and completion requests share."""

    model: str = Field(min_length=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int = Field(1, ge=1, le=1)
    stream: bool = False
    stream_options: StreamOptions | None = None

    @field_validator("stop")
    @classmethod
    def _few_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > MAX_STOPS:
            raise ValueError(f"at most {MAX_STOPS} stop sequences")
        return value

    def stops(self) -> list[str]:
        stop = self.stop
        return [s for s in ([stop] if isinstance(stop, str) else stop or []) if s]


class ChatCompletionRequest(Sampling):
    messages: list[ChatMessage]
    max_completion_tokens: int | None = Field(None, ge=1)
    response_format: ResponseFormat | None = None


class CompletionRequest(Sampling):
    prompt: str
    echo: bool = False


class EmbeddingRequest(_Body):
    model: str = Field(min_length=1)
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"


class SpeechRequest(_Body):
    model: str = "espeak-ng"
    input: str = Field(min_length=1)
    voice: str | None = None
    response_format: Literal["wav"] = "wav"
    speed: float | None = Field(None, ge=0.25, le=4.0)


# -- Ollama -------------------------------------------------------------------------------------------


class OllamaOptions(_Body):
    """The subset of Ollama's model options that changes sampling here; the rest (num_ctx, mirostat...) is
    accepted and ignored, as Ollama itself ignores options a model does not use."""

    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    num_predict: int | None = None
    seed: int | None = None
    stop: list[str] | None = None


class OllamaMessage(_Body):
    role: Literal["system", "user", "assistant"]
    content: str = ""


class OllamaBase(_Body):
    model: str = Field(min_length=1)
    stream: bool = True
    options: OllamaOptions | None = None
    format: Literal["", "json"] | dict[str, Any] | None = None
    keep_alive: float | str | None = None


class OllamaChatRequest(OllamaBase):
    messages: list[OllamaMessage] = Field(default_factory=list)


class OllamaGenerateRequest(OllamaBase):
    prompt: str = ""
    system: str | None = None
    raw: bool = False


class OllamaEmbedRequest(_Body):
    model: str = Field(min_length=1)
    input: str | list[str]
    keep_alive: float | str | None = None


class OllamaModelRequest(_Body):
    model: str = Field(min_length=1)
