"""``assistant chat`` (one reply, or a line-by-line conversation) and ``assistant chats ...`` (saved chats).

Both go through ``assistant.session.ChatSession``, the same path the TUI uses, so every exchange is saved
as it streams. Ctrl+C during a reply stops it after the current token and keeps it (marked partial).
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..untrusted import clean, plain
from ._chatting import checked_text, ctrl_c_cancels, open_chat, open_session, read_stdin
from ._common import emit_json
from .root import cli

if TYPE_CHECKING:
    from ..history import Chat
    from ..session import ChatSession, Turn

REPL_HELP = "/new starts a new chat, /exit or Ctrl+D quits, Ctrl+C stops a reply"


@cli.command()
@click.option("--model", "-m", "model_id", metavar="ID", help="Chat model (default: config models.chat).")
@click.option(
    "--prompt", "-p", metavar="TEXT", help="Message to send. Default: read stdin; a conversation if it is a terminal."
)
@click.option(
    "--system", "-s", "system_prompt", metavar="TEXT", help="System prompt (default: config chat.system_prompt)."
)
@click.option("--temperature", type=click.FloatRange(0.0, 5.0), help="Sampling temperature (0 = greedy).")
@click.option("--top-p", type=click.FloatRange(0.0, 1.0, min_open=True), help="Nucleus sampling cut-off.")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Longest reply, in tokens.")
@click.option("--seed", type=int, help="Sampling seed, for repeatable replies.")
@click.option("--ctx", "n_ctx", type=click.IntRange(min=256), help="Context window in tokens (default: config).")
@click.option("--chat", "chat_id", type=int, metavar="ID", help="Continue a saved chat (see 'assistant chats list').")
@click.option(
    "--regenerate",
    is_flag=True,
    help="With --chat: answer its last message again (the old reply is kept as an alternative).",
)
@click.option(
    "--speculative",
    metavar="auto|lookup|draft:ID|off",
    help="Speculative decoding (default: config runtime.speculative): lookup drafts tokens from the prompt,"
    " draft:ID asks a smaller installed model with the same vocabulary.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the reply and its stats.")
def chat(
    model_id: str | None,
    prompt: str | None,
    system_prompt: str | None,
    temperature: float | None,
    top_p: float | None,
    max_tokens: int | None,
    seed: int | None,
    n_ctx: int | None,
    chat_id: int | None,
    regenerate: bool,
    speculative: str | None,
    as_json: bool,
) -> None:
    """Chat with a local model; the conversation is saved (see 'assistant chats').

    \b
    assistant chat -p "Name three rivers"      one reply, streamed
    echo "Summarise: ..." | assistant chat     the prompt from stdin
    assistant chat                             a conversation (/new, /exit)
    assistant chat --chat 3 -p "And then?"     continue chat 3
    assistant chat --chat 3 --regenerate       a new last reply ('chats show 3 --all-branches')
    """
    from ..errors import AssistantError

    if regenerate and (chat_id is None or prompt is not None):
        raise AssistantError("--regenerate answers a saved chat again", "give --chat ID and no --prompt")

    # Everything the user gave is checked before a chat is opened: a refused message leaves nothing stored.
    if prompt is not None:
        checked_text(prompt, "--prompt")
    elif not regenerate:
        prompt = read_stdin()
        if prompt is not None and not prompt.strip():
            raise AssistantError("no prompt: stdin was empty", "pass --prompt TEXT or pipe some text in")
    if system_prompt is not None:
        checked_text(system_prompt, "--system")
    if prompt is not None and not prompt.strip():
        raise AssistantError("empty prompt", "pass some text with --prompt")
    if prompt is None and as_json and not regenerate:
        raise AssistantError("--json needs a prompt", "pass --prompt TEXT or pipe the prompt on stdin")

    overrides = {
        k: v
        for k, v in {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens, "seed": seed}.items()
        if v is not None
    }
    session = open_session(n_ctx, speculative)
    try:
        current = open_chat(session, chat_id, model_id, system_prompt, overrides)
        if regenerate:
            _one_shot(session, current, None, as_json, new_chat=False)
        elif prompt is None:
            _repl(session, current)
        else:
            _one_shot(session, current, prompt, as_json, new_chat=chat_id is None)
    finally:
        session.close()


def _stream(turn: Turn, *, echo: bool) -> None:
    """Run the turn, printing text to stdout and notices to stderr as they come."""
    wrote = False
    with ctrl_c_cancels(turn):
        for chunk in turn:
            if chunk.notice:
                click.secho(f"[{clean(chunk.notice)}]", err=True, dim=True)
            if echo and chunk.text:
                click.echo(clean(chunk.text), nl=False)  # the model's text: no escape codes reach the terminal
                wrote = True
    if echo and wrote:
        click.echo()


def _stats_line(turn: Turn) -> str:
    s = turn.stats
    if s is None:
        return ""
    parts = [
        f"{s.completion_tokens} tokens",
        f"{s.tokens_per_second:.1f} tok/s",
        f"first token {s.ttft_ms:.0f} ms",
    ]
    if s.cached_tokens:
        parts.append(f"{s.cached_tokens}/{s.prompt_tokens} prompt tokens cached")
    if s.drafted_tokens:
        parts.append(f"{s.accepted_tokens}/{s.drafted_tokens} drafted tokens accepted")
    return " · ".join(parts)


def _one_shot(session: ChatSession, current: Chat, prompt: str | None, as_json: bool, *, new_chat: bool) -> None:
    """Send ``prompt`` (None: answer the chat's last message again) and stream the reply."""
    from ..errors import Cancelled

    try:
        turn = session.regenerate(current.id) if prompt is None else session.send(current.id, prompt)
    except BaseException:
        if new_chat:  # the message was refused: the chat opened for it must not stay behind, empty
            with contextlib.suppress(Exception):
                session.history.delete(current.id)
        raise
    _stream(turn, echo=not as_json)
    s = turn.stats
    if as_json:
        emit_json(
            {
                "chat_id": turn.chat_id,
                "model": turn.model_id,
                "text": turn.text,
                "finish_reason": turn.finish_reason,
                "prompt_tokens": s.prompt_tokens if s else 0,
                "completion_tokens": s.completion_tokens if s else 0,
                "cached_tokens": s.cached_tokens if s else 0,
                "ttft_ms": round(s.ttft_ms, 1) if s else None,
                "tokens_per_second": round(s.tokens_per_second, 2) if s else None,
                "total_ms": round(s.total_ms, 1) if s else None,
                "dropped_messages": s.dropped_messages if s else 0,
                "completion_mode": s.completion_mode if s else False,
                "drafted_tokens": s.drafted_tokens if s else 0,
                "accepted_tokens": s.accepted_tokens if s else 0,
                "notices": turn.notices,
                "partial": turn.reply.partial if turn.reply else True,
            }
        )
    elif sys.stderr.isatty():
        click.secho(f"chat {turn.chat_id} · {_stats_line(turn)}", err=True, dim=True)
    if turn.finish_reason == "cancelled":
        raise Cancelled(f"reply stopped; what was written is kept in chat {turn.chat_id}")


def _repl(session: ChatSession, current: Chat) -> None:
    from ..errors import AssistantError

    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (line editing and history for input())

    click.secho(f"chat {current.id} with {clean(current.model_id)}: {REPL_HELP}", err=True, dim=True)
    while True:
        try:
            line = checked_text(input(">>> "), "that line")
        except EOFError:
            click.echo(err=True)
            return
        except KeyboardInterrupt:
            click.echo(err=True)
            continue
        except UnicodeDecodeError:
            click.echo("error: that line is not UTF-8 text; nothing was sent", err=True)
            continue
        except AssistantError as exc:
            click.echo(f"error: {exc}", err=True)
            continue
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit", "/bye"):
            return
        if text in ("/help", "/?"):
            click.echo(REPL_HELP, err=True)
            continue
        if text == "/new":
            current = session.new_chat(
                model_id=current.model_id, system_prompt=current.system_prompt, options=current.options
            )
            click.secho(f"new chat {current.id}", err=True, dim=True)
            continue
        try:
            turn = session.send(current.id, line)
            _stream(turn, echo=True)
        except AssistantError as exc:
            click.echo(f"error: {clean(exc, one_line=True)}", err=True)
            continue
        except KeyboardInterrupt:
            click.echo("\n[stopped]", err=True)
            continue
        if turn.finish_reason == "cancelled":
            click.secho("[stopped: kept as a partial reply]", err=True, dim=True)
        elif sys.stderr.isatty():
            click.secho(_stats_line(turn), err=True, dim=True)


# -- assistant chats ------------------------------------------------------------------------------
@cli.group("chats")
def chats_group() -> None:
    """Saved chats: list, show, search, rename, export, remove."""


def _history() -> Any:
    from ..history import History

    return History()


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


@chats_group.command("list")
@click.option("--limit", "-n", type=click.IntRange(min=1), help="Show only the newest N chats.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def chats_list(limit: int | None, as_json: bool) -> None:
    """Chats, most recently active first."""
    chats = _history().list_chats(limit)
    if as_json:
        emit_json([c.to_json() for c in chats])
        return
    if not chats:
        click.echo("no chats yet: start one with 'assistant chat'", err=True)
        return
    _chat_table([(c, c.title) for c in chats])


def _chat_table(rows: list[tuple[Chat, str]], last: str = "title") -> None:
    from rich.table import Table

    from ._common import stdout_console

    table = Table(box=None, pad_edge=False)
    table.add_column("id", justify="right")
    table.add_column("updated", no_wrap=True)
    table.add_column("model", no_wrap=True)
    table.add_column("msgs", justify="right")
    table.add_column(last, overflow="fold", ratio=1)
    for c, text in rows:  # titles, snippets and model ids are data: plain Text, never markup
        table.add_row(
            str(c.id), _when(c.updated_at), plain(c.model_id or ""), str(c.message_count), plain(text or "(untitled)")
        )
    stdout_console().print(table)


@chats_group.command("show")
@click.argument("chat_id", type=int)
@click.option("--all-branches", is_flag=True, help="Every message of every branch, each with its id and parent.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def chats_show(chat_id: int, all_branches: bool, as_json: bool) -> None:
    """Print a chat's messages: the branch it shows ("‹ 2/3 ›" where a turn has alternatives)."""
    history = _history()
    current = history.get_chat(chat_id)
    messages = history.all_messages(chat_id) if all_branches else history.messages(chat_id)
    alternatives = history.alternatives(chat_id)
    if as_json:
        shown = [{**m.to_json(), "alternative": list(alternatives.get(m.id, (1, 1)))} for m in messages]
        emit_json({**current.to_json(), "messages": shown})
        return
    click.secho(f"chat {current.id}: {clean(current.title or '(untitled)', one_line=True)}", bold=True)
    click.secho(f"{clean(current.model_id or '')} · created {_when(current.created_at)}", dim=True)
    if current.system_prompt:
        click.secho(f"\nsystem: {clean(current.system_prompt)}", dim=True)
    for m in messages:
        label = m.role
        if m.partial:
            label += " (interrupted)" if m.interrupted else " (partial)"
        if all_branches:
            label = f"#{m.id} {label}" + (f" after #{m.parent_id}" if m.parent_id is not None else "")
        elif m.id in alternatives:
            label += " ‹ {}/{} ›".format(*alternatives[m.id])
        click.secho(f"\n{label}:", bold=True, fg="cyan" if m.role == "user" else "green")
        click.echo(clean(m.content))


@chats_group.command("rename")
@click.argument("chat_id", type=int)
@click.argument("title")
def chats_rename(chat_id: int, title: str) -> None:
    """Give a chat a new title."""
    from ..errors import AssistantError

    if not title.strip():
        raise AssistantError("empty title", "give the chat a title")
    renamed = _history().rename(chat_id, title)
    click.echo(f"chat {renamed.id}: {clean(renamed.title, one_line=True)}")


@chats_group.command("rm")
@click.argument("chat_ids", type=int, nargs=-1, required=True)
def chats_rm(chat_ids: tuple[int, ...]) -> None:
    """Delete chats and their messages."""
    history = _history()
    for chat_id in chat_ids:
        history.get_chat(chat_id)  # all must exist before any is deleted
    for chat_id in chat_ids:
        gone = history.delete(chat_id)
        click.echo(f"deleted chat {gone.id}: {clean(gone.title or '(untitled)', one_line=True)}")


@chats_group.command("search")
@click.argument("text")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def chats_search(text: str, as_json: bool) -> None:
    """Find chats whose title or messages contain TEXT."""
    from ..chat_search import search

    hits = search(_history(), text)
    if as_json:
        emit_json([h.to_json() for h in hits])
        return
    if not hits:
        click.echo(f"no chat mentions {clean(repr(text))}", err=True)
        return
    _chat_table([(h.chat, h.snippet if h.message_id else h.chat.title) for h in hits], last="match")


@chats_group.command("export")
@click.argument("chat_id", type=int)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE (default: stdout)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "json"]),
    default=None,
    help="markdown (default) or json (the messages with their stats); FILE.json picks json.",
)
def chats_export(chat_id: int, output: Path | None, fmt: str | None) -> None:
    """Export a chat as Markdown or JSON."""
    from .. import chat_export, paths

    text = chat_export.export(_history(), chat_id, fmt or chat_export.export_format(output))
    if output is None:  # piped, the export is the chat byte for byte; on a terminal, no escape codes act
        click.echo(clean(text) if sys.stdout.isatty() else text, nl=False)
        return
    paths.write_text_atomic(output.expanduser(), text)  # never a half-written export
    click.echo(f"wrote {output}", err=True)
