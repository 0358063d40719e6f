"""``assistant serve`` (the models as an OpenAI- and Ollama-compatible API) and ``assistant ps`` (what it has loaded)."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import sys
from typing import Any

import click

from ..errors import AssistantError
from ._common import emit_json, human_size
from .root import cli

DEFAULT_PORT = 11435  # next to Ollama's 11434, so both can run on one machine


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _allowed_models(spec: str | None) -> list[str] | None:
    """``--models a,b``: each must be installed; stored as canonical ids so aliases match too."""
    if not spec:
        return None
    from ..store import Store

    store = Store()
    try:
        return [store.require(part.strip()).id for part in spec.split(",") if part.strip()]
    finally:
        store.conn.close()


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (others need --api-key).")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535), help="Port.")
@click.option(
    "--api-key", envvar="ASSISTANT_API_KEY", help="Require 'Authorization: Bearer KEY' (env ASSISTANT_API_KEY)."
)
@click.option("--models", "models", metavar="ID,...", help="Serve only these installed models (default: all).")
@click.option(
    "--parallel",
    type=click.IntRange(1, 64),
    help="Requests a model decodes together, in one batch (default: 2 per core, at most 4, as memory allows).",
)
@click.option(
    "--queue",
    default=8,
    show_default=True,
    type=click.IntRange(0, 1024),
    help="Requests that may wait past those (then 429).",
)
@click.option(
    "--cors",
    "cors",
    multiple=True,
    metavar="ORIGIN",
    help="Let web pages from ORIGIN (e.g. http://localhost:3000) call the API; repeatable. Off by default.",
)
@click.option(
    "--timeout",
    "timeout_s",
    default=600.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a reply may generate; past that it ends as if max_tokens were reached.",
)
@click.option("--save", is_flag=True, help="Store API conversations in the chat history ('assistant chats').")
def serve(
    host: str,
    port: int,
    api_key: str | None,
    models: str | None,
    parallel: int | None,
    queue: int,
    cors: tuple[str, ...],
    timeout_s: float,
    save: bool,
) -> None:
    """Serve the installed models over HTTP: OpenAI's API under /v1, Ollama's under /api.

    Listens on 127.0.0.1 only unless --host says otherwise; any other address requires an API key. Nothing
    leaves this machine. Ctrl+C stops it (running replies are cancelled).
    """
    import logging

    from ..server.app import ServerConfig, run

    if not is_loopback(host) and not api_key:
        raise AssistantError(
            f"--host {host} would expose the models to the network without a key",
            "pass --api-key KEY (or set ASSISTANT_API_KEY), or leave --host at 127.0.0.1",
        )
    config = ServerConfig(
        host=host,
        port=port,
        api_key=api_key or None,
        models=_allowed_models(models),
        parallel=parallel,
        queue=queue,
        cors=_origins(cors),
        save=save,
        timeout_s=timeout_s,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    access = logging.getLogger("assistant.serve.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
    problems = logging.getLogger("assistant.serve")  # what the server could not do (a reply it could not save...)
    problems.addHandler(handler)
    problems.setLevel(logging.WARNING)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"assistant serve: http://{shown}:{port} (OpenAI /v1, Ollama /api); Ctrl+C stops", err=True)
    started = run(config)
    if not started:
        raise AssistantError(f"could not listen on {shown}:{port}", "is the port in use? pick another with --port")
    click.echo("assistant serve: stopped", err=True)


def _origins(given: tuple[str, ...]) -> tuple[str, ...]:
    """Each ``--cors`` value as a browser sends it in ``Origin`` (scheme://host[:port]); ``*`` allows any page."""
    origins = []
    for origin in (o.strip().rstrip("/") for o in given):
        if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
            raise AssistantError(
                f"--cors {origin!r} is not an origin", "give scheme://host[:port], e.g. http://localhost:3000"
            )
        origins.append(origin)
    return tuple(origins)


def _running() -> dict[str, Any] | None:
    """The running server's state file, if one says a live process is serving."""
    from ..server.app import state_file

    try:
        doc = json.loads(state_file().read_text(encoding="utf-8"))
        os.kill(int(doc["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return doc if isinstance(doc, dict) else None


def _fetch_ps(url: str) -> list[dict[str, Any]]:
    import urllib.request

    request = urllib.request.Request(url.rstrip("/") + "/api/ps")
    if key := os.environ.get("ASSISTANT_API_KEY"):
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return [m["assistant"] for m in json.load(response)["models"]]
    except (OSError, ValueError, KeyError) as exc:
        raise AssistantError(
            f"the server at {url} did not answer: {exc}", "is 'assistant serve' still running?"
        ) from None


def _local_url(url: str) -> str:
    """A wildcard bind (0.0.0.0, ::) is reached over loopback: ps never leaves the machine."""
    for wildcard in ("0.0.0.0", "[::]"):
        url = url.replace(f"//{wildcard}:", "//127.0.0.1:")
    return url


@cli.command("ps")
@click.option("--json", "as_json", is_flag=True, help="Print the server and its loaded models as JSON.")
def ps(as_json: bool) -> None:
    """List the models a running 'assistant serve' has loaded: id, size, memory, idle time."""
    doc = _running()
    models = _fetch_ps(_local_url(doc["url"])) if doc else []
    if as_json:
        emit_json({"server": doc["url"] if doc else None, "pid": doc["pid"] if doc else None, "models": models})
        return
    if doc is None:
        click.echo("no server running (start one with 'assistant serve')")
        return
    click.echo(f"server {doc['url']} (pid {doc['pid']})")
    if not models:
        click.echo("no models loaded")
        return
    click.echo(f"{'ID':40} {'SIZE':>9} {'MEMORY':>9} {'IDLE':>8}")
    for m in models:
        idle = f"{m['idle_s']:.0f}s" if m["idle_s"] else "busy"
        click.echo(f"{m['id']:40} {human_size(m['size_bytes']):>9} {human_size(m['memory_bytes']):>9} {idle:>8}")
