"""assistant.untrusted: what a terminal would act on is removed; the text itself, newlines and tabs stay."""

from __future__ import annotations

import pytest
from rich.console import Console
from rich.text import Text
from textual.content import Content

from assistant.untrusted import clean, escape, escape_content, plain


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("\x1b[31mred\x1b[0m", "[31mred[0m"),  # ANSI CSI loses its ESC: inert text
        ("\x1b]8;;http://x\x07link\x1b]8;;\x07", "]8;;http://xlink]8;;"),  # OSC 8 hyperlink, BEL-terminated
        ("a\x9b2Jb", "a2Jb"),  # C1 CSI as one code point
        ("a\x9d0;title\x9cb", "a0;titleb"),  # C1 OSC ... ST
        ("safe\rEVIL", "safeEVIL"),  # a lone CR would rewrite the line
        ("nul\x00byte", "nulbyte"),
        ("del\x7f", "del"),
        ("bad \udcff surrogate \ud800", "bad  surrogate "),  # unencodable on any stream
        ("keep\nnew\tlines", "keep\nnew\tlines"),
        ("plain text, ünïcode ✓", "plain text, ünïcode ✓"),
    ],
)
def test_clean_strips_control_characters(raw: str, expected: str) -> None:
    assert clean(raw) == expected


def test_clean_one_line_turns_newlines_and_tabs_into_spaces() -> None:
    assert clean("a\nb\tc\r\nd\x1b", one_line=True) == "a b c  d"


def test_clean_takes_any_object() -> None:
    assert clean(ValueError("boom \x1b[1m")) == "boom [1m"


def test_cleaned_text_encodes_everywhere() -> None:
    clean("x \udcff \ud83d").encode("utf-8")  # lone surrogates would raise UnicodeEncodeError


@pytest.mark.parametrize("text", ["[/] hi", "[link=https://example.com]click me[/link]", "[bold]x[/bold]", "a\\"])
def test_plain_and_escape_render_literally_in_rich(text: str) -> None:
    console = Console(width=200, record=True, color_system=None)
    console.print(plain(text))
    console.print(escape(text) + "[dim]end[/dim]")  # escape is for interpolating into markup we wrote
    assert console.export_text().splitlines() == [text, text + "end"]
    assert isinstance(plain(text), Text)


@pytest.mark.parametrize("text", ["[/] hi", "[link=https://example.com]x[/link]", "[$accent]x", "[B]x[/B]", "a\\[b"])
def test_escape_content_renders_literally_in_textual_markup(text: str) -> None:
    assert Content.from_markup(escape_content(text)).plain == text
    assert Content.from_markup(f"Open chat: {escape_content(text)} [b]bold[/b]").plain == f"Open chat: {text} bold"
