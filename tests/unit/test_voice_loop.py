"""The spoken conversation's loop (``assistant.voice_loop``), which the TUI's voice mode and ``talk`` share."""

from __future__ import annotations

import pytest

from assistant import tts
from assistant.config import SpeechSettings
from assistant.voice_loop import VoiceLoop, VoiceState


def speech(**values: object) -> SpeechSettings:
    """The [speech] settings with ``values`` changed (validated, as config.toml's would be)."""
    return SpeechSettings.model_validate(values)


@pytest.fixture
def espeak_voices(monkeypatch: pytest.MonkeyPatch) -> None:
    """espeak-ng "installed" with a few voices (a Speaker is made, nothing is spoken)."""
    monkeypatch.setattr(tts, "executable", lambda: "/bin/true")
    monkeypatch.setattr(tts, "voices", lambda: frozenset({"de", "en-us", "es", "fr-fr", "cmn"}))


def test_a_turn_goes_listening_thinking_speaking_and_back() -> None:
    loop = VoiceLoop()
    loop.start()
    assert loop.state is VoiceState.LISTENING
    assert loop.heard("  what time is it?  ", latency=0.5) == "what time is it?"
    assert loop.state is VoiceState.THINKING
    assert loop.marks["final"] - loop.marks["speech_end"] == pytest.approx(0.5)
    assert loop.reply_text() is True and loop.state is VoiceState.SPEAKING
    assert loop.reply_text() is False  # only the first piece is a mark
    assert loop.reply_read() is True and loop.state is VoiceState.LISTENING


def test_nothing_heard_listens_on_and_sends_nothing() -> None:
    loop = VoiceLoop()
    loop.start()
    assert loop.heard("   ") is None
    assert loop.state is VoiceState.LISTENING and loop.marks == {}


def test_leaving_the_loop_stops_listening_after_the_reply() -> None:
    loop = VoiceLoop()
    loop.start()
    loop.heard("hello")
    loop.stop()
    assert loop.reply_read() is False and loop.state is VoiceState.OFF


def test_barge_in_by_voice_only_with_the_setting() -> None:
    speakers = VoiceLoop()  # loudspeakers: the app must not take its own voice for the user's
    speakers.start()
    speakers.heard("tell me a story")
    assert not speakers.listen_while_replying and not speakers.speech_heard()
    headphones = VoiceLoop.from_settings(speech(barge_in=True))
    headphones.start()
    assert headphones.speech_heard() is False  # listening: there is nothing to interrupt
    headphones.heard("tell me a story")
    assert headphones.listen_while_replying and headphones.speech_heard()
    headphones.barge_in_now()
    assert headphones.state is VoiceState.LISTENING


def test_settings_give_the_pause_and_a_flag_overrides_it() -> None:
    assert VoiceLoop.from_settings(speech(pause=1.5)).pause == 1.5
    assert VoiceLoop.from_settings(speech(pause=1.5), pause=0.4).pause == 0.4


@pytest.mark.usefixtures("espeak_voices")
def test_the_reply_is_read_in_the_language_heard() -> None:
    loop = VoiceLoop()
    loop.start()
    loop.heard("Wie spät ist es?", language="de")
    speaker = loop.speaker()
    assert speaker is not None and speaker.voice == "de"
    speaker.stop()
    loop.heard("hello")  # no language detected this time: the last one heard stays
    assert loop.reply_language == "de"
    configured = VoiceLoop.from_settings(speech(language="es"))
    configured.heard("hola", language="de")
    assert configured.reply_language == "es"  # speech.language wins over detection
    assert VoiceLoop(speak=False).speaker() is None


@pytest.mark.usefixtures("espeak_voices")
def test_voice_for_maps_whisper_codes_to_espeak_voices() -> None:
    assert tts.voice_for("de") == "de"
    assert tts.voice_for("fr") == "fr"  # espeak-ng has fr-fr; "fr" picks it
    assert tts.voice_for("zh") == "cmn"
    assert tts.voice_for("en") is None and tts.voice_for(None) is None  # the default voice
    assert tts.voice_for("xx") is None  # a language espeak-ng cannot speak: the default voice, not an error


def test_timings_carry_the_text_language_and_marks() -> None:
    loop = VoiceLoop()
    loop.start()
    loop.heard("hi", language="en", latency=0.25)
    loop.reply_text()
    doc = loop.timings("hi")
    assert doc["text"] == "hi" and doc["language"] == "en"
    assert doc["speech_end"] <= doc["final"] <= doc["first_text"]


def test_talks_voice_and_speed_read_every_reply(espeak_voices: None) -> None:
    loop = VoiceLoop.from_settings(speech(), speak=True, voice="en-gb+f3", speed=140)
    loop.start()
    loop.heard("hallo", language="de")
    speaker = loop.speaker()
    assert speaker is not None
    try:
        assert (speaker.voice, speaker.speed) == ("en-gb+f3", 140)  # the voice asked for, not German's
    finally:
        speaker.stop()
    plain = VoiceLoop.from_settings(speech(), speak=True)
    plain.heard("hallo", language="de")
    speaker = plain.speaker()
    assert speaker is not None
    try:
        assert (speaker.voice, speaker.speed) == ("de", None)
    finally:
        speaker.stop()
