"""Untrusted text on the command line (issue 10, items 1 and 2): chat titles, messages, GGUF metadata, paths,
config values and error texts are data. None may be parsed as Rich markup (a ``[/]`` raised MarkupError, a
``[link=...]`` became a link) and no terminal control code (ANSI CSI, OSC 8 hyperlinks, BEL) may reach the
terminal raw, including through the one-line error printer.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import SMOL, assert_one_line_error
from conftest import run_cli as _run_cli

# An OSC 8 hyperlink, a colour, a BEL, a C1 CSI, a carriage return: what a hostile string carries to a terminal.
HOSTILE_CODES = "\x1b]8;;http://x\x07link\x1b]8;;\x07 \x1b[31mred\x1b[0m \x9b2J\r"
MARKUP_TITLES = ["[/] what does this tag mean?", "[link=https://example.com]click me[/link]", "[bold]x[/bold] [$a]"]
CONTROL = ("\x1b", "\x07", "\x9b", "\r")


def run_cli(*args: str):
    """Wide enough that Rich does not wrap a table cell over two lines (stdout is not a terminal here)."""
    return _run_cli(*args, env={"COLUMNS": "300"})


def no_control(text: str) -> bool:
    return not any(c in text for c in CONTROL)


def make_chat(title: str, *messages: str) -> int:
    from assistant.history import History

    history = History()
    try:
        chat = history.create_chat(title=title, model_id=SMOL)
        for i, text in enumerate(messages):
            history.add_message(chat.id, "user" if i % 2 == 0 else "assistant", text)
        return chat.id
    finally:
        history.close()


def test_a_markup_first_message_keeps_chats_list_and_search_working(installed_models: dict[str, object]) -> None:
    """The issue's reproduction, through the real model: the title of `chat -p "[/] ..."` broke both listings."""
    prompt = MARKUP_TITLES[0]
    sent = run_cli("chat", "-m", SMOL, "--max-tokens", "4", "-p", prompt)
    assert sent.returncode == 0, sent.stderr
    listed = run_cli("chats", "list")
    assert listed.returncode == 0, listed.stderr
    assert prompt in listed.stdout
    found = run_cli("chats", "search", "tag")
    assert found.returncode == 0, found.stderr
    assert prompt in found.stdout
    shown = run_cli("chats", "show", "1")
    assert shown.returncode == 0 and prompt in shown.stdout, shown.stderr


@pytest.mark.parametrize("title", MARKUP_TITLES)
def test_markup_titles_are_listed_literally(title: str) -> None:
    chat_id = make_chat(title, f"about {title}")
    listed = run_cli("chats", "list")
    assert listed.returncode == 0, listed.stderr
    assert title in listed.stdout  # the brackets shown, not taken as a tag (or a link)
    found = run_cli("chats", "search", "about")
    assert found.returncode == 0, found.stderr
    assert f"about {title}" in found.stdout
    removed = run_cli("chats", "rm", str(chat_id))
    assert removed.returncode == 0 and title in removed.stdout, removed.stderr


