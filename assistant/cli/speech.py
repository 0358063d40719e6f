"""Speech commands: ``transcribe`` files, ``dictate`` from the microphone, ``talk`` to a model, ``say`` text.

numpy, faster_whisper and sounddevice load inside the commands, never at import (``assistant --help``).
"""

from __future__ import annotations

import json
import queue
import sys
import threading
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..untrusted import clean
from ._common import emit_json, stderr_console, stdout_console
from .root import cli

if TYPE_CHECKING:
    from ..audio import AudioSource
    from ..dictation import Dictation, DictationEvent
    from ..speech import Transcriber
    from ..voice_loop import VoiceLoop

FORMAT_CHOICES = ("txt", "srt", "vtt", "json")
# ~1 hour of speech at espeak-ng's 175 words per minute; a WAV of it is ~150 MB.
MAX_SAY_CHARS = 50_000


# -- transcribe ---------------------------------------------------------------------------------------------


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format", "-f", "fmt", type=click.Choice(FORMAT_CHOICES), default="txt", show_default=True, help="Output format."
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option(
    "--out",
    "-o",
    "out_dir",
    type=click.Path(path_type=Path),
    help="Write one FILE-NAME.FORMAT per input into this folder instead of printing.",
)
@click.option("--model", "-m", "model_id", metavar="ID", help="Speech model (default: config models.speech).")
@click.option("--beam", type=click.IntRange(1, 20), help="Beam width (default: config speech.beam_size).")
@click.option("--word-timestamps", is_flag=True, default=None, help="Per-word times (in --format json).")
@click.option("--language", metavar="CODE", help="Spoken language, e.g. en (multilingual models; default: detect).")
@click.option("--vad/--no-vad", default=None, help="Skip silence with Silero VAD (default: config speech.vad).")
def transcribe(
    files: tuple[Path, ...],
    fmt: str,
    as_json: bool,
    out_dir: Path | None,
    model_id: str | None,
    beam: int | None,
    word_timestamps: bool | None,
    language: str | None,
    vad: bool | None,
) -> None:
    """Transcribe audio files (wav, flac, mp3, ogg, m4a...) to text, subtitles (srt, vtt) or JSON.

    A file that cannot be read is reported on one line and skipped; the others are still transcribed, and
    the exit status is 1 if any failed.
    """
    from .. import paths
    from ..errors import AssistantError
    from ..speech import load_audio, render

    fmt = "json" if as_json else fmt
    console = stderr_console()
    transcriber: Transcriber | None = None
    failures = 0
    documents: list[dict[str, Any]] = []
    used_names: set[str] = set()
    if out_dir is not None:
        if out_dir.exists() and not out_dir.is_dir():
            raise AssistantError(
                f"{out_dir}: not a folder", "give --out a folder; one FILE-NAME.FORMAT is written per input"
            )
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AssistantError(f"{out_dir}: cannot create the output folder: {exc.strerror or exc}") from None
    for file in files:
        try:
            samples = load_audio(file)
        except AssistantError as exc:
            failures += 1
            click.echo(f"error: {clean(exc, one_line=True)}", err=True)
            continue
        if transcriber is None:  # the model loads once the first file has proved readable
            transcriber = _load_transcriber(
                model_id, beam_size=beam, word_timestamps=word_timestamps, language=language, vad=vad
            )
        transcript = transcriber.transcribe(samples)
        segments = _collect(transcript, file.name, console)
        text = render(fmt, segments, transcript.info, str(file))  # type: ignore[arg-type]
        if out_dir is not None:
            target = out_dir / _unique_name(f"{file.stem}.{fmt}", used_names)
            paths.write_text_atomic(target, text)
            click.echo(clean(f"wrote {target}"))
        elif fmt == "json" and len(files) > 1:
            import json

            documents.append(json.loads(text))
        else:
            if len(files) > 1:  # headed like `head` does with several files
                click.echo(f"{'' if file == files[0] else chr(10)}==> {clean(file, one_line=True)} <==")
            click.echo(clean(text), nl=not text.endswith("\n"))
    if documents:
        emit_json(documents)
    if failures:
        sys.exit(1)


