"""``assistant config``: every setting with its current value and what it does; ``assistant paths``."""

from __future__ import annotations

import click

from ..untrusted import clean
from ._common import emit_json, stdout_console
from .root import cli


@cli.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_config(as_json: bool) -> None:
    """List every setting in config.toml: current value, default and description."""
    from .. import config, paths

    settings = config.load().model_dump()
    rows = []
    for key, description, default in config.describe():
        section, name = key.split(".", 1)
        rows.append({"key": key, "value": settings[section][name], "default": default, "description": description})
    if as_json:
        emit_json({"file": str(paths.config_file()), "settings": rows})
        return
    from rich.table import Table

    from ..untrusted import escape, plain

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("KEY", "VALUE", "DESCRIPTION"):
        table.add_column(column)
    for row in rows:
        value = plain(repr(row["value"]), style="" if row["value"] != row["default"] else "dim")
        table.add_row(row["key"], value, row["description"])
    console = stdout_console()
    console.print(table)
    console.print(f"[dim]edit {escape(paths.config_file())} (TOML, \\[section] then key = value)[/]")


@cli.command("paths")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_paths(as_json: bool) -> None:
    """Where the app keeps config, models, chats and caches (ASSISTANT_HOME moves them all)."""
    from .. import paths

    data = {
        "config": str(paths.config_file()),
        "catalog": str(paths.user_catalog_file()),
        "database": str(paths.database_file()),
        "models": str(paths.models_dir()),
        "downloads in progress": str(paths.partial_dir()),
        "wheel cache": str(paths.wheel_cache_dir()),
        "log": str(paths.log_file()),
    }
    if as_json:
        emit_json(data)
        return
    for key, value in data.items():
        click.echo(clean(f"{key:>22}  {value}"))
