"""The ``assistant`` click group; each command module registers its commands on it (see main)."""

from __future__ import annotations

import os

import click

from .. import __version__


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(__version__, "-V", "--version", prog_name="assistant")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """A private assistant that runs on this machine: chat, dictation, models, benchmarks.

    Run with no command to open the terminal app.
    """
    if debug:
        os.environ["ASSISTANT_DEBUG"] = "1"
    if ctx.invoked_subcommand is None:
        from .tui import run_tui

        run_tui()


from . import doctor as _doctor  # noqa: E402, F401  (registers `assistant doctor` on the group above)
from . import serve as _serve  # noqa: E402, F401  (registers `assistant serve` and `assistant ps`)
