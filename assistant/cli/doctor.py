"""``assistant doctor``: a table of what is right and wrong with this installation, and what to do."""

from __future__ import annotations

from typing import Any

import click

from ._common import emit_json
from .root import cli


@cli.command("doctor")
@click.option("--repair", is_flag=True, help="Fix what is safe to fix: permissions, a damaged database.")
@click.option("--clean", is_flag=True, help="Remove leftover partial files (unfinished downloads, quantizes).")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor(repair: bool, clean: bool, as_json: bool) -> None:
    """Check folders and permissions, the database, installed models, leftovers, offline mode and speech.

    Exits non-zero while a problem remains.
    """
    from .. import doctor as checks_module
    from ..untrusted import plain

    checks = checks_module.run(repair=repair, clean=clean)
    remaining = checks_module.problems(checks)
    if as_json:
        emit_json({"ok": not remaining, "checks": [c.to_json() for c in checks]})
    else:
        from rich.table import Table

        styles = {"ok": "green", "fixed": "cyan", "warning": "yellow", "problem": "red"}
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in ("STATUS", "AREA", "CHECK", "DETAIL", "WHAT TO DO"):
            table.add_column(column, overflow="fold")
        for c in checks:
            table.add_row(
                plain(c.status, style=styles.get(c.status, "")),
                c.area,
                plain(c.name, one_line=True),
                plain(c.detail, one_line=True),
                plain(c.fix, one_line=True),
            )
        console = _console()
        console.print(table)
        if remaining:
            console.print(plain(f"{len(remaining)} problem(s) found", style="red"))
        else:
            console.print(plain("no problems found", style="green"))
    if remaining:
        raise click.exceptions.Exit(1)


def _console() -> Any:
    """Paths are long: when stdout is not a terminal, don't fold them into Rich's default 80 columns."""
    import sys

    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)
