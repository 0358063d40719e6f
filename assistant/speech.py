"""Speech to text: ``Transcriber.transcribe(audio) -> Transcript`` (an iterator of ``Segment``s) on faster-whisper.

The model is a CTranslate2 folder from the store (``whisper-tiny.en:int8`` by default). Audio is a path (any
format PyAV decodes: wav, flac, mp3, ogg, m4a...) or a float32 mono 16 kHz numpy array. Inputs are checked
*before* faster-whisper sees them, so a missing, empty or corrupt file is one line naming that file rather
than an FFmpeg traceback. Output formats (txt, srt, vtt, json) and the word-error-rate evaluation used by the
tests and benchmarks live here too, so every front shares them.

numpy, faster_whisper and jiwer are imported inside functions: importing this module stays cheap.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .config import SpeechSettings
from .errors import AssistantError, one_line

if TYPE_CHECKING:
    import numpy as np

    from .config import Settings

SAMPLE_RATE = 16_000
FRAMES_PER_SECOND = 100  # Whisper's mel frames (10 ms hop)
WINDOW_FRAMES = 3000  # Whisper's 30 s window
# Whisper was trained on 30 s windows padded with silence; with less than ~2 s of that padding after
# the speech it can fail to see the end and loop ("... to bed. Turn off the lights ..." over and over).
# Measured on the shipped clips plus 20 more: 2-4 s of padding is as accurate as 30 s (WER +0.003).
MIN_AUDIO_CONTEXT = 2.0
MIN_CONTEXT_FRAMES = 1000  # never encode under 10 s: short clips need the padding most
CLIPS_DIR = Path(__file__).resolve().parent / "data" / "speech"
Format = Literal["txt", "srt", "vtt", "json"]
FORMATS: tuple[Format, ...] = ("txt", "srt", "vtt", "json")


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str
    probability: float = 1.0


@dataclass
class Segment:
    """A stretch of speech with its times in seconds from the start of the audio."""

    start: float
    end: float
    text: str
    words: list[Word] | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.words is None:
            data.pop("words")
        return data


@dataclass
class TranscriptInfo:
    duration: float  # seconds of audio
    language: str
    language_probability: float
    speech_duration: float  # seconds left after the VAD removed silence


class Transcript:
    """The segments of one transcription, decoded lazily as you iterate; ``info`` is known at once."""

    def __init__(self, segments: Iterator[Segment], info: TranscriptInfo) -> None:
        self._segments = segments
        self.info = info

    def __iter__(self) -> Iterator[Segment]:
        return self._segments

    def text(self) -> str:
        """Drain the remaining segments into one string."""
        return join_text(s.text for s in self)


class TranscribeOptions(BaseModel):
    """Per-call decoding options; unknown keys are an error rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")

    beam_size: int = Field(default=SpeechSettings.model_fields["beam_size"].default, ge=1, le=20)
    vad: bool = True
    word_timestamps: bool = False
    language: str | None = None
    initial_prompt: str | None = None  # text said before this audio: context, not output
    prefix: str | None = None  # text this audio is known to start with: forced, then continued
    timestamps: bool = True  # False skips timestamp tokens (one segment, slightly faster)
    # Seconds of silence the encoder sees after the audio; None = Whisper's full 30 s window. See
    # ``Transcriber.transcribe``: much faster on short audio, for dictation.
    audio_context: float | None = Field(default=None, ge=MIN_AUDIO_CONTEXT, le=30.0)

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str | None) -> str | None:
        """A code Whisper knows (``en``, ``de``...): an unknown one would be ignored or fail deep in decoding."""
        if value is None:
            return None
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        code = value.strip().lower()
        if code not in _LANGUAGE_CODES:
            raise ValueError(f"unknown language code {value!r} (use a code like en, de, fr, es, ja)")
        return code


def join_text(pieces: Iterable[str]) -> str:
    return " ".join(p.strip() for p in pieces if p.strip())


# -- audio input -------------------------------------------------------------------------------------------