def _load_transcriber(model_id: str | None, **options: Any) -> Transcriber:
    from ..speech import Transcriber

    status = stderr_console().status("loading the speech model…") if sys.stderr.isatty() else nullcontext()
    with status:
        return Transcriber.from_settings(model_id, **options)


def _collect(transcript: Any, label: str, console: Any) -> list[Any]:
    """Drain the transcript, with a progress bar by audio seconds done when stderr is a terminal."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    duration = transcript.info.duration
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
        TimeRemainingColumn(),
    ]
    segments = []
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task(label, total=max(duration, 0.01))
        for segment in transcript:
            segments.append(segment)
            progress.update(task, completed=min(segment.end, duration))
    return segments


def _unique_name(name: str, used: set[str]) -> str:
    """Two inputs named alike (a/x.wav, b/x.wav) must not overwrite each other's output."""
    stem, dot, ext = name.rpartition(".")
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}-{n}{dot}{ext}"
    used.add(candidate)
    return candidate


# -- dictate / talk -----------------------------------------------------------------------------------------


def _source(device: str | None, from_file: Path | None, fast: bool, max_seconds: float | None) -> AudioSource:
    from .. import config
    from ..audio import MicrophoneSource, WavFileSource

    if from_file is not None:
        return WavFileSource(from_file, realtime=not fast)
    return MicrophoneSource(
        device if device is not None else config.load().speech.input_device, max_seconds=max_seconds
    )


def _events(dictation: Dictation, source: AudioSource, ctrl_c_stops: bool) -> Iterator[DictationEvent]:
    """Run the dictation in a thread so Ctrl+C reaches us here. With ``ctrl_c_stops`` the first Ctrl+C stops
    recording and keeps the text (a second quits); otherwise Ctrl+C drops the recording and quits."""
    events: queue.Queue[Any] = queue.Queue()
    done = object()

    def work() -> None:
        try:
            for event in dictation.run(source):
                events.put(event)
        except BaseException as exc:  # re-raised in the main thread
            events.put(exc)
        finally:
            events.put(done)

    thread = threading.Thread(target=work, name="dictation", daemon=True)
    thread.start()
    interrupted = False
    while True:
        try:
            item = events.get(timeout=0.1)
        except queue.Empty:
            continue
        except KeyboardInterrupt:
            if interrupted or not ctrl_c_stops:
                dictation.cancel()
                raise
            interrupted = True
            dictation.stop()
            continue
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


class _Display:
    """Shows dictation as it happens: a live line (meter, final text, dimmed tentative text) on a terminal,
    or the committed words appended to stdout as they come when piped."""

    def __init__(self, live: bool, hint: str) -> None:
        self.live = live
        self.hint = hint
        self.level = 0.0
        self.committed = ""
        self.tentative = ""
        self._live: Any = None

    def __enter__(self) -> _Display:
        if self.live:
            from rich.live import Live

            self._live = Live(self._render(), console=stdout_console(), transient=True, refresh_per_second=12)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def _render(self) -> Any:
        from rich.text import Text

        bars = int(self.level * 10)
        text = Text("● " if self.level > 0.1 else "○ ", style="red" if self.level > 0.1 else "dim")
        text.append("▮" * bars + "▯" * (10 - bars), style="green")
        text.append("  " + clean(self.committed))
        if self.tentative:
            text.append((" " if self.committed else "") + clean(self.tentative), style="dim")
        if not self.committed and not self.tentative:
            text.append(f"listening… ({self.hint})", style="dim")
        return text

    def update(self, event: DictationEvent) -> None:
        from ..dictation import Committed, Level, Partial

        if isinstance(event, Level):
            self.level = event.value
        elif isinstance(event, Partial):
            self.committed, self.tentative = event.committed, event.tentative
        elif isinstance(event, Committed) and not self.live:
            click.echo(("" if not self.committed else " ") + clean(event.text), nl=False)
            self.committed = event.committed
            return
        if self._live is not None:
            self._live.update(self._render())


