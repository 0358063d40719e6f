"""Hostile chat templates and prompts that would abort llama.cpp, with the real SmolLM2 model (crafted copies).

Each case used to hang forever, stay silent for minutes, blame the user, crash with MemoryError /
RecursionError, make the model unusable, or abort the process in ``GGML_ASSERT`` (rc 134). Now each is one
line naming the model's chat template, the llama thread is free again within the budget, and nothing
empty is stored. The per-test timeout is what fails a case that hangs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from assistant.chat import CancelToken, ChatOptions, Message
from assistant.errors import AssistantError, Cancelled

from conftest import assert_one_line_error, register_model, run_cli, wait_until

pytestmark = pytest.mark.slow

HANG = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
# One C call in the old code (20 MB at once, then ~110 s of tokenizing and trimming).
BIG_STRING = "{{ 'x' * 20000000 }}"
# Output growing by 100 kB an iteration, 10 GB in all.
BIG_OUTPUT = "{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}"
# Doubling a string through a namespace: 2 ** 40 characters after 40 steps.
DOUBLING = "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}"
RECURSIVE = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"
EMPTY = "{% if false %}never{% endif %}"
SYNTAX_ERROR = "{% for m in messages %}{{ m.content }"

OPTIONS = ChatOptions(max_tokens=8, temperature=0)


@pytest.fixture
def engine_for(craft: Callable[..., Path]):
    from assistant.engine import LlamaEngine

    made: list[LlamaEngine] = []

    def _load(chat_template: str) -> LlamaEngine:
        engine = LlamaEngine(craft(chat_template=chat_template), n_ctx=512, n_threads=1, model_id="crafted:q4_1")
        made.append(engine)
        return engine

    yield _load
    for engine in made:
        engine.close()


def _reply(engine, text: str = "hi", cancel: CancelToken | None = None) -> str:
    return "".join(c.text for c in engine.stream([Message("user", text)], OPTIONS, cancel))


def _blames_template(exc: pytest.ExceptionInfo[AssistantError]) -> str:
    message = str(exc.value)
    assert "chat template" in message, message
    assert "\n" not in message, message
    assert "your message" not in message.split("(")[0], message  # the hint may say it is *not* the message
    return message


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("source", "words"),
    [
        pytest.param(HANG, "ran for over", id="endless-loop"),
        pytest.param(BIG_STRING, "20,000,000 characters", id="20-MB-string"),
        pytest.param(BIG_OUTPUT, "wrote more than", id="10-GB-output"),
        pytest.param(DOUBLING, "characters", id="doubling-string"),
        pytest.param(RECURSIVE, "recursed", id="recursive-macro"),
        pytest.param("{{ 'x'|center(10000000000) }}", "10,000,000,000", id="huge-filter-argument"),
        pytest.param("{{ 'ab'|replace('', 'x' * 999999) * 1 }}", "characters", id="replace-blowup"),
        pytest.param("{{ 7 ** 999999999 }}", "power", id="huge-power"),
        pytest.param("{{ '%999999999s' % 'x' }}", "format width", id="huge-format-width"),
    ],
)
def test_a_hostile_template_is_one_line_naming_the_template(engine_for, source: str, words: str) -> None:
    engine = engine_for(source)
    with pytest.raises(AssistantError) as exc:
        _reply(engine)
    assert words in _blames_template(exc)
    # the llama thread is free again: the same engine still answers a completion-free call at once
    assert engine.context_size == 512
    from assistant.llama import llama_thread

    assert llama_thread.call(lambda: 42) == 42


@pytest.mark.timeout(120)
def test_cancel_stops_a_template_that_never_ends(engine_for) -> None:
    """Esc / the first Ctrl+C set the cancel token: the render is abandoned at once, not after the budget."""
    engine = engine_for(HANG)
    cancel = CancelToken()
    failure: list[BaseException] = []

    def reply() -> None:
        try:
            _reply(engine, cancel=cancel)
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=reply)
    worker.start()
    wait_until(lambda: any(t.name == "chat-template" for t in threading.enumerate()), what="the render")
    cancel.cancel()
    worker.join(60)
    assert not worker.is_alive()
    assert len(failure) == 1 and isinstance(failure[0], Cancelled), failure


@pytest.mark.timeout(120)
def test_a_template_with_a_syntax_error_falls_back_to_completion_mode(engine_for) -> None:
    engine = engine_for(SYNTAX_ERROR)
    assert engine.completion_mode
    chunks = list(engine.stream([Message("user", "What is the capital of France?")], OPTIONS))
    notices = [c.notice for c in chunks if c.notice]
    assert any("chat template does not compile" in n and "completion mode" in n for n in notices), notices
    assert "".join(c.text for c in chunks).strip()


@pytest.mark.timeout(120)
def test_a_template_that_renders_nothing_is_refused_before_llama_cpp(engine_for) -> None:
    """Zero prompt tokens used to reach llama_decode/sampling: GGML_ASSERT(logits != nullptr), rc 134."""
    engine = engine_for(EMPTY)
    with pytest.raises(AssistantError) as exc:
        _reply(engine)
    assert "0 tokens" in _blames_template(exc)


@pytest.mark.timeout(120)
def test_a_template_that_inflates_the_prompt_is_blamed_not_the_message(engine_for) -> None:
    """Under the size budget but past the context: the error used to say the user's message was too long."""
    engine = engine_for("{{ 'word ' * 20000 }}{% for m in messages %}{{ m.content }}{% endfor %}")
    with pytest.raises(AssistantError) as exc:
        _reply(engine)
    message = _blames_template(exc)
    assert "prompt out of" in message and "too long" not in message, message