def load_audio(audio: str | Path | np.ndarray) -> np.ndarray:
    """Audio as float32 mono 16 kHz samples; any unusable input is an AssistantError naming it."""
    import numpy as np

    if isinstance(audio, np.ndarray):
        return _check_array(audio)
    path = Path(audio)
    size = _regular_file_size(path)
    if size == 0:
        raise AssistantError(f"{path}: empty file")
    samples = _decode(path)
    if samples.size == 0:
        raise AssistantError(f"{path}: no audio in it (zero length)")
    return samples


def _regular_file_size(path: Path) -> int:
    """The size of ``path``, a readable regular file. Opened without blocking and checked on the open file:
    a FIFO (or a device such as /dev/zero, a socket) would block the decoder forever or never end."""
    import os
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise AssistantError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise AssistantError(f"{path}: is a directory, not an audio file") from None
    except OSError as exc:
        raise AssistantError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    if stat.S_ISDIR(info.st_mode):
        raise AssistantError(f"{path}: is a directory, not an audio file")
    if not stat.S_ISREG(info.st_mode):
        raise AssistantError(
            f"{path}: not a regular file (a pipe, device or socket)", "save the audio to a file and pass that"
        )
    return info.st_size


def _decode(path: Path) -> np.ndarray:
    import av
    from faster_whisper.audio import decode_audio

    try:
        result = decode_audio(str(path), sampling_rate=SAMPLE_RATE)
    except IndexError:  # decode(audio=0) on a container without an audio stream (an image, a video-only file)
        raise AssistantError(f"{path}: no audio stream in it") from None
    except (av.FFmpegError, ValueError, EOFError, OSError) as exc:
        # FFmpeg errors repeat the path in str(exc); strerror is just the reason.
        detail = getattr(exc, "strerror", None) or one_line(exc)
        raise AssistantError(f"{path}: not an audio file or corrupt ({detail})") from None
    assert not isinstance(result, tuple)
    return result


def _check_array(audio: np.ndarray) -> np.ndarray:
    import numpy as np

    if audio.ndim != 1:
        raise AssistantError(f"audio must be mono (one dimension), got shape {audio.shape}")
    if audio.size == 0:
        raise AssistantError("audio is empty (zero samples)")
    if not np.issubdtype(audio.dtype, np.floating):
        raise AssistantError(f"audio must be float samples in [-1, 1], got {audio.dtype}")
    audio = audio.astype(np.float32, copy=False)
    if not np.isfinite(audio).all():
        raise AssistantError("audio contains NaN or infinite samples")
    return audio


# -- the transcriber ---------------------------------------------------------------------------------------


_DAMAGED_HINT = "the model folder is damaged: 'assistant models rm' it and pull or import it again"
# CTranslate2 Whisper vocabularies hold these; without them decoding fails on the first file, deep in generate().
_REQUIRED_TOKENS = ("<|startoftranscript|>", "<|endoftext|>")
_MIN_MODEL_BYTES = 1_000_000  # whisper-tiny int8 is ~40 MB; anything under 1 MB is a stub or a cut download


def check_model_folder(path: Path, model_id: str | None = None) -> None:
    """Refuse a CTranslate2 Whisper folder that is incomplete or damaged, before anything native reads it.

    Checks what can be checked cheaply: model.bin present and not a stub, config.json (and tokenizer.json,
    when there) valid JSON objects, and a vocabulary that holds Whisper's special tokens. A model.bin cut
    short further in is reported by CTranslate2 itself ("invalid payload size") without aborting.
    """
    name = f"model {model_id or path.name}"
    model_bin = path / "model.bin"
    if not model_bin.is_file():
        raise AssistantError(f"{name}: {path} is not a CTranslate2 Whisper folder (no model.bin)", _DAMAGED_HINT)
    try:
        if model_bin.stat().st_size < _MIN_MODEL_BYTES:
            raise AssistantError(f"{name}: {model_bin} is too small to be a model (cut short?)", _DAMAGED_HINT)
        for json_name in ("config.json", "tokenizer.json", "preprocessor_config.json"):
            file = path / json_name
            if json_name != "config.json" and not file.exists():
                continue
            try:
                if not isinstance(json.loads(file.read_bytes()), dict):
                    raise ValueError("not a JSON object")
            except (ValueError, UnicodeDecodeError) as exc:
                raise AssistantError(f"{name}: {file} is not valid JSON ({exc})", _DAMAGED_HINT) from None
        _check_vocabulary(path, name)
    except OSError as exc:
        raise AssistantError(f"{name}: cannot read {exc.filename or path}: {exc.strerror or exc}") from None


