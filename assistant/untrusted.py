"""Untrusted text made safe to show: chat text, titles, file names, GGUF metadata, catalog entries,
server responses and exception messages are data, never markup or terminal control codes.

``clean`` strips what a terminal would act on (C0/C1 control characters, so ANSI CSI and OSC sequences lose
their ESC/BEL and become inert text; lone surrogates, which cannot be encoded). ``plain`` wraps the cleaned
string in a ``rich.text.Text``, which Rich and Textual render literally (no ``[tag]`` markup), and
``escape`` gives the cleaned string with markup escaped, for the few places that build a markup string.
Textual's content markup (the command palette parses every title and help line) has more tag forms than
Rich's (``[$accent]``, ``[B]``), so ``escape_content`` escapes every ``[`` for it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.text import Text

# C0 controls except TAB and LF, DEL, the C1 controls (U+0080-U+009F: CSI, OSC, ST as single code points),
# and lone surrogates (from surrogateescape'd bytes; unencodable on any stream).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def clean(text: object, *, one_line: bool = False) -> str:
    """``str(text)`` without terminal control characters; with ``one_line``, newlines and tabs become spaces."""
    value = text if isinstance(text, str) else str(text)
    if one_line:
        return _CONTROL_ONE_LINE.sub(lambda m: " " if m.group() in "\n\r\t" else "", value)
    return _CONTROL.sub("", value)


def plain(text: object, *, one_line: bool = False, style: str = "") -> Text:
    """A Rich ``Text`` of the cleaned string: rendered literally by Rich and Textual, never as markup."""
    from rich.text import Text

    return Text(clean(text, one_line=one_line), style=style)


def escape(text: object, *, one_line: bool = False) -> str:
    """The cleaned string with Rich markup escaped, for interpolating into a markup string we wrote."""
    from rich.markup import escape as rich_escape

    return rich_escape(clean(text, one_line=one_line))


def escape_content(text: object, *, one_line: bool = False) -> str:
    """The cleaned string escaped for Textual content markup (``Content.from_markup``): every ``[`` escaped."""
    return clean(text, one_line=one_line).replace("[", "\\[")
