"""The speech benchmark's clip set: espeak-ng voices and speeds, clean and mixed with noise, in four languages.

The shipped clips (``assistant/data/speech``, 13 short US-English sentences) are too few for an interval
that tells two models apart, and all clean. This builds a larger set into the app's cache on first use,
from the same English texts plus German, French and Spanish sentences: each text spoken by one or two
espeak-ng voices at different speeds (``clean``), then each clean clip mixed with pink noise at 20, 10
and 5 dB SNR. Nothing here is shipped as audio: espeak-ng and sox make it (the noise is sox's, in
repeatable mode), so the set is rebuilt exactly from this file; its folder name is a hash of everything
that goes into it, so a change here builds a new set instead of mixing old clips with new texts.

Building is per clip and atomic (a ``.partial`` renamed into place), and the set's ``clips.json`` is
written last: a set interrupted half-way is finished on the next use, never read half-made.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import unicodedata
import wave
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import paths, speech
from ..errors import AssistantError

SNRS = (20, 10, 5)  # dB: a quiet room's hum, a busy office, a loud street
CONDITIONS = ("clean", *(f"{snr}db" for snr in SNRS))
SAMPLE_RATE = 16_000
# --quick keeps every 6th text in one voice (all its conditions): 24 of the 176 clips, wider intervals
QUICK_EVERY = 6

# English: the shipped texts, each in two (voice, speed) pairs taken round-robin from these.
EN_VOICES = [
    ("en-us", 165),
    ("en-us+f3", 150),
    ("en-gb+m3", 175),
    ("en-us+m1", 140),
    ("en-gb+f2", 160),
    ("en-us+f4", 185),
]
# No digits: a model writing "3" for "drei" is not an error this set means to count.
OTHER_TEXTS = {
    "de": [
        "Der Zug nach Berlin fährt heute später ab.",
        "Bitte schalte das Licht in der Küche aus.",
        "Wir treffen uns morgen früh vor dem Bahnhof.",
        "Das Wetter ist heute sonnig und warm.",
        "Kannst du mir bitte ein Glas Wasser bringen?",
        "Meine Schwester wohnt in einer kleinen Stadt am Meer.",
    ],
    "fr": [
        "Le train pour Paris part plus tard aujourd'hui.",
        "Peux-tu éteindre la lumière dans la cuisine?",
        "Nous nous retrouvons demain matin devant la gare.",
        "Il fait beau et chaud aujourd'hui.",
        "Voulez-vous un verre d'eau, s'il vous plaît?",
        "Ma sœur habite dans une petite ville au bord de la mer.",
    ],
    "es": [
        "El tren para Madrid sale más tarde hoy.",
        "Por favor, apaga la luz de la cocina.",
        "Nos vemos mañana por la mañana delante de la estación.",
        "Hoy hace sol y calor.",
        "¿Me puedes traer un vaso de agua, por favor?",
        "Mi hermana vive en una ciudad pequeña cerca del mar.",
    ],
}
OTHER_VOICES = {"de": "de", "fr": "fr-fr", "es": "es"}
OTHER_SPEEDS = (150, 170)


@dataclass(frozen=True)
class BenchClip:
    id: str
    file: str
    text: str
    language: str
    condition: str
    voice: str
    speed: int
    text_index: int  # which text it speaks within its language (--quick keeps whole texts)
    take: int = 0  # which of the text's voices (English has two)


def plan() -> list[BenchClip]:
    """Every clip of the set, clean ones first (a noisy clip is made from its clean one)."""
    clean: list[BenchClip] = []
    for i, clip in enumerate(speech.reference_clips()):
        for k in range(2):
            voice, speed = EN_VOICES[(i + 3 * k) % len(EN_VOICES)]
            clean.append(BenchClip(f"en-{clip.id}-{k}", "", clip.text, "en", "clean", voice, speed, i, k))
    for language, texts in OTHER_TEXTS.items():
        for i, text in enumerate(texts):
            speed = OTHER_SPEEDS[i % len(OTHER_SPEEDS)]
            clean.append(BenchClip(f"{language}-{i}", "", text, language, "clean", OTHER_VOICES[language], speed, i))
    out = [BenchClip(**{**asdict(c), "file": f"{c.id}.clean.wav"}) for c in clean]
    for condition in CONDITIONS[1:]:
        out += [BenchClip(**{**asdict(c), "condition": condition, "file": f"{c.id}.{condition}.wav"}) for c in clean]
    return out


def select(clips: list[BenchClip], *, quick: bool, languages: set[str] | None = None) -> list[BenchClip]:
    """The clips a run uses: all, or for --quick every QUICK_EVERY-th text in its first voice; only
    ``languages`` if given."""
    return [
        c
        for c in clips
        if (languages is None or c.language in languages)
        and (not quick or (c.text_index % QUICK_EVERY == 0 and c.take == 0))
    ]


def _set_key(clips: list[BenchClip]) -> str:
    doc = json.dumps([asdict(c) for c in clips], sort_keys=True) + repr(SNRS) + _espeak_version()
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def _espeak_version() -> str:
    out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
    return out.split("Data at")[0].strip()  # the data path differs per machine


def set_dir() -> Path:
    return paths.cache_dir() / "speech-bench"


def ensure(clips: list[BenchClip]) -> Path:
    """Build whichever of ``clips`` are missing into the cached set folder; return the folder.

    One line if espeak-ng or sox is missing (the set is made from them, not shipped).
    """
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        raise AssistantError(
            f"the speech benchmark builds its clips with espeak-ng and sox: {' and '.join(missing)} not found",
            "install them (e.g. apt-get install espeak-ng sox) and run the benchmark again",
        )
    try:
        folder = paths.ensure(set_dir() / _set_key(plan()))
        _drop_stale(folder)
        noise = _noise(folder)
        for clip in clips:
            target = folder / clip.file
            if not target.exists():
                _build(folder, clip, noise)
        manifest = folder / "clips.json"
        if not manifest.exists():
            paths.write_text_atomic(manifest, json.dumps([asdict(c) for c in plan()], indent=1) + "\n")
    except subprocess.CalledProcessError as exc:
        err = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        reason = err[-1] if err else str(exc)
        raise AssistantError(f"building the speech clips failed: {exc.cmd[0]}: {reason}") from None
    except OSError as exc:
        raise AssistantError(f"building the speech clips failed: {exc.strerror or exc}") from None
    return folder


def _drop_stale(current: Path) -> None:
    """Remove sets made for another clip plan or espeak-ng version: nothing reads them again."""
    for other in current.parent.iterdir():
        if other != current and other.is_dir() and len(other.name) == len(current.name):  # another set key
            shutil.rmtree(other, ignore_errors=True)


def _noise(folder: Path) -> np.ndarray:
    """60 s of sox pink noise, made once per set (repeatable mode: the same samples on every machine)."""
    path = folder / "noise.wav"
    if not path.exists():
        partial = path.with_suffix(".wav.partial")
        cmd = ["sox", "-R", "-n", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", "-t", "wav", str(partial)]
        subprocess.run([*cmd, "synth", "60", "pinknoise", "vol", "0.5"], check=True, capture_output=True)
        os.replace(partial, path)
    return _read(path)


def _build(folder: Path, clip: BenchClip, noise: np.ndarray) -> None:
    target = folder / clip.file
    partial = target.with_suffix(".wav.partial")
    if clip.condition == "clean":
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            raw = Path(tmp) / "raw.wav"
            cmd = ["espeak-ng", "-v", clip.voice, "-s", str(clip.speed), "-w", str(raw), "--", clip.text]
            subprocess.run(cmd, check=True, capture_output=True)
            resample = ["sox", str(raw), "-t", "wav", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(partial)]
            subprocess.run(resample, check=True, capture_output=True)
    else:
        clean = folder / clip.file.replace(f".{clip.condition}.", ".clean.")
        if not clean.exists():
            _build(folder, BenchClip(**{**asdict(clip), "condition": "clean", "file": clean.name}), noise)
        write_wav(partial, mix(_read(clean), noise, int(clip.condition.removesuffix("db")), seed=clip.id))
    os.replace(partial, target)


def mix(signal: np.ndarray, noise: np.ndarray, snr_db: float, seed: str) -> np.ndarray:
    """``signal`` plus a slice of ``noise`` scaled so that signal power / noise power is ``snr_db``.

    The slice's offset comes from ``seed`` (the clip id): each clip gets its own stretch of noise, the same
    on every build.
    """
    offset = int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16) % max(1, len(noise) - len(signal))
    piece = np.resize(noise[offset:], len(signal)).astype(np.float64)
    p_signal = float(np.mean(signal.astype(np.float64) ** 2))
    p_noise = float(np.mean(piece**2)) or 1.0
    piece *= np.sqrt(p_signal / (p_noise * 10 ** (snr_db / 10)))
    mixed = signal + piece
    peak = float(np.max(np.abs(mixed))) or 1.0
    return (mixed / peak * 0.95 if peak > 1.0 else mixed).astype(np.float32)


def _read(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as fh:
        frames = fh.readframes(fh.getnframes())
    return np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0


def write_wav(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    """16-bit mono WAV of ``samples`` (floats in [-1, 1], clipped)."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(rate)
        fh.writeframes(pcm.tobytes())
    return path


def normalize(text: str, language: str) -> str:
    """English as ``speech.normalize_text`` (numbers spelled out); other languages keep their letters.

    ``speech.normalize_text`` keeps a-z only, which would cut "fährt" into "f hrt": for de/fr/es, lower
    case, curly apostrophes made straight, hyphens split, everything but letters, digits and apostrophes
    dropped.
    """
    if language == "en":
        return speech.normalize_text(text)
    text = unicodedata.normalize("NFC", text).lower().replace("\u2019", "'").replace("-", " ")
    kept = "".join(ch if ch.isalnum() or ch in "' " else " " for ch in text)
    return " ".join(w.strip("'") for w in kept.split() if w.strip("'"))
