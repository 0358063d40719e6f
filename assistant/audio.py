"""Audio input as an interface: an ``AudioSource`` yields float32 mono 16 kHz blocks, as a microphone does.

``MicrophoneSource`` records through PortAudio (sounddevice); ``WavFileSource`` plays a real file through
the same interface, optionally paced in real time, so dictation is tested and benchmarked on exactly the
path a microphone takes. sounddevice is imported inside ``MicrophoneSource``: it raises OSError at import
when the PortAudio library is missing, and that must not break anything but recording.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .errors import AssistantError, one_line

if TYPE_CHECKING:
    import numpy as np

SAMPLE_RATE = 16_000
BLOCK_SECONDS = 0.1  # 100 ms blocks: a smooth level meter without waking up too often
NO_MIC_HINT = "plug in a microphone, or choose one: 'assistant dictate --list-devices'"


def level(block: np.ndarray) -> float:
    """Loudness of a block for a meter: RMS in dBFS mapped from -60..0 dB onto 0..1."""
    import numpy as np

    if block.size == 0:
        return 0.0
    rms = float(np.sqrt(np.mean(np.square(block, dtype=np.float64))))
    if rms <= 1e-6:
        return 0.0
    db = 20 * math.log10(rms)
    return min(1.0, max(0.0, (db + 60.0) / 60.0))


class AudioSource(ABC):
    """Blocks of float32 mono samples at ``SAMPLE_RATE``. Iterate to record; ``stop()`` (any thread) ends it.

    ``live`` sources produce audio in real time (a microphone, a paced file): a consumer that falls
    behind finds several blocks waiting rather than slowing the source down.
    """

    sample_rate = SAMPLE_RATE
    live = False
    name = "audio"

    def __init__(self) -> None:
        self._stopped = threading.Event()

    def stop(self) -> None:
        """Finish after the block being recorded (thread-safe)."""
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    @abstractmethod
    def blocks(self) -> Iterator[np.ndarray]: ...

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.blocks()

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> AudioSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class WavFileSource(AudioSource):
    """A real audio file played as if recorded: any format ``speech.load_audio`` reads, resampled to 16 kHz.

    ``realtime`` paces blocks at the speed of speech (block *i* is released when it would have been fully
    spoken); ``pad_seconds`` of silence follow the file, as a microphone keeps recording after you stop.
    ``speech_ended_at`` is the ``time.perf_counter()`` when the file's last block was released: the end of
    speech, from which dictation latency is measured.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        realtime: bool = False,
        block_seconds: float = BLOCK_SECONDS,
        pad_seconds: float = 0.0,
    ) -> None:
        from .speech import load_audio

        super().__init__()
        self.path = Path(path)
        self.name = self.path.name
        self.samples = load_audio(self.path)
        self.live = realtime
        self.block_size = max(1, int(block_seconds * SAMPLE_RATE))
        self.pad_samples = int(pad_seconds * SAMPLE_RATE)
        self.speech_ended_at: float | None = None

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    def blocks(self) -> Iterator[np.ndarray]:
        import numpy as np

        audio = self.samples
        if self.pad_samples:
            audio = np.concatenate([audio, np.zeros(self.pad_samples, dtype=np.float32)])
        started = time.perf_counter()
        for begin in range(0, len(audio), self.block_size):
            block = audio[begin : begin + self.block_size]
            due = started + (begin + len(block)) / SAMPLE_RATE
            if self.live:
                # wait on the stop event, not sleep: stop() must end a paced recording at once
                if self._stopped.wait(max(0.0, due - time.perf_counter())):
                    return
            elif self.stopped:
                return
            if begin + len(block) >= len(self.samples) and self.speech_ended_at is None:
                # paced: when the last word was spoken, even if the consumer only takes it later
                self.speech_ended_at = due if self.live else time.perf_counter()
            yield block


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    channels: int
    default_samplerate: float
    hostapi: str
    is_default: bool

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _sounddevice() -> Any:
    try:
        import sounddevice
    except (OSError, ImportError):  # sounddevice raises OSError at import when libportaudio is missing
        raise AssistantError(
            "no microphone found: the PortAudio library is not installed",
            "install it (Debian/Ubuntu: apt-get install libportaudio2), or transcribe a file instead",
        ) from None
    return sounddevice