def _dictate_once(
    transcriber: Transcriber,
    source: AudioSource,
    stop_after_silence: float | None,
    *,
    show: bool,
    label: str = "",
    talk: bool = False,
) -> tuple[str, Any, Dictation]:
    """Record until stopped; show the words as they come (``label`` before them); return the final text."""
    from ..dictation import Dictation, Final

    dictation = Dictation(transcriber, stop_after_silence=stop_after_silence)
    final = None
    live = show and sys.stdout.isatty()
    hint = "pause to send, Ctrl+C to quit" if talk else "Ctrl+C to stop"
    if show and not live and label:
        click.echo(label, nl=False)
    with source, _Display(live, hint) as display:
        for event in _events(dictation, source, ctrl_c_stops=not talk):
            if isinstance(event, Final):
                final = event
            elif show:
                display.update(event)
    if final is None:
        from ..errors import Cancelled

        raise Cancelled()
    if show and not live:
        # the committed words were printed as they came; add what the last pass decided
        rest = final.text[len(display.committed) :].strip() if final.text.startswith(display.committed) else ""
        click.echo((" " if display.committed and rest else "") + clean(rest))
    elif show:
        click.echo(label + clean(final.text))
    return final.text, final, dictation


@cli.command()
@click.option(
    "--device", "-d", metavar="DEVICE", help="Microphone index or name (default: config speech.input_device)."
)
@click.option("--list-devices", is_flag=True, help="List the microphones and exit.")
@click.option(
    "--file",
    "from_file",
    type=click.Path(path_type=Path),
    help="Dictate from an audio file instead of the microphone, played in real time (see --fast).",
)
@click.option("--fast", is_flag=True, help="With --file: feed the file as fast as it can be transcribed.")
@click.option("--model", "-m", "model_id", metavar="ID", help="Speech model (default: config models.speech).")
@click.option(
    "--stop-after-silence",
    type=click.FloatRange(0.2, 60.0),
    metavar="SECONDS",
    help="Stop once you have been silent this long (default: Ctrl+C stops).",
)
@click.option("--max-seconds", type=click.FloatRange(0.5), help="Stop after recording this long.")
@click.option(
    "--send/--no-send",
    "--auto-send",
    "send",
    default=None,
    help="Send the text to a new chat and print the reply (default: config speech.auto_send).",
)
@click.option("--chat-model", metavar="ID", help="With --send: the chat model (default: config models.chat).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (text, seconds, latency) at the end.")
@click.option(
    "--language",
    metavar="CODE",
    help="Spoken language, e.g. de (multilingual models; default: config speech.language).",
)
def dictate(
    device: str | None,
    list_devices: bool,
    from_file: Path | None,
    fast: bool,
    model_id: str | None,
    stop_after_silence: float | None,
    max_seconds: float | None,
    send: bool | None,
    chat_model: str | None,
    as_json: bool,
    language: str | None,
) -> None:
    """Dictate: speak, and the text appears as you go (words shown plain are final, dimmed ones may change).

    Ctrl+C stops recording and prints the final text; a second Ctrl+C quits.
    """
    from .. import config
    from ..audio import input_devices

    if list_devices:
        _print_devices(input_devices(), as_json)
        return
    settings = config.load()
    source = _source(device, from_file, fast, max_seconds)  # no microphone: fail before loading anything
    transcriber = _load_transcriber(model_id, language=language)
    send = settings.speech.auto_send if send is None else send
    text, final, dictation = _dictate_once(transcriber, source, stop_after_silence, show=not as_json)
    if as_json:
        emit_json(
            {
                "text": text,
                "audio_seconds": round(final.audio_seconds, 3),
                "latency_seconds": round(final.latency, 3),
                "passes": dictation.passes,
                "language": final.language,
                "source": source.name,
            }
        )
    if send and text.strip():
        from ..voice_loop import VoiceLoop

        loop = VoiceLoop.from_settings(settings.speech, speak=settings.speech.speak_replies)
        loop.heard(text, language=final.language, latency=final.latency)
        session, chat = _open_session(chat_model)
        try:
            _reply(text, session, chat, loop.speaker(), loop)
        finally:
            session.close()


