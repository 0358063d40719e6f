"""The conversation view: user turns, assistant replies rendered as Markdown while they stream, notices.

A streaming reply is appended to its Markdown widget (``Markdown.append`` re-parses only the last
block); the app batches the text, so a fast model never floods the event loop. The log is *anchored*:
it follows new text only while the user is at the bottom;
scrolling up releases the anchor and scrolling back down restores it (Elia, oterm).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widget import Widget

if TYPE_CHECKING:
    from textual.widgets import Markdown
from textual.widgets import Label, Static

from ...untrusted import clean

# A fenced code block: ``` or ~~~ (3+), optional info string, body, the same fence closing it.
_FENCE_RE = re.compile(r"^(?P<fence>`{3,}|~{3,})[^\n]*\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.M | re.S)


def code_blocks(markdown: str) -> list[str]:
    """The fenced code blocks in ``markdown``, in order (what 'copy code block' offers)."""
    return [m.group("body").rstrip("\n") for m in _FENCE_RE.finditer(markdown)]


class NoticeView(Static):
    """A line the engine or the history wants the user to see (completion mode, history trimmed)."""

    def __init__(self, text: str) -> None:
        super().__init__(clean(text), markup=False, classes="notice")


class Turn(Vertical):
    """A message in the log: its row in the history (None for one sent this session, until the chat is read
    again) and, when it has other versions (regenerated, edited), which one it is: "‹ 2/3 ›". A turn with
    versions can take the focus (Tab), so the branch keys pick it."""

    ROLE = ""

    def __init__(self, text: str, classes: str, message_id: int | None, alternative: tuple[int, int] | None) -> None:
        super().__init__(classes=classes)
        self.text = text
        self.message_id = message_id
        self.alternative = alternative
        self.can_focus = alternative is not None

    def role_label(self) -> Label:
        if self.alternative is None:
            return Label(self.ROLE, classes="role")
        return Label("{}  ‹ {}/{} ›".format(self.ROLE, *self.alternative), classes="role -branched")


class UserTurn(Turn):
    """What the user sent, shown verbatim (no Markdown: it is their text, not a rendering)."""

    ROLE = "You"

    def __init__(self, text: str, message_id: int | None = None, alternative: tuple[int, int] | None = None) -> None:
        super().__init__(text, "turn user", message_id, alternative)

    def compose(self) -> ComposeResult:
        yield self.role_label()
        yield Static(clean(self.text), markup=False, classes="body")


class ReplyTurn(Turn):
    """An assistant reply: Markdown that can grow while it streams, marked when it was cut short."""

    ROLE = "Assistant"

    def __init__(
        self,
        text: str = "",
        *,
        partial: bool = False,
        streaming: bool = False,
        message_id: int | None = None,
        alternative: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(text, "turn assistant", message_id, alternative)
        self.partial = partial
        self._streaming = streaming

    def compose(self) -> ComposeResult:
        from textual.widgets import Markdown  # not needed for the first frame: imported with the first reply

        yield self.role_label()
        yield Markdown(clean(self.text), classes="body")
        yield Label("⏸ partial: stopped before the end", classes="partial-mark")

    @property
    def markdown(self) -> Markdown:
        return cast("Markdown", self.query_one(".body"))

    def on_mount(self) -> None:
        self.set_class(self.partial, "-partial")
        self.set_class(self._streaming, "-streaming")

    async def append(self, fragment: str) -> None:
        """Add streamed text (batched by the app: at most a few appends a second)."""
        self.text += fragment
        if self._streaming:
            await self.markdown.append(clean(fragment))  # the model's text: no control codes reach the screen

    async def finish(self, *, partial: bool, text: str | None = None) -> None:
        """Stop streaming; ``text`` (the stored reply) replaces what was streamed if it differs."""
        self._streaming = False
        if text is not None and text != self.text:
            self.text = text
            await self.markdown.update(clean(text))
        self.partial = partial
        self.set_class(partial, "-partial")
        self.remove_class("-streaming")


HINT = "Ask anything. Enter sends, Ctrl+J adds a line, Ctrl+P lists every command."


class ChatLog(VerticalScroll, can_focus=True):
    """The scrolling conversation. Follows new text only while already scrolled to the bottom."""

    def compose(self) -> ComposeResult:
        yield Static(HINT, classes="hint", markup=False)

    def on_mount(self) -> None:
        self.anchor()

    async def clear(self) -> None:
        await self.query(".turn, .notice").remove()
        self.query_one(".hint").display = True
        self.anchor()

    async def _add(self, widget: Widget) -> None:
        self.query_one(".hint").display = False
        await self.mount(widget)

    async def add_user(
        self, text: str, message_id: int | None = None, alternative: tuple[int, int] | None = None
    ) -> UserTurn:
        turn = UserTurn(text, message_id, alternative)
        await self._add(turn)
        return turn

    async def add_reply(
        self,
        text: str = "",
        *,
        partial: bool = False,
        streaming: bool = False,
        message_id: int | None = None,
        alternative: tuple[int, int] | None = None,
    ) -> ReplyTurn:
        turn = ReplyTurn(text, partial=partial, streaming=streaming, message_id=message_id, alternative=alternative)
        await self._add(turn)
        return turn

    @property
    def messages(self) -> list[Turn]:
        """The user turns and replies, in order (no notices)."""
        return list(self.query(Turn))

    async def add_notice(self, text: str) -> NoticeView:
        notice = NoticeView(text)
        await self._add(notice)
        return notice

    @property
    def turns(self) -> list[Widget]:
        """Turns and notices in order (the hint excluded)."""
        return [w for w in self.children if not w.has_class("hint")]

    @property
    def replies(self) -> list[ReplyTurn]:
        return list(self.query(ReplyTurn))

    def last_reply_text(self) -> str | None:
        replies = self.replies
        return replies[-1].text if replies else None

    def all_code_blocks(self) -> list[str]:
        return [block for reply in self.replies for block in code_blocks(reply.text)]