def input_devices() -> list[InputDevice]:
    """Every device PortAudio can record from (empty when there is none)."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
        default_in = sd.default.device[0]
    except sd.PortAudioError as exc:
        raise AssistantError(f"no microphone found: {exc}", NO_MIC_HINT) from None
    found = []
    for info in devices:
        if info["max_input_channels"] > 0:
            found.append(
                InputDevice(
                    index=info["index"],
                    name=info["name"],
                    channels=info["max_input_channels"],
                    default_samplerate=float(info["default_samplerate"]),
                    hostapi=hostapis[info["hostapi"]]["name"],
                    is_default=info["index"] == default_in,
                )
            )
    return found


def parse_device(value: str | int | None) -> str | int | None:
    """A config/CLI device: an index ("3") or a (partial) name; empty means the default device."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    return int(value) if value.strip().isdigit() else value


class _Resampler:
    """Streaming linear-interpolation resampler (for devices that cannot record at 16 kHz).

    Linear interpolation is crude for audio in general but enough for speech recognition, which only
    uses the spectrum under 8 kHz; a carried-over last sample keeps block edges continuous.
    """

    def __init__(self, src_rate: float, dst_rate: float = SAMPLE_RATE) -> None:
        self.step = src_rate / dst_rate
        self.pos = 0.0  # position of the next output sample, in input samples from the carried one
        self.carry: np.ndarray | None = None

    def __call__(self, block: np.ndarray) -> np.ndarray:
        import numpy as np

        buf = block if self.carry is None else np.concatenate([self.carry, block])
        if len(buf) < 2:
            self.carry = buf
            return np.zeros(0, dtype=np.float32)
        positions = np.arange(self.pos, len(buf) - 1, self.step)
        out = np.interp(positions, np.arange(len(buf)), buf).astype(np.float32)
        next_pos = (positions[-1] + self.step) if len(positions) else self.pos
        self.pos = next_pos - (len(buf) - 1)
        self.carry = buf[-1:]
        return out


class MicrophoneSource(AudioSource):
    """Records from a PortAudio input device; ``device`` is an index, a name, or None for the default."""

    live = True

    def __init__(
        self, device: str | int | None = None, *, block_seconds: float = BLOCK_SECONDS, max_seconds: float | None = None
    ) -> None:
        super().__init__()
        self.device = parse_device(device)
        self.block_seconds = block_seconds
        self.max_seconds = max_seconds
        sd = _sounddevice()
        try:
            info = sd.query_devices(self.device, kind="input")
        except (ValueError, sd.PortAudioError) as exc:
            if self.device is None:
                raise AssistantError("no microphone found", NO_MIC_HINT) from None
            detail = one_line(exc, empty="no such input device")
            raise AssistantError(f"no microphone {self.device!r}: {detail}", NO_MIC_HINT) from None
        if int(info["max_input_channels"]) < 1:
            raise AssistantError(f"no microphone found: {info['name']} cannot record", NO_MIC_HINT)
        self.name = str(info["name"])
        self.device_rate = float(info["default_samplerate"])
        self._queue: queue.Queue[np.ndarray] = queue.Queue()
        self._stream: Any = None
        self._resample: _Resampler | None = None

    def _open(self) -> None:
        sd = _sounddevice()

        def callback(indata: Any, frames: int, time_info: Any, status: Any) -> None:
            self._queue.put(indata[:, 0].copy())

        last_error: Exception | None = None
        # 16 kHz first (no resampling); a raw hardware device may only take its own rate.
        for rate in dict.fromkeys([float(SAMPLE_RATE), self.device_rate]):
            try:
                stream = sd.InputStream(
                    samplerate=rate,
                    channels=1,
                    dtype="float32",
                    blocksize=int(rate * self.block_seconds),
                    device=self.device,
                    callback=callback,
                )
                stream.start()
            except (sd.PortAudioError, ValueError) as exc:
                last_error = exc
                continue
            self._stream = stream
            self._resample = None if rate == SAMPLE_RATE else _Resampler(rate)
            return
        raise AssistantError(f"cannot record from {self.name}: {one_line(last_error)}", NO_MIC_HINT)

    def blocks(self) -> Iterator[np.ndarray]:
        self._open()
        recorded = 0
        limit = int(self.max_seconds * SAMPLE_RATE) if self.max_seconds else None
        try:
            while not self.stopped:
                try:
                    block = self._queue.get(timeout=0.05)
                except queue.Empty:
                    if self._stream is not None and not self._stream.active:
                        break  # the device went away or the stream ended (e.g. a file-backed device)
                    continue
                if self._resample is not None:
                    block = self._resample(block)
                recorded += len(block)
                yield block
                if limit is not None and recorded >= limit:
                    break
        finally:
            self._close_stream()

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception:  # closing a vanished device must not hide the real outcome
                pass

    def close(self) -> None:
        super().close()
        self._close_stream()
