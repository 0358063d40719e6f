"""Small helpers shared by the command modules: JSON output, sizes, a stderr console."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..units import human_size

__all__ = ["emit_json", "human_size", "is_tty", "stderr_console", "stdout_console"]


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def stdout_console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def is_tty() -> bool:
    return sys.stdout.isatty()