def test_escape_codes_in_chat_text_never_reach_the_terminal() -> None:
    chat_id = make_chat(f"title {HOSTILE_CODES}", f"question {HOSTILE_CODES}", f"answer {HOSTILE_CODES}")
    for args in (("chats", "list"), ("chats", "search", "question"), ("chats", "show", str(chat_id))):
        result = run_cli(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert no_control(result.stdout), (args, result.stdout)
        assert "red" in result.stdout and "link" in result.stdout  # the text stays, only the codes go
    renamed = run_cli("chats", "rename", str(chat_id), f"new {HOSTILE_CODES}")
    assert renamed.returncode == 0 and no_control(renamed.stdout), renamed


def test_gguf_name_as_markup_is_shown_as_written(craft) -> None:
    crafted = craft(name="[/]evil [link=https://example.com]click me[/link]")
    result = run_cli("models", "info", str(crafted))
    assert result.returncode == 0, result.stderr
    assert "[/]evil [link=https://example.com]click me[/link]" in result.stdout


def test_gguf_name_with_escape_codes_is_printed_without_them(craft) -> None:
    crafted = craft(name=f"evil {HOSTILE_CODES}")
    result = run_cli("models", "info", str(crafted))
    assert result.returncode == 0, result.stderr
    assert no_control(result.stdout), result.stdout
    assert "evil" in result.stdout and "red" in result.stdout


def test_model_paths_with_brackets_list_verify_and_print(starter_files: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "[bold]models [" / "] x"  # the path reads .../[bold]models [/] x/...
    folder.mkdir(parents=True)
    model = folder / "smol-q4_1.gguf"
    shutil.copyfile(starter_files[SMOL], model)
    imported = run_cli("models", "import", str(model), "--id", "evil:q4_1")
    assert imported.returncode == 0, imported.stderr
    verified = run_cli("models", "verify", "evil:q4_1")
    assert verified.returncode == 0, verified.stderr
    assert str(model) in verified.stdout
    used = run_cli("models", "du")
    assert used.returncode == 0, used.stderr


def test_error_lines_carry_no_escape_codes() -> None:
    """The one-line error printer cleans what any exception says (here: a path the user gave)."""
    line = assert_one_line_error(run_cli("models", "info", f"/nonexistent/{HOSTILE_CODES}.gguf"))
    assert no_control(line), repr(line)
    assert "nonexistent" in line


def test_a_template_raise_exception_with_escape_codes_is_one_clean_line(craft) -> None:
    template = "{{ raise_exception('boom " + HOSTILE_CODES.replace("\r", "") + "') }}"
    crafted = craft(chat_template=template)
    imported = run_cli("models", "import", str(crafted), "--id", "raiser:q4_1")
    assert imported.returncode == 0, imported.stderr
    result = run_cli("chat", "-m", "raiser:q4_1", "--max-tokens", "4", "-p", "hi")
    line = assert_one_line_error(result)
    assert no_control(result.stderr), repr(result.stderr)
    assert "boom" in line


def test_config_values_are_shown_literally(assistant_home: Path) -> None:
    from assistant import paths

    target = paths.config_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text('[chat]\nsystem_prompt = "[/] be [link=https://example.com]nice[/link] \\u001b[31m"\n')
    result = run_cli("config")
    assert result.returncode == 0, result.stderr
    assert "[/] be [link=https://example.com]nice[/link]" in result.stdout
    assert no_control(result.stdout)
    assert "[section]" in result.stdout  # our own hint, once taken as a tag and dropped


def _store_hostile_run() -> int:
    """A stored benchmark run is a database row: model ids and machine facts in it are data too."""
    from assistant.bench import fingerprint, results
    from assistant.bench.results import Run

    facts = {**fingerprint.collect(2, 2048), "cpu": f"[/]cpu [link=https://example.com]x[/link] {HOSTILE_CODES}"}
    rows = [
        {
            "id": "[/]fam:q8_0",
            "reference": "[/]fam:q8_0",
            "is_reference": True,
            "size_bytes": 9_000_000,
            "tg_tps": 50.0,
        },
        {"id": f"fam:q4 {HOSTILE_CODES}", "reference": "[/]fam:q8_0", "size_bytes": 5_000_000, "tg_tps": 80.0},
    ]
    return results.save(Run(kind="llm", rows=rows, fingerprint=facts, threads=2, context=2048))


def test_stored_benchmark_runs_with_hostile_text_list_compare_and_plot() -> None:
    first, second = _store_hostile_run(), _store_hostile_run()
    for args in (("bench", "history"), ("bench", "compare", str(first), str(second)), ("bench", "plot", str(first))):
        result = run_cli(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert no_control(result.stdout), (args, result.stdout)
    history = run_cli("bench", "history").stdout
    assert "[/]cpu [link=https://example.com]x[/link]" in history
    compared = run_cli("bench", "compare", str(first), str(second)).stdout
    assert "[/]fam:q8_0" in compared
