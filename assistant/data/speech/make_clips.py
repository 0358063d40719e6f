"""Regenerate the speech clips in this folder: ``python assistant/data/speech/make_clips.py``.

Each clip is espeak-ng speech resampled by sox to 16 kHz mono 16-bit WAV (what Whisper wants, and the
smallest honest format: the set stays under 2 MB). ``clips.json`` keeps each reference transcript next to
the voice and speed that produced it, so a clip can be rebuilt exactly. All voices are US English variants:
tiny.en is an English model, and the tests measure the model, not espeak's accents.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (id, espeak-ng voice, words per minute, text). "shopping" (~5.4 s) is the dictation utterance.
CLIPS = [
    ("fox", "en-us", 165, "The quick brown fox jumps over the lazy dog."),
    ("remind", "en-us", 160, "Please remind me to call my sister tomorrow morning at nine."),
    ("weather", "en-us+f3", 160, "The weather today is sunny with a light breeze from the west."),
    ("paragraph", "en-us", 150, "Open the file and read the first paragraph aloud."),
    ("meeting", "en-us+m3", 160, "Our meeting has been moved to Thursday afternoon at three o'clock."),
    ("summary", "en-us+m1", 155, "Write a short summary of the report and send it to the team."),
    ("distance", "en-us", 160, "How many kilometers are there between Paris and Berlin?"),
    ("lights", "en-us+f2", 155, "Turn off the lights in the kitchen before you go to bed."),
    ("laptop", "en-us", 165, "Small language models can run on a laptop without a network connection."),
    ("timer", "en-us+f1", 160, "Set a timer for twenty minutes and let me know when it is done."),
    ("capital", "en-us+m2", 160, "What is the capital city of Australia and how many people live there?"),
    ("library", "en-us+f4", 155, "The library closes early on Sunday, so return the books on Saturday."),
    (
        "shopping",
        "en-us",
        160,
        "Good morning, please add milk, eggs and fresh bread to my shopping list for the weekend.",
    ),
]


def main() -> None:
    banner = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
    version = banner.split("Data at")[0].strip()  # drop the data path: it differs per machine
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        for clip_id, voice, speed, text in CLIPS:
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
            out = HERE / f"{clip_id}.wav"
            partial = out.with_suffix(".wav.partial")
            subprocess.run(
                ["sox", str(raw), "-t", "wav", "-r", "16000", "-c", "1", "-b", "16", str(partial)], check=True
            )
            os.replace(partial, out)
            entries.append({"id": clip_id, "file": out.name, "text": text, "voice": voice, "speed": speed})
    doc = {"generator": f"{version}; sox -r 16000 -c 1 -b 16", "dictation": "shopping", "clips": entries}
    (HERE / "clips.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
