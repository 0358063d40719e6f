"""``assistant serve --timeout S``: a reply that generates longer than S seconds ends there, as a reply cut by
``max_tokens`` ends (``finish_reason`` "length"), streamed or not; the server goes on serving.

The prompt makes SmolLM2 count on and on, so only the timeout can end the reply before ``max_tokens``."""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest

from helpers.serve import SMOL, fresh_home, serving  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow

COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"
MAX_TOKENS = 900  # far more than the one second allows, even on a fast machine


def test_a_reply_past_the_timeout_is_cut_as_by_max_tokens(serving: Callable[..., openai.OpenAI]) -> None:  # noqa: F811
    client = serving("--timeout", "1")
    whole = client.completions.create(model=SMOL, prompt=COUNTING, max_tokens=MAX_TOKENS, temperature=0)
    assert whole.choices[0].finish_reason == "length" and whole.choices[0].text
    assert whole.usage is not None and 0 < whole.usage.completion_tokens < MAX_TOKENS  # cut by the clock

    chunks = list(
        client.chat.completions.create(
            model=SMOL,
            messages=[{"role": "user", "content": f"Continue counting to 1000: {COUNTING}"}],
            max_tokens=MAX_TOKENS,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]
    usage = chunks[-1].usage
    assert usage is not None and 0 < usage.completion_tokens < MAX_TOKENS

    short = client.chat.completions.create(
        model=SMOL, messages=[{"role": "user", "content": "Say hi."}], max_tokens=4, temperature=0
    )
    assert short.choices[0].message.content  # the server still answers after cutting two replies
