"""The command line: bare ``assistant`` opens the TUI; subcommands do everything headless.

Heavy modules (llama_cpp, faster_whisper, textual, pydantic models) are imported inside commands so
``assistant --help`` stays instant. Every error reaches the user as one line; ``--debug`` (or
``ASSISTANT_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ..errors import AssistantError, Cancelled, one_line

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def debug_enabled() -> bool:
    return os.environ.get("ASSISTANT_DEBUG", "") not in ("", "0")


def _say(line: str) -> None:
    """Print one line to stderr. Exception text can carry GGUF metadata, a chat template's raise_exception()
    message or a file name: its control characters (ANSI/OSC codes) are stripped here, once."""
    from ..untrusted import clean

    print(clean(line, one_line=True), file=sys.stderr, flush=True)


def _report(exc: BaseException) -> int:
    if isinstance(exc, Cancelled):
        _say(f"cancelled: {exc.message}" if exc.message != "cancelled" else "cancelled")
        return EXIT_INTERRUPTED
    if isinstance(exc, AssistantError):
        _say(f"error: {exc}")
        return EXIT_ERROR
    if isinstance(exc, KeyboardInterrupt):
        _say("cancelled")
        return EXIT_INTERRUPTED
    if isinstance(exc, OSError) and exc.errno == 28:  # ENOSPC
        _say(f"error: disk full: {exc.filename or ''} (free some space and try again)".strip())
        return EXIT_ERROR
    _say(f"error: {one_line(exc, typed=True)} (run with --debug for details)")
    return EXIT_ERROR


def main(argv: list[str] | None = None) -> Any:
    args = sys.argv[1:] if argv is None else argv
    try:
        if not args:  # bare `assistant`: the TUI, without loading click and every command (a faster first frame)
            from .tui import run_tui

            run_tui()
            return None
        return _run_command(args)
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        if debug_enabled():
            import traceback

            traceback.print_exc()
        sys.exit(_report(exc))


def _run_command(args: list[str]) -> None:
    import click

    from . import bench as _bench  # noqa: F401  (each module registers its commands on `cli`)
    from . import chat as _chat  # noqa: F401
    from . import doctor as _doctor  # noqa: F401
    from . import models as _models  # noqa: F401
    from . import pull as _pull  # noqa: F401
    from . import serve as _serve  # noqa: F401
    from . import settings as _settings  # noqa: F401
    from . import speech as _speech  # noqa: F401
    from .root import cli

    try:
        # standalone_mode=False returns a command's exit code instead of raising SystemExit
        code = cli.main(args=args, prog_name="assistant", standalone_mode=False)
    except click.exceptions.Abort:
        _say("cancelled")
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        _say(f"error: {_click_error(exc)}")  # cleaned there: it can quote what the user typed (a path, a value)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    if isinstance(code, int) and code:
        sys.exit(code)


def _click_error(exc: Any) -> str:
    """A click error as our one line: the message, and for a usage error where the command's help is.
    (Click's own form is three lines: ``Usage:``, ``Try '... --help'``, ``Error: ...``.)"""
    import click

    message = exc.format_message()
    if isinstance(exc, click.UsageError) and exc.ctx is not None:
        return f"{message} (see '{exc.ctx.command_path} --help')"
    return message
