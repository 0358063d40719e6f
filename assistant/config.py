"""``config.toml`` read into typed, validated settings.

Every field carries a one-line description (shown by ``assistant config``). Unknown keys are rejected,
and a bad value produces an error naming the key, e.g. ``config.toml: chat.temperature: ...``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import paths
from .errors import AssistantError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSettings(_Section):
    chat: str = Field("smollm2-135m-instruct:q4_1", description="Default chat model id.")
    speech: str = Field("whisper-tiny.en:int8", description="Default speech-to-text model id.")
    hub_endpoint: str | None = Field(
        None, description="Hugging Face hub URL for pulls (default: $HF_ENDPOINT or huggingface.co)."
    )
    offline: bool = Field(False, description="Refuse every network access, explicit pulls included.")


class RuntimeSettings(_Section):
    threads: int | None = Field(None, ge=1, le=512, description="CPU threads for inference (default: physical cores).")
    context_size: int = Field(4096, ge=256, le=1_048_576, description="Context window in tokens.")
    batch_size: int = Field(512, ge=1, le=65_536, description="Prompt-processing batch size in tokens.")
    speculative: str = Field(
        "off",
        pattern=r"^(auto|lookup|off|draft:\S+)$",
        description="Speculative decoding: the next tokens are guessed and checked in one batch (greedy replies"
        " keep the model's own picks, sampled ones its distribution, by rejection sampling). 'lookup' drafts from"
        " the prompt and the reply so far; 'draft:ID' also asks the installed model ID, which must share the"
        " model's vocabulary (see 'assistant models info'); 'auto' is lookup plus a draft model when one small"
        " enough to pay is installed. The draft length follows how often drafts are accepted; none is made while"
        " they do not pay. Off by default: with SmolLM2 on 2 cores it gains little (benchmarks/speculative.py).",
    )


class Preset(_Section):
    """A named system prompt and sampling settings a chat can start from (unset fields: the [chat] defaults)."""

    system_prompt: str
    temperature: Annotated[float | None, Field(ge=0.0, le=5.0)] = None
    top_p: Annotated[float | None, Field(gt=0.0, le=1.0)] = None
    max_tokens: Annotated[int | None, Field(ge=1, le=1_048_576)] = None
    seed: int | None = None

    def options(self) -> dict[str, Any]:
        """The sampling settings it sets (a chat's ``options``)."""
        return self.model_dump(exclude={"system_prompt"}, exclude_none=True)


def _default_presets() -> dict[str, Preset]:
    return {
        "concise": Preset(system_prompt="Answer in one or two sentences. No preamble, no lists.", temperature=0.3),
        "explain-code": Preset(
            system_prompt="You explain code to a programmer: what it does, step by step, then any bug you see."
            " Quote the lines you talk about.",
            temperature=0.2,
            max_tokens=1024,
        ),
        "proofread": Preset(
            system_prompt="Correct the spelling, grammar and punctuation of the user's text. Reply with the"
            " corrected text only, keeping its meaning, tone and layout.",
            temperature=0.0,
        ),
    }


class ChatSettings(_Section):
    system_prompt: str = Field(
        "You are a helpful assistant. Answer briefly.", description="System prompt for new chats."
    )
    temperature: float = Field(0.7, ge=0.0, le=5.0, description="Sampling temperature (0 = greedy).")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling cut-off.")
    max_tokens: int = Field(512, ge=1, le=1_048_576, description="Longest reply, in tokens.")
    seed: int | None = Field(None, description="Sampling seed (unset = random).")
    presets: dict[str, Preset] = Field(
        default_factory=_default_presets,
        description="Named starting points for a chat's settings (the TUI's chat settings, Ctrl+S), e.g."
        " {concise = {system_prompt = '...', temperature = 0.3}}; these replace the shipped ones.",
    )


class SpeechSettings(_Section):
    compute_type: str = Field("int8", description="CTranslate2 compute type (int8, int8_float32, float32...).")
    beam_size: int = Field(2, ge=1, le=20, description="Beam width for transcription (1 = greedy, fastest).")
    vad: bool = Field(True, description="Skip silence with the Silero VAD bundled in faster-whisper.")
    language: str | None = Field(None, description="Spoken language code; unset = detect (multilingual models).")
    word_timestamps: bool = Field(False, description="Compute per-word timestamps.")
    auto_send: bool = Field(False, description="Send dictated text at once instead of leaving it for editing.")
    speak_replies: bool = Field(False, description="Read replies aloud with espeak-ng when it is installed.")
    pause: float = Field(
        1.0, ge=0.2, le=10.0, description="Voice mode and 'talk': seconds of silence that end what you say and send it."
    )
    barge_in: bool = Field(
        False,
        description="Voice mode: your speech interrupts the reading (for headphones; on loudspeakers the app would hear itself).",
    )
    input_device: str | None = Field(None, description="Microphone (sounddevice name or index); unset = default.")


class UISettings(_Section):
    theme: str = Field("textual-dark", description="Textual theme name.")
    keymap: dict[str, str] = Field(
        default_factory=dict, description="Binding id -> key overrides, e.g. {new_chat = 'ctrl+t'}."
    )


class Settings(_Section):
    models: ModelSettings = Field(default_factory=ModelSettings, description="Models and downloads.")  # type: ignore[arg-type]
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings, description="llama.cpp runtime.")  # type: ignore[arg-type]
    chat: ChatSettings = Field(default_factory=ChatSettings, description="Chat defaults.")  # type: ignore[arg-type]
    speech: SpeechSettings = Field(default_factory=SpeechSettings, description="Speech defaults.")  # type: ignore[arg-type]
    ui: UISettings = Field(default_factory=UISettings, description="Terminal UI.")  # type: ignore[arg-type]

    def threads(self) -> int:
        """Threads to use: the setting, or the physical core count (hyper-threads slow llama.cpp down)."""
        if self.runtime.threads:
            return self.runtime.threads
        import psutil

        return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def _format_error(source: Path, exc: ValidationError) -> str:
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    return f"{source}: {key}: {msg}"


def load(path: Path | None = None) -> Settings:
    """Read settings from ``path`` (default: the user's config.toml); a missing file means defaults."""
    source = path or paths.config_file()
    data: dict[str, Any] = {}
    if source.exists():
        try:
            data = tomllib.loads(source.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise AssistantError(f"{source}: not valid TOML: {exc}", "fix or delete the file") from None
        except OSError as exc:
            raise AssistantError(f"{source}: cannot read: {exc.strerror}") from None
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise AssistantError(_format_error(source, exc), "fix that key or remove it") from None


def with_speculative(settings: Settings, value: str) -> Settings:
    """``settings`` with runtime.speculative = ``value`` (``--speculative``), checked as the config file is."""
    try:
        runtime = RuntimeSettings.model_validate({**settings.runtime.model_dump(), "speculative": value})
    except ValidationError:
        raise AssistantError(
            f"--speculative {value!r}: not one of auto, lookup, off, draft:ID", "e.g. --speculative lookup"
        ) from None
    return settings.model_copy(update={"runtime": runtime})


def describe() -> list[tuple[str, str, Any]]:
    """(key, description, default) for every setting: documentation generated from the model itself."""
    rows: list[tuple[str, str, Any]] = []
    for section_name, section_field in Settings.model_fields.items():
        section_type = section_field.annotation
        assert isinstance(section_type, type) and issubclass(section_type, BaseModel)
        for name, field in section_type.model_fields.items():
            default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
            rows.append((f"{section_name}.{name}", field.description or "", default))
    return rows
