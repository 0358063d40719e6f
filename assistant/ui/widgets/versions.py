"""The versions of a turn: regenerate the last reply, edit one of your messages, step between versions.

Nothing is overwritten (``History``'s branches): a regenerated reply is a sibling of the one it replaces, an
edited message a sibling of the original, and the chat shows, and continues, one branch. A turn with other
versions shows "‹ 2/3 ›" and can take the focus (Tab); the branch keys step the focused turn, or else the
last turn that has versions. After each change the chat is read again, so what is on screen is what is
stored.

``Versions`` is a mixin of ``Conversation``: its methods use the conversation's state (``VersionHost``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from textual import work
from textual.widget import Widget

from .chat_log import ChatLog, ReplyTurn, Turn, UserTurn
from .prompt_bar import PromptBar

if TYPE_CHECKING:
    from textual.app import App

    from ...chat import CancelToken, ChatEngine
    from ..backend import Backend, ChatSummary

EDITING = "editing your message: Enter sends it as a new version · Esc cancels"


class _Host(Protocol):
    @property
    def backend(self) -> Backend: ...

    @property
    def engine(self) -> ChatEngine | None: ...


class VersionHost(Protocol):
    """What ``Versions`` uses of the conversation it is mixed into."""

    chat: ChatSummary | None
    _cancel: CancelToken | None
    _editing: tuple[int, int] | None
    _redo: tuple[str, int | None] | None
    _focus_turn: int | None

    @property
    def host(self) -> _Host: ...

    @property
    def app(self) -> App[Any]: ...

    @property
    def generating(self) -> bool: ...

    @property
    def chat_log(self) -> ChatLog: ...

    @property
    def prompt(self) -> PromptBar: ...

    def notify(self, message: str, *, severity: Any = ..., timeout: float | None = ..., markup: bool = ...) -> None: ...

    def _read_chat(self, chat: ChatSummary) -> Any: ...

    async def _start_reply(self) -> None: ...

    def _generate(self, engine: ChatEngine, chat: ChatSummary | None, text: str, cancel: Any) -> Any: ...

    def _stored_chat(self) -> ChatSummary | None: ...

    async def _drop_from(self, editing: tuple[int, int]) -> None: ...

    def _end_edit(self) -> None: ...

    def _pick_message(self, chat: ChatSummary) -> Any: ...

    def _step(self, chat: ChatSummary, message_id: int, step: int, place: int) -> Any: ...

    def begin_edit(self, message_id: int, text: str, place: int) -> None: ...


class Versions:
    """Regenerate, edit and branch steps (see the module docstring)."""

    _editing: tuple[int, int] | None  # (message id, its place among your turns): the prompt holds it anew
    _redo: tuple[str, int | None] | None  # the reply under way regenerates (None) or answers an edit (its id)
    _focus_turn: int | None  # after a step: the turn, by place, that gets the focus back

    def _stored_chat(self: VersionHost) -> ChatSummary | None:
        """The open chat when it is stored and idle; else None, said."""
        if self.generating:
            return None
        if self.chat is None or isinstance(self.chat.id, str):
            self.notify("Nothing to change yet: send a message first.", severity="warning")
            return None
        return self.chat

    async def regenerate(self: VersionHost) -> None:
        """A new reply to the last message; the old reply stays, as the other version."""
        chat = self._stored_chat()
        engine = self.host.engine
        if chat is None:
            return
        if engine is None:
            self.notify("No model loaded.", severity="warning")
            return
        turns = self.chat_log.messages
        if not turns:
            self.notify("Nothing to regenerate yet: send a message first.", severity="warning")
            return
        if isinstance(turns[-1], ReplyTurn):
            await turns[-1].remove()
        self._redo = ("regenerate", None)
        self.chat_log.anchor()
        await self._start_reply()
        self._generate(engine, chat, "", self._cancel)

    def edit_message(self: VersionHost) -> None:
        """Pick one of your messages on this branch; its text goes into the prompt to be changed and sent."""
        chat = self._stored_chat()
        if chat is not None:
            self._pick_message(chat)

    @work(thread=True, exclusive=True, exit_on_error=False, group="versions")
    def _pick_message(self: VersionHost, chat: ChatSummary) -> None:
        from ..screens.edit_message import PickMessage

        mine = self.host.backend.your_messages(chat.id)  # newest first
        if not mine:
            self.app.call_from_thread(self.notify, "No message of yours to edit here.", severity="warning")
            return

        def chosen(picked: int | None) -> None:
            if picked is not None:  # its place among your messages, oldest first: the turn on screen
                self.begin_edit(*mine[picked], len(mine) - 1 - picked)

        self.app.call_from_thread(self.app.push_screen, PickMessage([text for _, text in mine]), chosen)

    def begin_edit(self: VersionHost, message_id: int, text: str, place: int) -> None:
        """The prompt holds ``text`` to change; Enter sends it in place of the message (``place``: its turn
        among your turns on screen)."""
        prompt = self.prompt
        self._editing = (message_id, place)
        prompt.text = text
        prompt.move_cursor(prompt.document.end)
        prompt.border_title = EDITING
        prompt.add_class("-editing")
        prompt.focus()

    def _end_edit(self: VersionHost) -> None:
        self._editing = None
        self.prompt.border_title = None
        self.prompt.remove_class("-editing")

    async def _drop_from(self: VersionHost, editing: tuple[int, int]) -> None:
        """Take the edited message's turn and every turn after it off the screen (they stay stored)."""
        message_id, place = editing
        log = self.chat_log
        turns = log.messages
        first = next((t for t in turns if t.message_id == message_id), None)
        users = [t for t in turns if isinstance(t, UserTurn)]
        if first is None and place < len(users):  # sent this session: no id on screen yet
            first = users[place]
        if first is not None:
            children = list(log.children)
            await log.remove_children(children[children.index(first) :])

    def step_branch(self: VersionHost, step: int) -> None:
        """Show the previous (-1) or next (1) version of the focused turn, or of the last one with versions."""
        chat = self._stored_chat()
        if chat is None:
            return
        turns = self.chat_log.messages
        focused: Widget | None = self.app.focused
        branched = [t for t in turns if t.alternative is not None and t.message_id is not None]
        turn = focused if isinstance(focused, Turn) and focused in branched else branched[-1] if branched else None
        if turn is None or turn.message_id is None:
            self.notify("No other versions here: regenerate a reply or edit a message to make one.", timeout=4)
            return
        self._step(chat, turn.message_id, step, turns.index(turn))

    @work(thread=True, exclusive=True, exit_on_error=False, group="versions")
    def _step(self: VersionHost, chat: ChatSummary, message_id: int, step: int, place: int) -> None:
        if self.host.backend.step_branch(chat.id, message_id, step):
            self._focus_turn = place
            self.app.call_from_thread(self._read_chat, chat)
        else:
            self.app.call_from_thread(self.notify, "No other version that way.", timeout=2)
