"""The command line: bare ``assistant`` opens the TUI; subcommands do everything headless.

Heavy modules (llama_cpp, faster_whisper, textual, pydantic models) are imported inside commands so
``assistant --help`` stays instant. Every error reaches the user as one line; ``--debug`` (or
``ASSISTANT_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from .. import __version__
from ..errors import AssistantError, Cancelled

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def debug_enabled() -> bool:
    return os.environ.get("ASSISTANT_DEBUG", "") not in ("", "0")


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


def _report(exc: BaseException) -> int:
    if isinstance(exc, Cancelled):
        click.echo(f"cancelled: {exc.message}" if exc.message != "cancelled" else "cancelled", err=True)
        return EXIT_INTERRUPTED
    if isinstance(exc, AssistantError):
        click.echo(f"error: {exc}", err=True)
        return EXIT_ERROR
    if isinstance(exc, KeyboardInterrupt):
        click.echo("cancelled", err=True)
        return EXIT_INTERRUPTED
    if isinstance(exc, OSError) and exc.errno == 28:  # ENOSPC
        click.echo(f"error: disk full: {exc.filename or ''} (free some space and try again)".strip(), err=True)
        return EXIT_ERROR
    detail = str(exc).splitlines()[0] if str(exc) else ""
    click.echo(f"error: {type(exc).__name__}: {detail} (run with --debug for details)", err=True)
    return EXIT_ERROR


def main(argv: list[str] | None = None) -> Any:
    if sys.argv[1:] if argv is None else argv:  # bare `assistant` opens the TUI at once: no subcommands needed
        from . import bench as _bench  # noqa: F401  (each module registers its commands on `cli`)
        from . import chat as _chat  # noqa: F401
        from . import models as _models  # noqa: F401
        from . import pull as _pull  # noqa: F401
        from . import settings as _settings  # noqa: F401
        from . import speech as _speech  # noqa: F401

    try:
        # standalone_mode=False returns a command's exit code instead of raising SystemExit
        code = cli.main(args=argv, prog_name="assistant", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
        return None
    except click.exceptions.Abort:
        click.echo("cancelled", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        if debug_enabled():
            import traceback

            traceback.print_exc()
        sys.exit(_report(exc))
