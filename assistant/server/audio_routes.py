"""OpenAI's audio API: ``/v1/audio/transcriptions`` (faster-whisper, the same loader, options and formats as
``assistant transcribe``) and ``/v1/audio/speech`` (espeak-ng, WAV).

The upload is written to a private temporary file that the server names itself (no route reads a path from
the request) and decoded by the same ``speech.load_audio`` the CLI uses, so a file that is not audio is a 400
with the decoder's one-line reason.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import PlainTextResponse, Response

from ..errors import AssistantError, one_line
from .errors import APIError
from .reply import Server
from .schemas import SpeechRequest

router = APIRouter(prefix="/v1/audio")

# Longest audio one request may transcribe: a long meeting, not an unbounded job.
MAX_AUDIO_SECONDS = 2 * 3600
# OpenAI's voice names: clients send one by default; espeak-ng knows none of them, so they mean "the default".
OPENAI_VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse"}
)
ESPEAK_WPM = 175  # espeak-ng's default rate, OpenAI's speed 1.0
FORMATS = ("json", "text", "srt", "vtt", "verbose_json")


@router.post("/transcriptions")
async def transcriptions(
    request: Request,
    file: UploadFile = File(...),  # noqa: B008  (FastAPI's way of declaring a form field)
    model: str = Form("whisper-1"),
    language: str | None = Form(None),
    prompt: str | None = Form(None),
    response_format: str = Form("json"),
    timestamp_granularities: list[str] | None = Form(None, alias="timestamp_granularities[]"),  # noqa: B008
    temperature: float | None = Form(None),
) -> Any:
    if response_format not in FORMATS:
        raise APIError(400, f"response_format must be one of {', '.join(FORMATS)}", param="response_format")
    pool = Server.of(request).pool
    # "whisper-1" (what OpenAI clients send) and any name we do not have as a speech model: the configured one
    speech_ids = {m.id for m in pool.installed("whisper")}
    wanted = model if model in speech_ids else None
    words = "word" in (timestamp_granularities or [])
    data = await file.read()
    request.state.model = wanted or pool.settings.models.speech
    segments, info = await asyncio.to_thread(_transcribe, pool, wanted, data, language, prompt, words)
    from .. import speech

    text = speech.join_text(s.text for s in segments)
    if response_format == "text":
        return PlainTextResponse(text + "\n")
    if response_format in ("srt", "vtt"):
        return PlainTextResponse(speech.render(response_format, segments, info, file.filename or "audio"))  # type: ignore[arg-type]
    if response_format == "json":
        return {"text": text}
    return {
        "task": "transcribe",
        "language": info.language,
        "duration": round(info.duration, 3),
        "text": text,
        "segments": [_segment(i, s) for i, s in enumerate(segments)],
        **({"words": [_word(w) for s in segments for w in s.words or []]} if words else {}),
    }


def _segment(i: int, s: Any) -> dict[str, Any]:
    return {
        "id": i,
        "seek": 0,
        "start": s.start,
        "end": s.end,
        "text": s.text,
        "tokens": [],
        "temperature": 0.0,
        "avg_logprob": 0.0,
        "compression_ratio": 0.0,
        "no_speech_prob": 0.0,
    }


def _word(w: Any) -> dict[str, Any]:
    return {"word": w.text.strip(), "start": w.start, "end": w.end}


def _transcribe(
    pool: Any, model: str | None, data: bytes, language: str | None, prompt: str | None, words: bool
) -> tuple[list[Any], Any]:
    """In a helper thread: decode the upload, then transcribe it with the pool's (locked) Whisper model."""
    from .. import speech

    if not data:
        raise APIError(400, "the uploaded file is empty", param="file")
    with tempfile.TemporaryDirectory(prefix="assistant-serve-") as folder:
        path = Path(folder) / "upload"
        path.write_bytes(data)
        try:
            samples = speech.load_audio(path)
        except AssistantError as exc:
            reason = one_line(exc).replace(str(path), "the uploaded file").removeprefix("the uploaded file: ")
            raise APIError(400, f"not usable audio: {reason}", param="file", code="invalid_audio") from None
    if len(samples) / speech.SAMPLE_RATE > MAX_AUDIO_SECONDS:
        raise APIError(413, f"audio over {MAX_AUDIO_SECONDS // 60} minutes", param="file", code="audio_too_long")
    try:
        with pool.transcribing(model) as transcriber:
            overrides: dict[str, Any] = {"word_timestamps": words}
            if language:
                overrides["language"] = language
            if prompt:
                overrides["initial_prompt"] = prompt
            transcript = transcriber.transcribe(samples, **overrides)
            return list(transcript), transcript.info
    except AssistantError as exc:
        raise APIError(400, one_line(exc), param="language" if language else None) from None


@router.post("/speech")
async def speech_route(request: Request, body: SpeechRequest) -> Response:
    request.state.model = "espeak-ng"
    voice = None if body.voice is None or body.voice.lower() in OPENAI_VOICES else body.voice
    wpm = round(ESPEAK_WPM * body.speed) if body.speed else None
    audio = await asyncio.to_thread(_speak, body.input, voice, wpm)
    return Response(audio, media_type="audio/wav")


def _speak(text: str, voice: str | None, wpm: int | None) -> bytes:
    from .. import tts

    if not tts.available():
        raise APIError(503, f"cannot speak: espeak-ng is not installed ({tts.INSTALL_HINT})", type="server_error")
    with tempfile.TemporaryDirectory(prefix="assistant-serve-") as folder:
        path = Path(folder) / "speech.wav"
        try:
            tts.synthesize(tts.clean(text) or text, path, voice=voice, speed=wpm)
        except AssistantError as exc:
            raise APIError(400, one_line(exc), param="voice") from None
        return path.read_bytes()
