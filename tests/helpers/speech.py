"""Helpers for the speech tests: strict SRT/WebVTT parsers, WAV writing, joined clips, per-sentence alignment."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.bench.clips import write_wav
from assistant.speech import SAMPLE_RATE, Clip, load_audio, normalize_text, reference_clips

from conftest import cannot_run

# Measured WER of whisper-tiny.en int8 with the default settings (beam 2, VAD) on the shipped clips: 0.072
# (beam 1: 0.098, beam 5: 0.072). The threshold leaves room for CTranslate2/CPU differences, not for a
# broken pipeline: a wrong sample rate, language or decoding setting pushes it past 0.3.
WER_THRESHOLD = 0.12


def skip_unless(ok: bool, reason: str) -> None:
    """``cannot_run(reason)`` (skip locally, fail under CI=true) when ``ok`` is false."""
    if not ok:
        cannot_run(reason)


def require_tools(*tools: str, install: str) -> None:
    """``cannot_run`` unless every one of ``tools`` is on PATH; ``install`` says how to get them."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    skip_unless(not missing, f"{', '.join(missing)} not installed ({install})")


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


def joined_clips(path: Path, clips: list[Clip] | None = None, gap: float = 0.6) -> tuple[Path, str]:
    """Several shipped clips in one WAV with pauses between them, and the joined reference text."""
    clips = clips if clips is not None else reference_clips()
    silence = np.zeros(int(gap * SAMPLE_RATE), dtype=np.float32)
    parts: list[np.ndarray] = []
    for clip in clips:
        parts += [load_audio(clip.path), silence]
    return write_wav(path, np.concatenate(parts)), " ".join(c.text for c in clips)


def split_by_reference(references: list[str], hypothesis: str) -> list[str]:
    """The hypothesis cut into one piece per reference sentence, by a word-level edit-distance alignment.

    Both sides are ``normalize_text``-ed. A hypothesis word goes to the sentence of the reference word it is
    aligned with; an inserted word to the sentence of the reference word before it. So a sentence said
    twice shows up as one piece twice as long, and a lost sentence as an empty piece.
    """
    ref: list[tuple[int, str]] = [(n, w) for n, text in enumerate(references) for w in normalize_text(text).split()]
    hyp = normalize_text(hypothesis).split()
    rows, cols = len(ref) + 1, len(hyp) + 1
    cost = [[0] * cols for _ in range(rows)]
    for i in range(rows):
        cost[i][0] = i
    for j in range(cols):
        cost[0][j] = j
    for i in range(1, rows):
        for j in range(1, cols):
            same = ref[i - 1][1] == hyp[j - 1]
            cost[i][j] = min(cost[i - 1][j - 1] + (not same), cost[i - 1][j] + 1, cost[i][j - 1] + 1)
    owner = [0] * len(hyp)
    i, j = len(ref), len(hyp)
    while j > 0:
        if i > 0 and cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1][1] != hyp[j - 1]):
            owner[j - 1] = ref[i - 1][0]
            i, j = i - 1, j - 1
        elif i > 0 and cost[i][j] == cost[i - 1][j] + 1:
            i -= 1  # a reference word the hypothesis lost
        else:
            owner[j - 1] = ref[i - 1][0] if i > 0 else 0  # an inserted word: the sentence before it
            j -= 1
    pieces: list[list[str]] = [[] for _ in references]
    for word, n in zip(hyp, owner, strict=True):
        pieces[n].append(word)
    return [" ".join(p) for p in pieces]


def repeated_ngrams(reference: str, hypothesis: str, n: int = 4) -> list[str]:
    """Word n-grams (normalized) the hypothesis holds more often than the reference (and more than once)."""
    from collections import Counter

    def grams(text: str) -> Counter[str]:
        words = normalize_text(text).split()
        return Counter(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))

    ref, hyp = grams(reference), grams(hypothesis)
    return [g for g, count in hyp.items() if count > 1 and count > ref[g]]


def write_m4a(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    """AAC in an MP4 container, encoded by PyAV (installed with faster-whisper): no ffmpeg binary needed."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate, layout="mono")
        size = stream.codec_context.frame_size or 1024
        pts = 0
        for begin in range(0, len(samples), size):
            chunk = np.ascontiguousarray(samples[begin : begin + size], dtype=np.float32).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = pts
            pts += chunk.shape[1]
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
