"""``assistant serve``'s audio routes through the ``openai`` package: speech (espeak-ng) and transcription
(faster-whisper, the path ``assistant transcribe`` takes), checked against each other."""

from __future__ import annotations

import openai
import pytest

from assistant.speech import word_error_rate

from conftest import require_tool
from helpers.serve import API_KEY, Served, serve_home, server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow

TEXT = "Please turn on the radio in the kitchen and open the window."


@pytest.fixture(scope="module")
def client(server: Served) -> openai.OpenAI:  # noqa: F811
    return openai.OpenAI(base_url=server.url + "/v1", api_key=API_KEY, max_retries=0, timeout=600)


@pytest.fixture(scope="module")
def spoken(client: openai.OpenAI) -> bytes:
    require_tool("espeak-ng")
    audio = client.audio.speech.create(model="tts-1", voice="alloy", input=TEXT, response_format="wav")
    return audio.read()


def test_speech_is_a_wav(spoken: bytes) -> None:
    assert spoken[:4] == b"RIFF" and spoken[8:12] == b"WAVE" and len(spoken) > 20_000


def test_the_speech_transcribes_back_to_the_text(client: openai.OpenAI, spoken: bytes) -> None:
    result = client.audio.transcriptions.create(model="whisper-1", file=("speech.wav", spoken, "audio/wav"))
    assert word_error_rate([TEXT], [result.text]) <= 0.15, result.text


def test_transcription_formats(client: openai.OpenAI, spoken: bytes) -> None:
    verbose = client.audio.transcriptions.create(
        model="whisper-1",
        file=("speech.wav", spoken),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert verbose.language == "en" and verbose.duration > 1 and verbose.segments
    assert verbose.words and all(w.end >= w.start for w in verbose.words)
    srt = client.audio.transcriptions.create(model="whisper-1", file=("speech.wav", spoken), response_format="srt")
    assert "-->" in str(srt) and "1\n" in str(srt)
    text = client.audio.transcriptions.create(model="whisper-1", file=("speech.wav", spoken), response_format="text")
    assert word_error_rate([TEXT], [str(text)]) <= 0.15