def test_ordinary_templates_still_render_the_same(engine_for, starter_files) -> None:
    """The budgeted sandbox renders the real SmolLM2 template exactly as plain jinja does."""
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from assistant import gguf

    from conftest import SMOL

    source = gguf.read(starter_files[SMOL]).chat_template
    assert source
    engine = engine_for(source)
    messages = [Message("system", "Be brief."), Message("user", "Hi ~ there"), Message("assistant", "Hello")]
    messages.append(Message("user", "x" * 5000))
    plain = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    expected = plain.from_string(source).render(
        messages=[{"role": m.role, "content": m.content} for m in messages],
        add_generation_prompt=True,
        bos_token=engine._token_text(engine._bos),
        eos_token=engine._token_text(next(iter(engine._end_tokens), -1)),
    )
    assert engine.render(messages) == expected


# -- the CLI, as a user runs it ---------------------------------------------------------------------------------


@pytest.fixture
def install(craft: Callable[..., Path], assistant_home: Path):
    """Register a crafted copy in this test's home as ``crafted:q4_1`` and make it the chat model."""

    def _install(chat_template: str) -> str:
        register_model("crafted:q4_1", craft(chat_template=chat_template))
        return "crafted:q4_1"

    return _install


def _stored_messages() -> list[tuple[str, str]]:
    from assistant.history import History

    history = History()
    try:
        return [(m.role, m.content) for chat in history.list_chats() for m in history.messages(chat.id)]
    finally:
        history.close()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("source", [HANG, BIG_STRING, RECURSIVE, EMPTY], ids=["hang", "big", "recursive", "empty"])
def test_chat_on_a_hostile_template_exits_with_one_line(install, source: str) -> None:
    model = install(source)
    result = run_cli("chat", "--model", model, "--ctx", "512", "-p", "hi", timeout=240)
    line = assert_one_line_error(result)
    assert "chat template" in line, line
    assert result.returncode == 1, result  # not 134 (abort) nor a signal
    assert "GGML" not in result.stdout + result.stderr
    # the user's message is kept; no empty or "interrupted" reply row
    assert [role for role, _ in _stored_messages()] == ["user"]


# -- the TUI ------------------------------------------------------------------------------------------------------


def _rendering() -> bool:
    return any(t.name == "chat-template" and t.is_alive() for t in threading.enumerate())


@pytest.mark.timeout(300)
@pytest.mark.parametrize("key", ["escape", "ctrl+q"])
async def test_esc_and_ctrl_q_work_while_a_template_renders(install, key: str) -> None:
    """Esc used to do nothing and after Ctrl+Q the process never exited (the llama thread was stuck)."""
    from assistant import config
    from assistant.ui.app import AssistantApp
    from assistant.ui.widgets.prompt_bar import PromptBar

    from helpers.ui import wait_until as ui_wait_until

    model = install(HANG)
    settings = config.Settings.model_validate(
        {"models": {"chat": model}, "chat": {"max_tokens": 8}, "runtime": {"context_size": 512, "threads": 1}}
    )
    app = AssistantApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await ui_wait_until(pilot, lambda: app.engine is not None, "the model to load", timeout=120)
        app.query_one(PromptBar).insert("hi")
        await pilot.press("enter")
        await ui_wait_until(pilot, _rendering, "the template to render", timeout=60)
        await pilot.press(key)
        if key == "escape":
            await ui_wait_until(pilot, lambda: not app.generating, "the reply to stop", timeout=60)
            assert app.is_running
    assert [role for role, _ in _stored_messages()] == ["user"]
