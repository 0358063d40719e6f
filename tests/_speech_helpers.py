"""Helpers for the speech tests: strict SRT/WebVTT parsers, WAV writing, joined clips, waiting on conditions."""

from __future__ import annotations

import re
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.speech import SAMPLE_RATE, Clip, load_audio, reference_clips

# Measured WER of whisper-tiny.en int8 with the default settings (beam 2, VAD) on the shipped clips: 0.072
# (beam 1: 0.098, beam 5: 0.072). The threshold leaves room for CTranslate2/CPU differences, not for a
# broken pipeline: a wrong sample rate, language or decoding setting pushes it past 0.3.
WER_THRESHOLD = 0.12


@dataclass
class Cue:
    start: float
    end: float
    text: str


_SRT_TIME = re.compile(r"^(\d{2}):(\d{2}):(\d{2}),(\d{3}) --> (\d{2}):(\d{2}):(\d{2}),(\d{3})$")
_VTT_TIME = re.compile(r"^(?:(\d{2,}):)?(\d{2}):(\d{2})\.(\d{3}) --> (?:(\d{2,}):)?(\d{2}):(\d{2})\.(\d{3})(?: .*)?$")


def _seconds(h: str | None, m: str, s: str, ms: str) -> float:
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def parse_srt(text: str) -> list[Cue]:
    """SubRip, strictly: numbered blocks counting from 1, 'HH:MM:SS,mmm --> HH:MM:SS,mmm', text, blank line."""
    cues = []
    blocks = text.strip("\n").split("\n\n")
    for n, block in enumerate(blocks, start=1):
        lines = block.split("\n")
        assert len(lines) >= 3, f"block {n} too short: {block!r}"
        assert lines[0] == str(n), f"block {n} numbered {lines[0]!r}"
        match = _SRT_TIME.match(lines[1])
        assert match, f"bad SRT timing line {lines[1]!r}"
        g = match.groups()
        start, end = _seconds(*g[0:4]), _seconds(*g[4:8])
        assert 0 <= start <= end, lines[1]
        body = "\n".join(lines[2:])
        assert body.strip(), f"block {n} has no text"
        cues.append(Cue(start, end, body))
    return cues


def parse_vtt(text: str) -> list[Cue]:
    """WebVTT, strictly: the 'WEBVTT' header line, a blank line, then cues (optional id line, timing, text)."""
    head, _, rest = text.partition("\n\n")
    first = head.splitlines()[0] if head else ""
    assert first == "WEBVTT" or first.startswith("WEBVTT "), f"no WEBVTT header: {text[:20]!r}"
    cues = []
    for block in [b for b in rest.strip("\n").split("\n\n") if b.strip()]:
        lines = block.split("\n")
        if "-->" not in lines[0]:
            lines = lines[1:]  # a cue identifier
        match = _VTT_TIME.match(lines[0])
        assert match, f"bad WebVTT timing line {lines[0]!r}"
        g = match.groups()
        start, end = _seconds(*g[0:4]), _seconds(*g[4:8])
        assert 0 <= start <= end, lines[0]
        body = "\n".join(lines[1:])
        assert body.strip() and "-->" not in body, f"bad cue text {body!r}"
        cues.append(Cue(start, end, body))
    return cues


def write_wav(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def joined_clips(path: Path, clips: list[Clip] | None = None, gap: float = 0.6) -> tuple[Path, str]:
    """Several shipped clips in one WAV with pauses between them, and the joined reference text."""
    clips = clips if clips is not None else reference_clips()
    silence = np.zeros(int(gap * SAMPLE_RATE), dtype=np.float32)
    parts: list[np.ndarray] = []
    for clip in clips:
        parts += [load_audio(clip.path), silence]
    return write_wav(path, np.concatenate(parts)), " ".join(c.text for c in clips)