def _check_vocabulary(path: Path, name: str) -> None:
    for vocab in (path / "vocabulary.json", path / "vocabulary.txt"):
        if vocab.exists():
            text = vocab.read_bytes().decode("utf-8", "replace")
            missing = [token for token in _REQUIRED_TOKENS if token not in text]
            if missing:
                raise AssistantError(f"{name}: {vocab} is not a Whisper vocabulary (no {missing[0]})", _DAMAGED_HINT)
            return
    # no vocabulary file: CTranslate2 then takes it from model.bin (older conversions)


class Transcriber:
    """One loaded Whisper model. ``transcribe`` may be called many times (not from two threads at once)."""

    def __init__(
        self,
        model_path: Path,
        *,
        compute_type: str = "int8",
        threads: int = 0,
        options: TranscribeOptions | None = None,
        model_id: str | None = None,
    ) -> None:
        self.model_id = model_id or model_path.name
        self.model_path = model_path
        self.compute_type = compute_type
        self.threads = threads
        self.options = options or TranscribeOptions()
        check_model_folder(model_path, self.model_id)
        try:
            self._model = _model_class()(
                str(model_path), device="cpu", compute_type=compute_type, cpu_threads=threads, local_files_only=True
            )
        except Exception as exc:  # CTranslate2 raises RuntimeError/ValueError, the tokenizers library a bare Exception
            raise AssistantError(f"model {self.model_id}: cannot load: {one_line(exc)}", _DAMAGED_HINT) from None
        # said at load, not at the first pass: dictation would otherwise fail inside its thread mid-recording
        self._check_language(self.options.language)

    @classmethod
    def from_settings(
        cls,
        model_id: str | None = None,
        settings: Settings | None = None,
        *,
        compute_type: str | None = None,
        **overrides: Any,
    ) -> Transcriber:
        """Load ``model_id`` (default: config ``models.speech``) from the store with the configured options.

        The compute type is, first found: the argument, ``speech.compute_type`` if the user set it, the
        catalog variant's ``compute_type``, then the config default.
        """
        from . import catalog, config
        from .store import Store

        settings = settings or config.load()
        store = Store()
        try:
            installed = store.require(model_id or settings.models.speech)
        finally:
            store.conn.close()
        if installed.kind != "whisper":
            raise AssistantError(
                f"model {installed.id} is a {installed.kind} model, not a speech model",
                "pick a whisper model, e.g. whisper-tiny.en:int8",
            )
        speech = settings.speech
        if compute_type is None and "compute_type" not in speech.model_fields_set:
            variant = catalog.default().find(installed.id)
            compute_type = installed.info.get("compute_type") or (variant.entry.compute_type if variant else None)
        values: dict[str, Any] = {
            "beam_size": speech.beam_size,
            "vad": speech.vad,
            "word_timestamps": speech.word_timestamps,
            "language": speech.language,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            options = TranscribeOptions(**values)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise AssistantError(
                f"speech option {'.'.join(map(str, err['loc']))}: {err['msg'].removeprefix('Value error, ')}"
            ) from None
        return cls(
            installed.path,
            compute_type=compute_type or speech.compute_type,
            threads=settings.threads(),
            options=options,
            model_id=installed.id,
        )

    @property
    def multilingual(self) -> bool:
        return bool(self._model.model.is_multilingual)

    def transcribe(self, audio: str | Path | np.ndarray, **overrides: Any) -> Transcript:
        """Transcribe a file or a float32 16 kHz array; ``overrides`` are ``TranscribeOptions`` fields."""
        try:
            opts = TranscribeOptions.model_validate({**self.options.model_dump(), **overrides})
        except ValidationError as exc:
            err = exc.errors()[0]
            raise AssistantError(
                f"transcribe option {'.'.join(map(str, err['loc']))}: {err['msg'].removeprefix('Value error, ')}"
            ) from None
        samples = load_audio(audio)
        self._check_language(opts.language)
        # English-only models have nothing to detect; asking them to would only cost a pass.
        language = opts.language if self.multilingual else "en"
        encode_frames = None
        duration = len(samples) / SAMPLE_RATE
        if opts.audio_context is not None and duration + opts.audio_context < WINDOW_FRAMES / FRAMES_PER_SECOND:
            # The encoder costs the same for 1 s of speech as for 30: it always sees a padded 30 s window.
            # Cutting the padding down to audio_context seconds makes it several times faster.
            encode_frames = max(MIN_CONTEXT_FRAMES, int((duration + opts.audio_context) * FRAMES_PER_SECOND))
        segments, info = self._model.transcribe(
            samples,
            language=language,
            beam_size=opts.beam_size,
            vad_filter=opts.vad,
            word_timestamps=opts.word_timestamps,
            initial_prompt=opts.initial_prompt or None,
            prefix=opts.prefix or None,
            without_timestamps=not opts.timestamps,
        )
        return Transcript(
            _convert(segments, self._model, encode_frames),
            TranscriptInfo(
                duration=float(info.duration),
                language=info.language,
                language_probability=float(info.language_probability),
                speech_duration=float(info.duration_after_vad),
            ),
        )

    def _check_language(self, language: str | None) -> None:
        if not self.multilingual and language not in (None, "en"):
            raise AssistantError(
                f"model {self.model_id} understands English only, not {language!r}",
                "drop --language (or config speech.language), or use a multilingual model such as whisper-base:int8",
            )

    def close(self) -> None:
        """Free the model now instead of at garbage collection."""
        self.__dict__.pop("_model", None)


def _convert(segments: Iterable[Any], model: Any, encode_frames: int | None) -> Iterator[Segment]:
    # faster-whisper encodes lazily, while the segments are iterated: set the window for exactly then.
    model.encode_frames = encode_frames
    try:
        for s in segments:
            words = None
            if s.words is not None:
                words = [Word(float(w.start), float(w.end), w.word.strip(), float(w.probability)) for w in s.words]
            yield Segment(start=float(s.start), end=float(s.end), text=s.text.strip(), words=words)
    finally:
        model.encode_frames = None


@cache
def _model_class() -> type:
    """faster-whisper's WhisperModel, able to encode less than the padded 30 s window when asked."""
    from faster_whisper import WhisperModel

    class Model(WhisperModel):  # type: ignore[misc]
        encode_frames: int | None = None

        def encode(self, features: Any) -> Any:
            if self.encode_frames is not None and features.shape[-1] > self.encode_frames:
                features = features[..., : self.encode_frames]
            return super().encode(features)

    return Model


# -- output formats ----------------------------------------------------------------------------------------


def _timestamp(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{ms:03d}"


def format_txt(segments: list[Segment]) -> str:
    return join_text(s.text for s in segments) + "\n"


def format_srt(segments: list[Segment]) -> str:
    blocks = []
    for i, s in enumerate((s for s in segments if s.text), start=1):
        blocks.append(f"{i}\n{_timestamp(s.start, ',')} --> {_timestamp(max(s.end, s.start), ',')}\n{s.text}\n")
    return "\n".join(blocks)


def format_vtt(segments: list[Segment]) -> str:
    blocks = ["WEBVTT\n"]
    for s in segments:
        if s.text:
            blocks.append(f"{_timestamp(s.start, '.')} --> {_timestamp(max(s.end, s.start), '.')}\n{s.text}\n")
    return "\n".join(blocks)


def format_json(segments: list[Segment], info: TranscriptInfo, source: str) -> str:
    doc = {
        "file": source,
        "duration": round(info.duration, 3),
        "language": info.language,
        "text": join_text(s.text for s in segments),
        "segments": [s.to_json() for s in segments],
    }
    return json.dumps(doc, indent=2) + "\n"


def render(fmt: Format, segments: list[Segment], info: TranscriptInfo, source: str) -> str:
    if fmt == "srt":
        return format_srt(segments)
    if fmt == "vtt":
        return format_vtt(segments)
    if fmt == "json":
        return format_json(segments, info, source)
    return format_txt(segments)


# -- evaluation: the shipped clips and word error rate ------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    id: str
    path: Path
    text: str


def reference_clips(directory: Path = CLIPS_DIR) -> list[Clip]:
    """The espeak-ng clips shipped in ``assistant/data/speech`` with their reference transcripts."""
    doc = json.loads((directory / "clips.json").read_text(encoding="utf-8"))
    return [Clip(c["id"], directory / c["file"], c["text"]) for c in doc["clips"]]


def dictation_clip(directory: Path = CLIPS_DIR) -> Clip:
    """The ~5 s utterance used to measure dictation."""
    doc = json.loads((directory / "clips.json").read_text(encoding="utf-8"))
    return next(c for c in reference_clips(directory) if c.id == doc["dictation"])


_ONES = [
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    *("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"),
]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def _spell(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + _spell(rest))
    if n < 1_000_000:
        rest = n % 1000
        return _spell(n // 1000) + " thousand" + ("" if rest == 0 else " " + _spell(rest))
    return str(n)


def normalize_text(text: str) -> str:
    """Lower case, no punctuation, numbers spelled out: "At 3 o'clock." and "at three o'clock" compare equal."""
    text = text.lower().replace("-", " ")
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)  # 1,000 -> 1000
    text = re.sub(r"\d+", lambda m: f" {_spell(int(m.group()))} ", text)
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return " ".join(w.strip("'") for w in text.split() if w.strip("'"))


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER (jiwer) after ``normalize_text`` on both sides."""
    import jiwer

    refs = [normalize_text(r) for r in references]
    hyps = [normalize_text(h) for h in hypotheses]
    return float(jiwer.wer(refs, hyps))


@dataclass
class Evaluation:
    wer: float
    rtf: float  # seconds of compute per second of audio (lower is faster)
    audio_seconds: float
    elapsed_seconds: float
    hypotheses: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(
    transcriber: Transcriber,
    clips: list[Clip] | None = None,
    *,
    on_clip: Callable[[int, int], None] | None = None,
    **options: Any,
) -> Evaluation:
    """WER and real-time factor of ``transcriber`` over ``clips`` (default: the shipped clips).

    Decoding is timed from file to text (audio decode, VAD, model), as a user would wait for it.
    """
    clips = clips if clips is not None else reference_clips()
    hypotheses: list[str] = []
    audio_seconds = 0.0
    elapsed = 0.0
    for i, clip in enumerate(clips):
        started = time.perf_counter()
        transcript = transcriber.transcribe(clip.path, **options)
        hypotheses.append(transcript.text())
        elapsed += time.perf_counter() - started
        audio_seconds += transcript.info.duration
        if on_clip:
            on_clip(i + 1, len(clips))
    return Evaluation(
        wer=word_error_rate([c.text for c in clips], hypotheses),
        rtf=elapsed / audio_seconds if audio_seconds else 0.0,
        audio_seconds=audio_seconds,
        elapsed_seconds=elapsed,
        hypotheses=hypotheses,
    )


# -- voice activity ----------------------------------------------------------------------------------------


def speech_spans(samples: np.ndarray, *, min_silence: float = 0.25, pad: float = 0.1) -> list[tuple[float, float]]:
    """(start, end) seconds of speech in ``samples`` by the Silero VAD bundled with faster-whisper (~3 ms/s)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if samples.size < 512:  # one Silero window
        return []
    options = VadOptions(min_silence_duration_ms=int(min_silence * 1000), speech_pad_ms=int(pad * 1000))
    return [(c["start"] / SAMPLE_RATE, c["end"] / SAMPLE_RATE) for c in get_speech_timestamps(samples, options)]
