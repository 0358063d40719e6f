"""A chat written out for the user: Markdown to read, JSON with every message's stats (``chats export``, the
TUI's export). Both hold the branch the chat shows (``History.messages``); JSON gives each message's
``parent_id`` too, so a reader can tell where it branched."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .errors import AssistantError
from .history import History


def export_format(path: Path | None) -> str:
    """The format a file name asks for: "json" for ``.json``, else "markdown" (also with no file)."""
    return "json" if path is not None and path.suffix.lower() == ".json" else "markdown"


def export(history: History, chat_id: int, fmt: str) -> str:
    """The chat as ``fmt``: "markdown" (``export_markdown``) or "json" (``export_json``)."""
    if fmt == "json":
        return export_json(history, chat_id)
    if fmt == "markdown":
        return export_markdown(history, chat_id)
    raise AssistantError(f"cannot export a chat as {fmt!r}", "use markdown or json")


def export_json(history: History, chat_id: int) -> str:
    """The chat and every message with its stats, as ``chats show --json`` gives them, in one document."""
    chat = history.get_chat(chat_id)
    doc = {"chat": chat.to_json(), "messages": [m.to_json() for m in history.messages(chat_id)]}
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


def export_markdown(history: History, chat_id: int) -> str:
    chat = history.get_chat(chat_id)
    created = time.strftime("%Y-%m-%d %H:%M", time.localtime(chat.created_at))
    lines = [f"# {chat.title or f'Chat {chat.id}'}", ""]
    lines.append(f"- chat: {chat.id}")
    lines.append(f"- created: {created}")
    if chat.model_id:
        lines.append(f"- model: {chat.model_id}")
    if chat.options:
        lines.append("- options: " + ", ".join(f"{k}={v}" for k, v in chat.options.items()))
    lines.append("")
    if chat.system_prompt:
        lines += ["## System", "", chat.system_prompt.strip(), ""]
    for m in history.messages(chat_id):
        heading = "User" if m.role == "user" else "Assistant" if m.role == "assistant" else "System"
        if m.partial:
            heading += " (interrupted)" if m.interrupted else " (partial)"
        lines += [f"## {heading}", "", m.content.strip() or "_(empty)_", ""]
    return "\n".join(lines).rstrip() + "\n"
