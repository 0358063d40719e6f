"""Voice mode in the TUI: scripted audio (the dictation's end is posted as the panel would) and a scripted voice.

The real microphone, whisper and espeak-ng path is ``tests/integration/test_virtual_mic.py``'s; this drives the
loop: listen → a spoken turn is sent → the reply streams and is read → listening resumes; barge-in; Esc.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import pytest

from assistant import config
from assistant.history import History
from assistant.ui.app import AssistantApp
from assistant.ui.widgets.chat_log import ReplyTurn
from assistant.ui.widgets.conversation import DictationPanel
from assistant.ui.widgets.voice import VoicePanel

from helpers.ui import ScriptedEngine, register_fake_model, wait_until


class HeldSpeaker:
    """Reads until the reply is finished and then ``release``d by the test, or until stopped."""

    instances: ClassVar[list[HeldSpeaker]] = []

    def __init__(self, **options: Any) -> None:
        self.options = options  # voice mode's: the voice for the language heard, and the latency marks
        self.fed: list[str] = []
        self.finished = self.stopped = False
        self.release = threading.Event()
        HeldSpeaker.instances.append(self)

    @property
    def speaking(self) -> bool:
        return not (self.stopped or self.release.is_set())

    def feed(self, text: str) -> None:
        self.fed.append(text)

    def finish(self, timeout: float | None = None) -> None:
        self.finished = True

    def wait(self, timeout: float | None = None) -> None:
        self.release.wait(timeout)

    def stop(self) -> None:
        self.stopped = True
        self.release.set()


RECORDING: set[int] = set()  # the panels "recording" (their scripted dictation has not ended)


@pytest.fixture
def listening(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each time the panel starts listening (its worker is the real microphone's: not started here)."""
    from assistant import tts

    HeldSpeaker.instances.clear()
    RECORDING.clear()
    monkeypatch.setattr(tts, "available", lambda: True)
    monkeypatch.setattr(tts, "Speaker", HeldSpeaker)
    starts: list[int] = []

    def start(panel: DictationPanel) -> None:
        starts.append(len(starts))
        RECORDING.add(id(panel))  # recording, until the test says what was heard

    def cancel(panel: DictationPanel) -> None:
        RECORDING.discard(id(panel))

    monkeypatch.setattr(DictationPanel, "start", start)
    monkeypatch.setattr(DictationPanel, "cancel", cancel)
    monkeypatch.setattr(DictationPanel, "busy", property(lambda panel: id(panel) in RECORDING))
    return starts


def say(app: AssistantApp, text: str) -> None:
    """The pause after ``text``: the dictation ends with it, as ``VoicePanel`` reports it."""
    panel = app.query_one(DictationPanel)
    RECORDING.discard(id(panel))
    panel.post_message(VoicePanel.DictationFinished(text, 1.5, 0.2))


async def test_two_spoken_turns_the_second_interrupted_by_barge_in(
    engine: ScriptedEngine, listening: list[int]
) -> None:
    register_fake_model()
    engine.enqueue("Paris is the capital.", " It is on the Seine.")
    engine.enqueue("Once upon a time", " there was", " a model", hold_after=1)
    app = AssistantApp(engine_factory=lambda model_id: engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.engine is not None, "the model")
        await pilot.press("f10")
        conversation = app.conversation
        await wait_until(pilot, lambda: listening == [0], "listening")
        assert conversation.voice_mode and app.query_one(DictationPanel).has_class("-voice-mode")

        say(app, "What is the capital of France?")
        await wait_until(pilot, lambda: len(HeldSpeaker.instances) == 1 and HeldSpeaker.instances[0].finished, "read")
        first = HeldSpeaker.instances[0]
        assert "".join(first.fed) == "Paris is the capital. It is on the Seine."
        assert listening == [0]  # not while the app speaks: its own voice is not the user's
        first.release.set()  # the reading ends
        await wait_until(pilot, lambda: listening == [0, 1], "listening again after the reading")

        say(app, "Tell me a story.")
        await wait_until(pilot, engine.holding.is_set, "the reply to be mid-way")
        second = HeldSpeaker.instances[1]
        await pilot.press("ctrl+t")  # barge-in
        await wait_until(pilot, lambda: listening == [0, 1, 2], "listening after the barge-in")
        assert second.stopped
        await wait_until(pilot, lambda: not app.generating and conversation.reply is None, "the reply to stop")
        assert app.query(ReplyTurn).last().partial

        await pilot.press("escape")
        assert not conversation.voice_mode and not app.query_one(DictationPanel).has_class("-voice-mode")
    history = History()
    (chat,) = history.list_chats()
    stored = [(m.role, m.content, m.partial) for m in history.messages(chat.id)]
    history.close()
    assert stored == [
        ("user", "What is the capital of France?", False),
        ("assistant", "Paris is the capital. It is on the Seine.", False),
        ("user", "Tell me a story.", False),
        ("assistant", "Once upon a time", True),
    ]


async def test_with_barge_in_on_the_app_listens_while_it_speaks_and_words_interrupt_it(
    engine: ScriptedEngine, listening: list[int]
) -> None:
    register_fake_model()
    engine.enqueue("A long", " answer", hold_after=1)
    settings = config.Settings.model_validate({"speech": {"barge_in": True, "pause": 0.6}})
    app = AssistantApp(engine_factory=lambda model_id: engine, settings=settings)
    async with app.run_test(size=(40, 20)) as pilot:
        await wait_until(pilot, lambda: app.engine is not None, "the model")
        await pilot.press("f10")
        await wait_until(pilot, lambda: listening == [0], "listening")
        assert app.query_one(DictationPanel).stop_after_silence == 0.6
        say(app, "Explain it all.")
        await wait_until(pilot, engine.holding.is_set, "the reply to be mid-way")
        assert listening == [0, 1]  # listening while the reply is read
        app.query_one(DictationPanel).post_message(VoicePanel.SpeechHeard())
        await wait_until(pilot, lambda: not app.generating, "the reply to stop")
        assert HeldSpeaker.instances[0].stopped
        await pilot.press("escape")
        assert not app.conversation.voice_mode


async def test_nothing_heard_listens_on(engine: ScriptedEngine, listening: list[int]) -> None:
    register_fake_model()
    app = AssistantApp(engine_factory=lambda model_id: engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.engine is not None, "the model")
        await pilot.press("f10")
        await wait_until(pilot, lambda: listening == [0], "listening")
        say(app, "  ")
        await wait_until(pilot, lambda: listening == [0, 1], "listening on")
        assert not app.query(ReplyTurn)


def test_voice_mode_has_a_key_and_a_palette_command(engine: ScriptedEngine) -> None:
    from assistant.ui import actions

    (found,) = [a for a in actions.ACTIONS if a.name == "voice_mode"]
    assert found.key and found.title == "Voice mode" and "Esc leaves" in found.help
    assert any(action.name == "voice_mode" for action, _ in actions.PALETTE)
    _: Any = engine
