"""The app's actions, each written once: its key, its footer label, its palette title and its help.

``BINDINGS`` (keys in the footer, with the help as tooltip) and the command palette are both built from
``ACTIONS``, so a key's help text exists in one place. Each action's ``name`` is also its binding id:
the name ``ui.keymap`` in config.toml rebinds (``new_chat = "ctrl+g"``).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType


@dataclass(frozen=True)
class Action:
    name: str  # the action (``action_<name>`` on the app) and its binding id
    key: str | None  # the default key; None: a palette command only
    label: str  # in the footer
    title: str | None  # in the command palette; None: not offered there
    help: str  # the palette's line under the title, and the key's tooltip
    show: bool = True  # in the footer (a hidden key still works)


ACTIONS: tuple[Action, ...] = (
    Action("new_chat", "ctrl+n", "New chat", "New chat", "Start a new, empty chat"),
    Action("stop", "escape", "Stop", "Stop reply", "Stop generating; the partial reply is kept and marked"),
    Action("toggle_sidebar", "ctrl+b", "Chats", "Toggle chat list", "Show or hide the sidebar of chats"),
    Action("pick_model", "ctrl+o", "Model", "Choose model", "Installed models with size, quantization and memory fit"),
    Action(
        "catalog",
        "ctrl+g",
        "Get models",
        "Download models",
        "The catalog with size, quant, memory fit and what is installed; Enter downloads, Esc stops (resumable)",
        show=False,
    ),
    Action(
        "dictate",
        "ctrl+t",
        "Dictate",
        "Dictate",
        "Speak instead of typing: start, or stop and put the text in the prompt",
    ),
    Action(
        "voice_mode",
        "f10",
        "Voice",
        "Voice mode",
        "Talk hands free: speak, pause to send, hear the reply, speak again; Ctrl+T interrupts it, Esc leaves",
        show=False,
    ),
    Action("copy_reply", "f2", "Copy reply", "Copy last reply", "Copy the last assistant reply to the clipboard"),
    Action("copy_code", "f3", "Copy code", "Copy last code block", "Copy the last fenced code block to the clipboard"),
    Action(
        "open_bench", "f9", "Benchmarks", "Benchmarks", "Stored benchmark runs: speed and quality of each model variant"
    ),
    Action(
        "chat_settings",
        "ctrl+s",
        "Settings",
        "Chat settings",
        "This chat's model, system prompt, temperature, top-p, max tokens and seed; presets from config.toml",
        show=False,
    ),
    Action(
        "search",
        "ctrl+f",
        "Search",
        "Search chats",
        "Find a chat by its title or any words of its messages; Enter opens it at the message",
        show=False,
    ),
    Action(
        "regenerate",
        "ctrl+l",
        "Regenerate",
        "Regenerate reply",
        "Answer the last message again; the old reply is kept as the other version (‹ 1/2 ›)",
        show=False,
    ),
    Action(
        "edit_message",
        "ctrl+up",
        "Edit",
        "Edit a message",
        "Change one of your messages and send it again as a new version; the original branch is kept",
        show=False,
    ),
    Action(
        "branch_prev",
        "ctrl+pageup",
        "‹ Version",
        "Previous version",
        "Show the previous version of the focused turn (Tab focuses one), or of the last turn with versions",
        show=False,
    ),
    Action(
        "branch_next",
        "ctrl+pagedown",
        "Version ›",
        "Next version",
        "Show the next version of the focused turn (Tab focuses one), or of the last turn with versions",
        show=False,
    ),
    Action("rename_chat", "ctrl+r", "Rename", "Rename chat", "Give this chat a new title", show=False),
    Action("delete_chat", "f8", "Delete chat", "Delete chat", "Delete this chat and its messages", show=False),
    Action(
        "attach",
        "f5",
        "Attach",
        "Attach a file",
        "Put a text file in the message as a fenced block (or type /attach PATH); too large for the context: refused",
        show=False,
    ),
    Action(
        "export_chat",
        "f4",
        "Export",
        "Export chat",
        "Write this chat to a file: Markdown, or JSON with each message's stats when the name ends in .json",
        show=False,
    ),
    # Textual's palette already offers Quit: this one is the key.
    Action("quit", "ctrl+q", "Quit", None, "Quit (a reply in progress is stopped and kept)"),
    Action("focus_prompt", None, "Prompt", "Focus prompt", "Move the cursor to the message box"),
)

NAMES = frozenset(action.name for action in ACTIONS)
PALETTE: tuple[tuple[Action, str], ...] = tuple((a, a.title) for a in ACTIONS if a.title is not None)  # with its title


def bindings() -> list[BindingType]:
    """The app's key bindings, in footer order."""
    return [
        Binding(a.key, a.name, a.label, id=a.name, show=a.show, tooltip=a.help) for a in ACTIONS if a.key is not None
    ]