def _print_devices(devices: list[Any], as_json: bool) -> None:
    if as_json:
        emit_json([d.to_json() for d in devices])
        return
    if not devices:
        click.echo("no microphones found")
        return
    for d in devices:
        mark = "*" if d.is_default else " "
        line = f"{mark} {d.index:>2}  {d.name}  ({d.hostapi}, {d.channels} ch, {d.default_samplerate:.0f} Hz)"
        click.echo(clean(line, one_line=True))


def _reply(text: str, session: Any, chat: Any, speaker: Any, loop: VoiceLoop) -> None:
    """Send ``text`` to ``chat`` and stream the reply to stdout (and aloud, with a ``Speaker``); ``loop``
    hears of each piece (the first one's time is a latency mark)."""
    from ._chatting import ctrl_c_cancels

    turn = session.send(chat.id, text)
    wrote = False
    with ctrl_c_cancels(turn):
        for chunk in turn:
            if chunk.notice:
                click.secho(f"[{clean(chunk.notice)}]", err=True, dim=True)
            if chunk.text:
                loop.reply_text()
                click.echo(clean(chunk.text), nl=False)
                wrote = True
                if speaker is not None:
                    speaker.feed(chunk.text)
    if wrote:
        click.echo()
    if speaker is not None:
        speaker.finish()
        if speaker.errors:
            click.secho(f"could not read aloud: {clean(speaker.errors[-1], one_line=True)}", err=True, dim=True)


def _open_session(chat_model: str | None) -> tuple[Any, Any]:
    from ._chatting import open_chat, open_session

    session = open_session(None)
    try:
        return session, open_chat(session, None, chat_model, None, {})
    except BaseException:
        session.close()
        raise


@cli.command()
@click.option(
    "--device", "-d", metavar="DEVICE", help="Microphone index or name (default: config speech.input_device)."
)
@click.option(
    "--file",
    "from_file",
    type=click.Path(path_type=Path),
    help="Say this audio file instead of using the microphone (one turn, then exit).",
)
@click.option("--fast", is_flag=True, help="With --file: feed the file as fast as it can be transcribed.")
@click.option("--model", "-m", "chat_model", metavar="ID", help="Chat model (default: config models.chat).")
@click.option("--speech-model", metavar="ID", help="Speech model (default: config models.speech).")
@click.option(
    "--speak/--no-speak", default=None, help="Read replies aloud with espeak-ng (default: config speech.speak_replies)."
)
@click.option(
    "--pause",
    type=click.FloatRange(0.2, 10.0),
    metavar="SECONDS",
    help="Silence that ends what you say and sends it (default: config speech.pause, 1 s).",
)
@click.option(
    "--voice",
    metavar="NAME",
    help="espeak-ng voice for the replies, e.g. en-gb, de+f3 (default: the language you speak; see `say`).",
)
@click.option("--speed", type=click.IntRange(80, 500), help="Words per minute for the replies (espeak-ng default 175).")
@click.option(
    "--timings",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append each turn's latency breakdown (end of speech, transcript, first text, first sentence, voice) as JSON.",
)
def talk(
    device: str | None,
    from_file: Path | None,
    fast: bool,
    chat_model: str | None,
    speech_model: str | None,
    speak: bool | None,
    pause: float | None,
    voice: str | None,
    speed: int | None,
    timings: Path | None,
) -> None:
    """Voice chat: speak, pause, and what you said is sent; the reply streams (and is read aloud if enabled).

    Ctrl+C while you speak sends nothing and quits; Ctrl+C during a reply stops the reply.
    """
    from .. import config

    settings = config.load()
    speak = settings.speech.speak_replies if speak is None else speak
    if speak:  # no espeak-ng: said now, not after the first turn
        from ..errors import AssistantError
        from ..tts import MISSING_HINT, available

        if not available():
            raise AssistantError("cannot read aloud: espeak-ng is not installed", MISSING_HINT)
    from ..voice_loop import VoiceLoop

    loop = VoiceLoop.from_settings(settings.speech, pause=pause, speak=speak, voice=voice, speed=speed)
    source = _source(device, from_file, fast, None)
    transcriber = _load_transcriber(speech_model)
    session, chat = _open_session(chat_model)
    speaker = None
    loop.start()
    try:
        while True:
            text, final, _ = _dictate_once(transcriber, source, loop.pause, show=True, label="you: ", talk=True)
            sent = loop.heard(text, language=final.language, latency=final.latency + final.silence_after)
            if sent is not None:
                speaker = loop.speaker()  # in the language you spoke
                _reply(sent, session, chat, speaker, loop)
                loop.reply_read()
                if timings is not None:  # one JSON line per turn: the latency breakdown (benchmarks/voice_loop.py)
                    _append_timings(timings, loop.timings(sent))
            if from_file is not None:
                return
            source = _source(device, None, False, None)
    finally:
        if speaker is not None:
            speaker.stop()
        session.close()


def _append_timings(path: Path, marks: dict[str, Any]) -> None:
    from .. import paths
    from ..errors import AssistantError

    try:
        with paths.private_file(path).open("a", encoding="utf-8") as out:
            out.write(json.dumps(marks) + "\n")
    except OSError as exc:
        raise AssistantError(f"cannot write {path}: {exc.strerror}", "give --timings a writable file") from None


@cli.command()
@click.argument("text", nargs=-1, required=True)
@click.option("--voice", metavar="NAME", help="espeak-ng voice, e.g. en-us, en-gb, en-us+f3 ('espeak-ng --voices').")
@click.option("--speed", type=click.IntRange(80, 500), help="Words per minute (espeak-ng default 175).")
@click.option(
    "--out", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write a WAV file instead of playing."
)
def say(text: tuple[str, ...], voice: str | None, speed: int | None, out: Path | None) -> None:
    """Read TEXT aloud with espeak-ng (what 'talk' and speech.speak_replies use)."""
    from ..errors import AssistantError
    from ..tts import INSTALL_HINT, Speaker, available, synthesize

    if not available():
        raise AssistantError("cannot read aloud: espeak-ng is not installed", INSTALL_HINT)
    # terminal control characters (a pasted escape sequence) are not words; espeak-ng would spell some out
    words = "".join(ch if ch.isprintable() else " " for ch in " ".join(text)).strip()
    if not words:
        raise AssistantError("nothing to say: the text is empty", "give the words to read, e.g. assistant say hello")
    if len(words) > MAX_SAY_CHARS:
        raise AssistantError(
            f"text too long to read aloud ({len(words):,} characters; at most {MAX_SAY_CHARS:,})",
            "split it into parts",
        )
    if out is not None:
        synthesize(words, out, voice=voice, speed=speed)
        click.echo(clean(f"wrote {out}"))
        return
    speaker = Speaker(voice=voice, speed=speed)
    speaker.say(words)
    try:
        speaker.finish()
    except KeyboardInterrupt:
        speaker.stop()
        raise
    if speaker.errors:
        raise AssistantError(f"could not play audio: {speaker.errors[-1]}", "use --out FILE.wav to write a file")
